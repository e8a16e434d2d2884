/* shards.c: the search fan-out over shards and the probe other nodes send
 * (server/shards.h, docs/cluster.md).
 *
 * Wire format of a probe, POST /internal/v1/instances/{id}/shards/{shard}/search
 * with X-Imgsearch-Cluster-Secret: the request body is "ISQ1", then dim,
 * k, nprobe (int32), max_scan, n_allowed (int64; -1: no filter), then dim
 * float32 and n_allowed int64; the answer is "ISR1", found (int32), then
 * found int64 ids and found float32 scores. Host byte order: the nodes of
 * one cluster run one build. Scores travel as the index's own floats, so
 * the merge sees exactly what a local search would. */
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "index/vindex.h"
#include "server/cluster.h"
#include "server/compact.h"
#include "server/http_log.h"
#include "server/registry.h"
#include "server/search.h"
#include "server/server.h"
#include "server/shards.h"
#include "storage/curlbuf.h"
#include "storage/instances.h"
#include "storage/vectors.h"

#define SECRET_HEADER "X-Imgsearch-Cluster-Secret"
#define REQ_HEAD (4 + 3 * 4 + 2 * 8)
#define RESP_HEAD (4 + 4)
#define MAX_DIM 4096
#define MAX_PROBE_K (SEARCH_MAX_K * VEC_KINDS)

int shard_probe_local(struct server *srv, int64_t instance_id, int shard,
                      const struct shard_query *q, int64_t *ids, float *scores, int *found,
                      char *err, size_t errlen)
{
    *found = 0;
    struct instance_rt *rt = registry_get_shard(srv->registry, instance_id, shard);
    if (rt && rt->dim != q->dim && q->dim == compact_dim(compact_now(srv, instance_id))) {
        /* The instance was made compact (by another node, or while this
         * index was loaded): the float indexes of its shards are stale.
         * (A query of the stale space meets "another descriptor space".) */
        registry_put(srv->registry, rt);
        registry_forget(srv->registry, instance_id);
        rt = registry_get_shard(srv->registry, instance_id, shard);
    }
    if (!rt) {
        snprintf(err, errlen, "index unavailable");
        return -1;
    }
    int rc = 0;
    if (rt->dim != q->dim) {
        snprintf(err, errlen, "index of another descriptor space");
        rc = -1;
    } else {
        int k = q->k;
        size_t count = vindex_count(rt->vi);
        if ((size_t)k > count)
            k = (int)count;
        struct vindex_search_params p = {.nprobe = q->nprobe,
                                         .max_scan = q->max_scan,
                                         .allowed = q->allowed,
                                         .n_allowed = q->n_allowed};
        if (k > 0 && vindex_search(rt->vi, q->query, k, &p, ids, scores, found) != 0) {
            snprintf(err, errlen, "%s", vindex_last_error());
            rc = -1;
        }
    }
    registry_put(srv->registry, rt);
    return rc;
}

/* --- the receiving side ---------------------------------------------------------- */

struct probe {
    struct server *srv;
    int64_t instance_id;
    int shard;
    int remote;    /* 1: ask url; 0: this node */
    char url[600]; /* the owner's base URL, then the probe's */
    const uint8_t *body;
    size_t body_len;
    int k;
    int64_t *ids;
    float *scores;
    int found;
    int rc; /* 0 answered; -1 failed; -2 the owner refused the connection */
    char why[256];
};

static void put_i32(uint8_t **p, int32_t v)
{
    memcpy(*p, &v, 4);
    *p += 4;
}

static void put_i64(uint8_t **p, int64_t v)
{
    memcpy(*p, &v, 8);
    *p += 8;
}

