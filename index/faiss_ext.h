/* faiss_ext.h: the one C entry point of ours next to the FAISS C API.
 *
 * Why it exists: the FAISS 1.7.3 C headers shipped by Debian have no
 * SearchParameters, so a C caller cannot pass per-query nprobe / max_codes /
 * IDSelector. Setting nprobe on the shared index would race between request
 * threads, and IndexIDMap / IndexPreTransform in 1.7.3 reject search
 * parameters outright. This function takes them per call and unwraps
 * IndexPreTransform and IndexIDMap(2) itself (translating the filter from
 * external ids to the sub-index's positions), so the same call works on
 * "IDMap2,Flat", "IVF1024,SQ8" and "PCA256,IVF1024,SQ8". The filter is a
 * sorted id array checked by binary search: unlike IDSelectorBatch it costs
 * nothing to set up per query, even for a tag matching half the instance.
 * Defined in index/faiss_c.cpp. */
#ifndef IMGSEARCH_FAISS_EXT_H
#define IMGSEARCH_FAISS_EXT_H

#include <stddef.h>
#include <faiss/c_api/Index_c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Like faiss_Index_search, plus per-call parameters:
 * nprobe    IVF lists to probe; 0 = the index's own nprobe (clamped to nlist)
 * max_codes IVF cap on codes scanned per query (filtered-out codes count too);
 *           0 = unlimited
 * allowed   sorted ascending ids (external) results must be among; NULL = all
 *           (n_allowed 0 with a non-NULL array matches nothing)
 * Non-IVF indexes ignore nprobe and max_codes. Returns 0 or a FaissErrorCode
 * with the text in faiss_get_last_error(). */
int imgsearch_faiss_search_params(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                                  size_t nprobe, size_t max_codes, const idx_t *allowed,
                                  size_t n_allowed, float *distances, idx_t *labels);

/* Readies an untrained index built from the ann_factory string. Returns 0,
 * or a FaissErrorCode with the reason in faiss_get_last_error():
 * - FAISS 1.7.3's fast-scan IVF ("IVF..,PQ32x4fs") throws on any
 *   SearchParameters and has no id filter, so every search would fail (or,
 *   with its one shared nprobe, race between requests): refused up front.
 * - IVF-PQ trains polysemous codes by default, for a Hamming-threshold
 *   search we never use; that took 140 of 190 s training IVF1024,PQ32 on
 *   65k vectors here: turned off. */
int imgsearch_faiss_ann_setup(FaissIndex *index);

/* Interruptible FAISS work on the calling thread: while *flag is non-zero,
 * its k-means and adds stop at FAISS's next check (seconds apart at worst)
 * and fail with "computation interrupted". NULL: this thread no longer.
 * imgsearch_faiss_interrupt_install must have run once before any FAISS
 * work in the process (it sets FAISS's one global callback). */
void imgsearch_faiss_interrupt_install(void);
void imgsearch_faiss_interrupt_on(const int *flag);

#ifdef __cplusplus
}
#endif

#endif
