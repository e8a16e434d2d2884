/* faiss_c.cpp: the FAISS C API functions imgsearch calls, written by us.
 *
 * Debian's libfaiss-dev ships the C API headers but no libfaiss_c, so this
 * file defines exactly the functions we use, with the signatures from
 * /usr/include/faiss/c_api (included below so the compiler checks them),
 * on top of the C++ libfaiss.a. Every C++ exception stops here: it becomes
 * a FaissErrorCode return plus a thread-local text for faiss_get_last_error().
 * Also defines imgsearch_faiss_search_params (index/faiss_ext.h). Everything
 * else in imgsearch is C and talks to FAISS only through these functions. */
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/utils/distances_c.h>

#include "index/faiss_ext.h"

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/utils/distances.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <vector>

namespace
{

/* A fixed buffer, so recording an error can never throw itself. */
thread_local char last_error[1024];
thread_local bool have_error;

void set_error(const char *msg)
{
    std::snprintf(last_error, sizeof last_error, "%s", msg ? msg : "unknown error");
    have_error = true;
}

/* Runs f; maps whatever it throws to the C API's error codes. */
template <typename F> int guard(F &&f)
{
    try {
        f();
        return OK;
    } catch (const faiss::FaissException &e) {
        set_error(e.what());
        return FAISS_EXCEPT;
    } catch (const std::exception &e) {
        set_error(e.what());
        return STD_EXCEPT;
    } catch (...) {
        set_error("unknown C++ exception");
        return UNKNOWN_EXCEPT;
    }
}

faiss::Index *cxx(FaissIndex *p)
{
    return reinterpret_cast<faiss::Index *>(p);
}

const faiss::Index *cxx(const FaissIndex *p)
{
    return reinterpret_cast<const faiss::Index *>(p);
}

const faiss::IDSelector *cxx(const FaissIDSelector *p)
{
    return reinterpret_cast<const faiss::IDSelector *>(p);
}

FaissIndex *c_index(faiss::Index *p)
{
    return reinterpret_cast<FaissIndex *>(p);
}

/* Selector over a sub-index's positions that asks the caller's selector
 * about the external id at that position (what IDSelectorTranslated does in
 * later FAISS releases). */
struct TranslatedSelector : faiss::IDSelector {
    const std::vector<faiss::Index::idx_t> &id_map;
    const faiss::IDSelector *sel;
    TranslatedSelector(const std::vector<faiss::Index::idx_t> &m, const faiss::IDSelector *s)
        : id_map(m), sel(s)
    {
    }
    bool is_member(idx_t pos) const override
    {
        return pos >= 0 && static_cast<size_t>(pos) < id_map.size() && sel->is_member(id_map[pos]);
    }
};

/* Lists an HNSW coarse quantizer is asked for with efSearch raised to
 * nprobe; more go through search_exact_lists. */
constexpr size_t HNSW_NPROBE_MAX = 256;

/* The nprobe lists nearest each query, found by scoring every centroid
 * exactly (nearest first, as a quantizer hands them over: a max_codes budget
 * must go to the best lists), then searched. For an HNSW coarse quantizer
 * asked for more than HNSW_NPROBE_MAX lists: FAISS 1.7.3's HNSW keeps
 * efSearch candidates (with its default 16 and every list asked for it
 * returned 4,218 of 5,000 vectors), and raising efSearch to a large nprobe
 * costs about its square (5.9 s a query at 60,000 of 65,536). The exact pass
 * reads nlist x d floats: 2.3 ms at 65536 x 256. The centroid scores are
 * part of an IVF-PQ score. */
void search_exact_lists(const faiss::IndexIVF *ivf, const faiss::IndexHNSW *hq, idx_t n,
                        const float *x, idx_t k, const faiss::SearchParametersIVF &p, float *dis,
                        idx_t *lab)
{
    size_t nl = ivf->nlist, d = static_cast<size_t>(ivf->d), np = p.nprobe;
    std::vector<float> copy;
    const float *cent = nullptr;
    if (auto *flat = dynamic_cast<const faiss::IndexFlat *>(hq->storage))
        cent = flat->get_xb();
    if (!cent) {
        copy.resize(nl * d);
        ivf->quantizer->reconstruct_n(0, static_cast<idx_t>(nl), copy.data());
        cent = copy.data();
    }
    bool ip = ivf->metric_type == faiss::METRIC_INNER_PRODUCT;
    std::vector<float> score(nl);
    std::vector<idx_t> order(nl);
    std::vector<idx_t> assign(static_cast<size_t>(n) * np);
    std::vector<float> cdis(static_cast<size_t>(n) * np);
    for (size_t i = 0; i < static_cast<size_t>(n); i++) {
        if (ip)
            faiss::fvec_inner_products_ny(score.data(), x + i * d, cent, d, nl);
        else
            faiss::fvec_L2sqr_ny(score.data(), x + i * d, cent, d, nl);
        for (size_t l = 0; l < nl; l++)
            order[l] = static_cast<idx_t>(l);
        auto better = [&](idx_t a, idx_t b) {
            float sa = score[static_cast<size_t>(a)], sb = score[static_cast<size_t>(b)];
            return ip ? sa > sb : sa < sb;
        };
        /* Every list with no scan budget: the order changes nothing. */
        if (np < nl || p.max_codes)
            std::partial_sort(order.begin(), order.begin() + static_cast<long>(np), order.end(),
                              better);
        for (size_t j = 0; j < np; j++) {
            assign[i * np + j] = order[j];
            cdis[i * np + j] = score[static_cast<size_t>(order[j])];
        }
    }
    ivf->search_preassigned(n, x, k, assign.data(), cdis.data(), dis, lab, false, &p);
}

void search_params(const faiss::Index *idx, idx_t n, const float *x, idx_t k, size_t nprobe,
                   size_t max_codes, const faiss::IDSelector *sel, float *dis, idx_t *lab)
{
    if (auto *pt = dynamic_cast<const faiss::IndexPreTransform *>(idx)) {
        const float *xt = pt->apply_chain(n, x);
        // apply_chain returns x itself or a new[] array that we own.
        std::unique_ptr<const float[]> owned(xt == x ? nullptr : xt);
        search_params(pt->index, n, xt, k, nprobe, max_codes, sel, dis, lab);
        return;
    }
    if (auto *im = dynamic_cast<const faiss::IndexIDMap *>(idx)) {
        TranslatedSelector ts(im->id_map, sel);
        search_params(im->index, n, x, k, nprobe, max_codes, sel ? &ts : nullptr, dis, lab);
        for (idx_t i = 0; i < n * k; i++) {
            if (lab[i] >= 0)
                lab[i] = im->id_map.at(static_cast<size_t>(lab[i]));
        }
        return;
    }
    if (auto *ivf = dynamic_cast<const faiss::IndexIVF *>(idx)) {
        faiss::SearchParametersIVF p;
        p.sel = const_cast<faiss::IDSelector *>(sel);
        p.nprobe = nprobe ? nprobe : ivf->nprobe;
        if (p.nprobe > ivf->nlist)
            p.nprobe = ivf->nlist;
        if (p.nprobe < 1)
            p.nprobe = 1;
        // 0: unlimited. FAISS keeps it signed inside, so huge values would
        // turn negative and stop the scan at once.
        p.max_codes = max_codes > static_cast<size_t>(INT64_MAX) ? 0 : max_codes;
        /* An HNSW quantizer (a re-partitioned index past 16384 lists) finds
         * at most efSearch lists well: up to HNSW_NPROBE_MAX lists it
         * searches with efSearch >= nprobe (0.17 ms at 128 of 65536), past
         * that an exact pass (2.3 ms; HNSW's cost grows about with the
         * square of efSearch: 5.9 s a query at 60,000). */
        faiss::SearchParametersHNSW qp;
        if (auto *hq = dynamic_cast<const faiss::IndexHNSW *>(ivf->quantizer)) {
            if (p.nprobe > HNSW_NPROBE_MAX) {
                search_exact_lists(ivf, hq, n, x, k, p, dis, lab);
                return;
            }
            qp.efSearch = std::max(hq->hnsw.efSearch, static_cast<int>(p.nprobe));
            p.quantizer_params = &qp;
        }
        ivf->search(n, x, k, dis, lab, &p);
        return;
    }
    if (sel) {
        faiss::SearchParameters p;
        p.sel = const_cast<faiss::IDSelector *>(sel);
        idx->search(n, x, k, dis, lab, &p);
        return;
    }
    idx->search(n, x, k, dis, lab);
}

/* Membership in a caller-owned sorted id array, by binary search. */
struct SortedSelector : faiss::IDSelector {
    const idx_t *ids;
    size_t n;
    SortedSelector(const idx_t *a, size_t len) : ids(a), n(len) {}
    bool is_member(idx_t id) const override
    {
        if (n == 0 || id < ids[0] || id > ids[n - 1])
            return false;
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ids[mid] < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo < n && ids[lo] == id;
    }
};

} // namespace