static uint8_t *encode_query(const struct shard_query *q, size_t *len)
{
    size_t na = q->allowed ? q->n_allowed : 0;
    *len = REQ_HEAD + (size_t)q->dim * 4 + na * 8;
    uint8_t *b = malloc(*len), *p = b;
    if (!b)
        return NULL;
    memcpy(p, "ISQ1", 4);
    p += 4;
    put_i32(&p, q->dim);
    put_i32(&p, q->k);
    put_i32(&p, q->nprobe);
    put_i64(&p, q->max_scan);
    put_i64(&p, q->allowed ? (int64_t)q->n_allowed : -1);
    memcpy(p, q->query, (size_t)q->dim * 4);
    p += (size_t)q->dim * 4;
    if (na)
        memcpy(p, q->allowed, na * 8);
    return b;
}

static void *remote_probe(void *arg)
{
    struct probe *pr = arg;
    struct server *srv = pr->srv;
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char secret[1024];
    snprintf(secret, sizeof secret, SECRET_HEADER ": %s",
             srv->cfg.cluster.secret ? srv->cfg.cluster.secret : "");
    h = curl_slist_append(h, secret);
    struct curl_slist *h2 =
        h ? curl_slist_append(h, "Content-Type: application/octet-stream") : NULL;
    if (h2)
        h = h2;
    struct curlbuf b;
    curlbuf_init(&b, RESP_HEAD + (size_t)pr->k * 12);
    pr->rc = -1;
    if (!c || !h2) {
        snprintf(pr->why, sizeof pr->why, "out of memory");
        goto out;
    }
    long t = srv->cfg.cluster.shard_timeout_ms;
    curl_easy_setopt(c, CURLOPT_URL, pr->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)pr->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)pr->body_len);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, t);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, t);
    curlbuf_attach(&b, c);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_COULDNT_CONNECT) {
        /* Nothing listens there: the owner died and the map has not moved
         * yet. This node serves the shard meanwhile (shards.h). */
        pr->rc = -2;
        snprintf(pr->why, sizeof pr->why, "%s", curl_easy_strerror(cc));
        goto out;
    }
    if (cc != CURLE_OK) {
        snprintf(pr->why, sizeof pr->why, "%s", curl_easy_strerror(cc));
        goto out;
    }
    if (b.status != 200) {
        snprintf(pr->why, sizeof pr->why, "HTTP %ld: %.*s", b.status,
                 (int)(b.len < 160 ? b.len : 160), b.data ? (const char *)b.data : "");
        goto out;
    }
    int32_t n = -1;
    if (b.len >= RESP_HEAD && memcmp(b.data, "ISR1", 4) == 0)
        memcpy(&n, b.data + 4, 4);
    if (n < 0 || n > pr->k || b.len != RESP_HEAD + (size_t)n * 12) {
        snprintf(pr->why, sizeof pr->why, "malformed answer (%zu bytes)", b.len);
        goto out;
    }
    memcpy(pr->ids, b.data + RESP_HEAD, (size_t)n * 8);
    memcpy(pr->scores, b.data + RESP_HEAD + (size_t)n * 8, (size_t)n * 4);
    pr->found = n;
    pr->rc = 0;
out:
    curlbuf_release(&b);
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

struct scored {
    int64_t id;
    float score;
};