// The C view of faiss::IndexIVFStats must match the C++ one byte for byte.
static_assert(sizeof(FaissIndexIVFStats) == sizeof(faiss::IndexIVFStats), "IVF stats layout");
static_assert(offsetof(FaissIndexIVFStats, ndis) == offsetof(faiss::IndexIVFStats, ndis),
              "IVF stats layout");

extern "C" {

const char *faiss_get_last_error()
{
    return have_error ? last_error : nullptr;
}

int faiss_index_factory(FaissIndex **p_index, int d, const char *description,
                        FaissMetricType metric)
{
    return guard([&] {
        *p_index =
            c_index(faiss::index_factory(d, description, static_cast<faiss::MetricType>(metric)));
    });
}

void faiss_Index_free(FaissIndex *obj)
{
    delete cxx(obj);
}

int faiss_Index_d(const FaissIndex *index)
{
    return cxx(index)->d;
}

int faiss_Index_is_trained(const FaissIndex *index)
{
    return cxx(index)->is_trained ? 1 : 0;
}

idx_t faiss_Index_ntotal(const FaissIndex *index)
{
    return cxx(index)->ntotal;
}

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x)
{
    return guard([&] { cxx(index)->train(n, x); });
}

int faiss_Index_add_with_ids(FaissIndex *index, idx_t n, const float *x, const idx_t *xids)
{
    return guard([&] { cxx(index)->add_with_ids(n, x, xids); });
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x, idx_t k, float *distances,
                       idx_t *labels)
{
    return guard([&] { cxx(index)->search(n, x, k, distances, labels); });
}