/* Score descending, then id ascending: one index's order for the same items. */
static int cmp_scored(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

enum err shards_search(struct request *req, const struct instance *inst,
                       const struct shard_query *q, int64_t *ids, float *scores, int *found,
                       struct shard_gaps *gaps)
{
    struct server *srv = req->srv;
    int ns = inst->shards;
    *found = 0;
    struct probe *pr = calloc((size_t)ns, sizeof *pr);
    pthread_t *th = calloc((size_t)ns, sizeof *th);
    unsigned char *started = calloc((size_t)ns, 1);
    int64_t *all_ids = malloc((size_t)ns * (size_t)q->k * sizeof *all_ids + 1);
    float *all_scores = malloc((size_t)ns * (size_t)q->k * sizeof *all_scores + 1);
    size_t body_len = 0;
    uint8_t *body = NULL;
    enum err e = E_OK;
    if (!pr || !th || !started || !all_ids || !all_scores) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        struct probe *p = &pr[s];
        p->srv = srv;
        p->instance_id = inst->id;
        p->shard = s;
        p->k = q->k;
        p->ids = all_ids + (size_t)s * (size_t)q->k;
        p->scores = all_scores + (size_t)s * (size_t)q->k;
        char base[512];
        /* Without a secret no node would answer: a node configured so (one
         * shard, asked about an instance another made with several) serves
         * every shard itself. */
        p->remote = srv->cfg.cluster.secret &&
                    cluster_shard_owner(srv->cluster, inst->id, ns, s, base, sizeof base) == 0;
        if (!p->remote)
            continue;
        if (!body && !(body = encode_query(q, &body_len))) {
            e = req_fail(req, E_INTERNAL, "out of memory");
            break; /* the probes already started are joined below */
        }
        size_t bl = strlen(base);
        while (bl && base[bl - 1] == '/')
            base[--bl] = 0;
        snprintf(p->url, sizeof p->url, "%s/internal/v1/instances/%lld/shards/%d/search", base,
                 (long long)inst->id, s);
        p->body = body;
        p->body_len = body_len;
        started[s] = pthread_create(&th[s], NULL, remote_probe, p) == 0;
        if (!started[s])
            remote_probe(p); /* no thread to spare: ask in turn */
    }
    /* This node's shards while the others' owners work. */
    for (int s = 0; s < ns && e == E_OK; s++)
        if (!pr[s].remote)
            pr[s].rc = shard_probe_local(srv, inst->id, s, q, pr[s].ids, pr[s].scores, &pr[s].found,
                                         pr[s].why, sizeof pr[s].why);
    for (int s = 0; s < ns; s++)
        if (started[s])
            pthread_join(th[s], NULL);
    if (e != E_OK)
        goto out;
    size_t n = 0;
    for (int s = 0; s < ns; s++) {
        struct probe *p = &pr[s];
        if (p->rc == -2) {
            log_info("%s: shard %d of instance %lld: %s unreachable, answering it here",
                     req->request_id, s, (long long)inst->id, p->url);
            p->rc = shard_probe_local(srv, inst->id, s, q, p->ids, p->scores, &p->found, p->why,
                                      sizeof p->why);
        }
        if (p->rc != 0) {
            log_info("%s: shard %d of instance %lld did not answer (%s%s%s)", req->request_id, s,
                     (long long)inst->id, p->remote ? p->url : "here", ": ", p->why);
            if (!gaps) {
                char detail[256];
                snprintf(detail, sizeof detail, "shard %d: %.200s", s, p->why);
                e = req_fail(req, E_MA_4403, detail);
                goto out;
            }
            gaps->missing[s] = 1;
            gaps->any = 1;
            continue;
        }
        /* Compact the answers to the front, in place (each probe's block
         * starts at or after n). */
        for (int i = 0; i < p->found; i++, n++) {
            all_ids[n] = p->ids[i];
            all_scores[n] = p->scores[i];
        }
    }
    struct scored *m = malloc((n ? n : 1) * sizeof *m);
    if (!m) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        m[i] = (struct scored){all_ids[i], all_scores[i]};
    qsort(m, n, sizeof *m, cmp_scored);
    for (size_t i = 0; i < n && i < (size_t)q->k; i++) {
        ids[i] = m[i].id;
        scores[i] = m[i].score;
        (*found)++;
    }
    free(m);
out:
    free(body);
    free(pr);
    free(th);
    free(started);
    free(all_ids);
    free(all_scores);
    return e;
}

/* --- the owner's side ------------------------------------------------------------ */

static int32_t get_i32(const uint8_t **p)
{
    int32_t v;
    memcpy(&v, *p, 4);
    *p += 4;
    return v;
}

static int64_t get_i64(const uint8_t **p)
{
    int64_t v;
    memcpy(&v, *p, 8);
    *p += 8;
    return v;
}