int faiss_Index_remove_ids(FaissIndex *index, const FaissIDSelector *sel, size_t *n_removed)
{
    return guard([&] {
        size_t r = cxx(index)->remove_ids(*cxx(sel));
        if (n_removed)
            *n_removed = r;
    });
}

int faiss_IDSelectorBatch_new(FaissIDSelectorBatch **p_sel, size_t n, const idx_t *indices)
{
    return guard([&] {
        *p_sel = reinterpret_cast<FaissIDSelectorBatch *>(new faiss::IDSelectorBatch(n, indices));
    });
}

void faiss_IDSelector_free(FaissIDSelector *obj)
{
    delete reinterpret_cast<faiss::IDSelector *>(obj);
}

/* On a FILE the caller owns: vindex_save flushes, fsyncs and closes it
 * itself and checks each step, which the _fname variant cannot (FAISS 1.7.3
 * ignores a failed fclose, so a full disk could go unnoticed there). */
int faiss_write_index(const FaissIndex *idx, FILE *f)
{
    return guard([&] { faiss::write_index(cxx(idx), f); });
}

/* On a FILE: registry snapshots carry their own header before the index. */
int faiss_read_index(FILE *f, int io_flags, FaissIndex **p_out)
{
    return guard([&] { *p_out = c_index(faiss::read_index(f, io_flags)); });
}

int faiss_read_index_fname(const char *fname, int io_flags, FaissIndex **p_out)
{
    return guard([&] { *p_out = c_index(faiss::read_index(fname, io_flags)); });
}

FaissIndexIDMap2 *faiss_IndexIDMap2_cast(FaissIndex *index)
{
    return c_index(dynamic_cast<faiss::IndexIDMap2 *>(cxx(index)));
}

void faiss_IndexIDMap2_id_map(FaissIndexIDMap2 *index, idx_t **p_id_map, size_t *p_size)
{
    auto *im = static_cast<faiss::IndexIDMap2 *>(cxx(index));
    if (p_id_map)
        *p_id_map = im->id_map.data();
    if (p_size)
        *p_size = im->id_map.size();
}

FaissIndex *faiss_IndexIDMap2_sub_index(FaissIndexIDMap2 *index)
{
    return c_index(static_cast<faiss::IndexIDMap2 *>(cxx(index))->index);
}

FaissIndexIVF *faiss_IndexIVF_cast(FaissIndex *index)
{
    return reinterpret_cast<FaissIndexIVF *>(dynamic_cast<faiss::IndexIVF *>(cxx(index)));
}

size_t faiss_IndexIVF_nlist(const FaissIndexIVF *index)
{
    return reinterpret_cast<const faiss::IndexIVF *>(index)->nlist;
}