static int secret_ok(struct request *req)
{
    const char *want = req->srv->cfg.cluster.secret, *got = req_header(req, SECRET_HEADER);
    if (!want || !got)
        return 0;
    size_t n = strlen(want);
    return strlen(got) == n && CRYPTO_memcmp(want, got, n) == 0;
}

static int parse_num(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

enum err h_internal_shard_search(struct request *req)
{
    struct server *srv = req->srv;
    /* Only nodes of a sharded cluster speak here; to anyone else the path
     * does not exist. */
    if (!srv->cluster || !srv->cfg.cluster.secret)
        return E_APIG_0101;
    if (!secret_ok(req))
        return req_fail(req, E_APIG_0301, "cluster secret");
    long long id, shard;
    if (parse_num(req->params[0], 1, INT64_MAX, &id) != 0 ||
        parse_num(req->params[1], 0, SHARDS_MAX - 1, &shard) != 0)
        return req_fail(req, E_BAD_PARAM, "shard");
    const uint8_t *p = req->body;
    if (req->body_len < REQ_HEAD || memcmp(p, "ISQ1", 4) != 0)
        return req_fail(req, E_BAD_PARAM, "body");
    p += 4;
    struct shard_query q;
    q.dim = get_i32(&p);
    q.k = get_i32(&p);
    q.nprobe = get_i32(&p);
    q.max_scan = (long)get_i64(&p);
    int64_t na = get_i64(&p);
    if (q.dim < 1 || q.dim > MAX_DIM || q.k < 0 || q.k > MAX_PROBE_K || na < -1 ||
        na > (int64_t)(req->body_len / 8) ||
        req->body_len != REQ_HEAD + (size_t)q.dim * 4 + (size_t)(na > 0 ? na : 0) * 8)
        return req_fail(req, E_BAD_PARAM, "body");
    /* Copies: the body need not be aligned for floats and int64s. */
    float *query = malloc((size_t)q.dim * sizeof *query);
    int64_t *allowed = na > 0 ? malloc((size_t)na * sizeof *allowed) : NULL;
    uint8_t *out = malloc(RESP_HEAD + (size_t)q.k * 12 + 1);
    int64_t *ids = malloc(((size_t)q.k + 1) * sizeof *ids);
    float *scores = malloc(((size_t)q.k + 1) * sizeof *scores);
    enum err e = E_OK;
    if (!query || (na > 0 && !allowed) || !out || !ids || !scores) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto done;
    }
    memcpy(query, p, (size_t)q.dim * 4);
    p += (size_t)q.dim * 4;
    if (na > 0)
        memcpy(allowed, p, (size_t)na * 8);
    for (int64_t i = 1; i < na; i++)
        if (allowed[i - 1] > allowed[i]) { /* vindex needs them sorted */
            e = req_fail(req, E_BAD_PARAM, "allowed");
            goto done;
        }
    q.query = query;
    q.allowed = allowed;
    q.n_allowed = na > 0 ? (size_t)na : 0;
    int found = 0;
    char why[256];
    if (na == 0) {
        found = 0; /* a filter nothing passes (the receiver does not ask) */
    } else if (shard_probe_local(srv, id, (int)shard, &q, ids, scores, &found, why, sizeof why) !=
               0) {
        e = req_fail(req, E_INDEX_FAILED, why);
        goto done;
    }
    uint8_t *w = out;
    memcpy(w, "ISR1", 4);
    w += 4;
    put_i32(&w, found);
    memcpy(w, ids, (size_t)found * 8);
    w += (size_t)found * 8;
    memcpy(w, scores, (size_t)found * 4);
    w += (size_t)found * 4;
    req->raw = (char *)out;
    req->raw_len = (size_t)(w - out);
    req->raw_type = "application/octet-stream";
    out = NULL;
done:
    free(query);
    free(allowed);
    free(out);
    free(ids);
    free(scores);
    return e;
}