size_t faiss_IndexIVF_get_list_size(const FaissIndexIVF *index, size_t list_no)
{
    return reinterpret_cast<const faiss::IndexIVF *>(index)->get_list_size(list_no);
}

/* The signature has no error return; array-backed lists (all we build and
 * read back) do not throw. */
void faiss_IndexIVF_invlists_get_ids(const FaissIndexIVF *index, size_t list_no, idx_t *invlist)
{
    guard([&] {
        const faiss::InvertedLists *il = reinterpret_cast<const faiss::IndexIVF *>(index)->invlists;
        size_t n = il->list_size(list_no);
        faiss::InvertedLists::ScopedIds ids(il, list_no);
        std::copy(ids.get(), ids.get() + n, invlist);
    });
}

FaissIndexFlat *faiss_IndexFlat_cast(FaissIndex *index)
{
    return c_index(dynamic_cast<faiss::IndexFlat *>(cxx(index)));
}

void faiss_IndexFlat_xb(FaissIndexFlat *index, float **p_xb, size_t *p_size)
{
    auto *flat = static_cast<faiss::IndexFlat *>(cxx(index));
    if (p_xb)
        *p_xb = flat->get_xb();
    if (p_size)
        *p_size = flat->codes.size() / sizeof(float);
}

int faiss_ParameterSpace_new(FaissParameterSpace **space)
{
    return guard(
        [&] { *space = reinterpret_cast<FaissParameterSpace *>(new faiss::ParameterSpace()); });
}

void faiss_ParameterSpace_free(FaissParameterSpace *obj)
{
    delete reinterpret_cast<faiss::ParameterSpace *>(obj);
}

int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace *space, FaissIndex *index,
                                             const char *name, double value)
{
    return guard([&] {
        reinterpret_cast<const faiss::ParameterSpace *>(space)->set_index_parameter(cxx(index),
                                                                                    name, value);
    });
}

void faiss_set_distance_compute_blas_threshold(int value)
{
    faiss::distance_compute_blas_threshold = value;
}

int faiss_get_distance_compute_blas_threshold()
{
    return faiss::distance_compute_blas_threshold;
}

FaissIndexIVFStats *faiss_get_indexIVF_stats()
{
    return reinterpret_cast<FaissIndexIVFStats *>(&faiss::indexIVF_stats);
}

void faiss_IndexIVFStats_reset(FaissIndexIVFStats *stats)
{
    reinterpret_cast<faiss::IndexIVFStats *>(stats)->reset();
}

int imgsearch_faiss_search_params(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                                  size_t nprobe, size_t max_codes, const idx_t *allowed,
                                  size_t n_allowed, float *distances, idx_t *labels)
{
    return guard([&] {
        SortedSelector sel(allowed, n_allowed);
        search_params(cxx(index), n, x, k, nprobe, max_codes, allowed ? &sel : nullptr, distances,
                      labels);
    });
}

int imgsearch_faiss_ann_setup(FaissIndex *index)
{
    return guard([&] {
        faiss::Index *idx = cxx(index);
        for (;;) {
            if (auto *pt = dynamic_cast<faiss::IndexPreTransform *>(idx))
                idx = pt->index;
            else if (auto *im = dynamic_cast<faiss::IndexIDMap *>(idx))
                idx = im->index;
            else
                break;
        }
        if (dynamic_cast<faiss::IndexIVFFastScan *>(idx))
            FAISS_THROW_MSG("fast-scan IVF indexes take no per-query nprobe or id filter in "
                            "FAISS 1.7.3; use e.g. IVF4096,PQ32");
        if (auto *ivfpq = dynamic_cast<faiss::IndexIVFPQ *>(idx))
            ivfpq->do_polysemous_training = false;
    });
}

namespace
{
thread_local const int *interrupt_flag;

/* FAISS asks one global callback; it answers for the thread asking. */
struct FlagInterrupt : faiss::InterruptCallback {
    bool want_interrupt() override
    {
        return interrupt_flag && __atomic_load_n(interrupt_flag, __ATOMIC_ACQUIRE);
    }
};
} // namespace

void imgsearch_faiss_interrupt_install(void)
{
    faiss::InterruptCallback::instance.reset(new FlagInterrupt());
}

void imgsearch_faiss_interrupt_on(const int *flag)
{
    interrupt_flag = flag;
}

} // extern "C"
