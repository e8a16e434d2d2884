/* http.c: the libmicrohttpd front end. Accumulates bodies up to
 * max_body_bytes (413 APIG.0201 past it, without reading the rest), matches
 * the route, checks auth, parses JSON, runs the handler and answers JSON
 * with an X-Request-Id, errors through the error table. Routes flagged
 * R_POOL (the image calls) run on the work pool: the connection is suspended
 * while a worker downloads, decodes and extracts, so HTTP threads never wait
 * on that work; when the pool's queue is full the answer is 429 at once.
 * The other project calls (R_STORE) run the same way on the store pool: a
 * COMMIT waits for the disk's fsync, and an HTTP thread serves several
 * connections, so waiting there would stall every request queued behind.
 * Reads (R_READ) on SQLite are the exception: they run here. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "server/auth.h"
#include "server/req_timing.h"
#include "server/http_log.h"
#include "server/json_util.h"
#include "server/metrics.h"
#include "server/router.h"
#include "server/server.h"
#include "server/workpool.h"
#include "storage/db.h"

#define MAX_URI_BYTES (32 * 1024)
#define MAX_HEADER_BYTES (32 * 1024)
#define MAX_HEADERS_TOTAL (128 * 1024)

enum conn_phase {
    PHASE_READING = 0, /* headers and body arriving */
    PHASE_IN_POOL,     /* suspended; a worker runs the handler */
    PHASE_POOL_DONE,   /* resumed; `result` holds the handler's status */
};

/* Per-connection-request state, from the first callback to completion. */
struct conn_ctx {
    atomic_int phase;
    enum err result;
    uint8_t *body;
    size_t len, cap;
    int rejected;     /* a response was queued early (413); discard the rest */
    int too_large;    /* chunked body crossed the limit: discard, answer 413 at the end */
    size_t discarded; /* bytes thrown away since */
    struct timespec start;
    struct request req;
    char scratch[MAX_URI_BYTES + 2];
};

static void new_request_id(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)((ts.tv_nsec >> (i % 8)) ^ (i * 131) ^ getpid());
    }
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[r[i] >> 4];
        out[2 * i + 1] = digits[r[i] & 15];
    }
    out[32] = 0;
}

static enum MHD_Result queue(struct MHD_Connection *conn, int status, char *body, size_t len,
                             const char *type, const char *request_id, int close)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "X-Request-Id", request_id);
    if (close)
        MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static char *dump(json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    *len = s ? strlen(s) : 0;
    return s;
}

/* Builds and queues the error body for `e` resolved in the request's family. */
static enum MHD_Result queue_error(struct conn_ctx *cc, enum err e, int close)
{
    struct request *req = &cc->req;
    e = err_resolve(e, req->family);
    const struct err_info *info = err_info(e);
    char msg[1024];
    err_message(e, req->detail, msg, sizeof msg);
    json_t *j = json_pack("{s:s, s:s}", "error_code", info->code, "error_msg", msg);
    if (info->gateway)
        json_object_set_new(j, "request_id", json_string(req->request_id));
    size_t len;
    char *body = dump(j, &len);
    json_decref(j);
    req->status = info->http_status;
    http_log_error(req, info->code, msg);
    return queue(req->conn, info->http_status, body, len, "application/json", req->request_id,
                 close);
}

static enum MHD_Result queue_success(struct conn_ctx *cc)
{
    struct request *req = &cc->req;
    if (!req->status)
        req->status = 200;
    if (req->raw) {
        char *raw = req->raw;
        req->raw = NULL;
        return queue(req->conn, req->status, raw, req->raw_len,
                     req->raw_type ? req->raw_type : "application/octet-stream", req->request_id,
                     0);
    }
    size_t len;
    char *body = dump(req->reply ? req->reply : json_object(), &len);
    if (!body)
        return queue_error(cc, E_INTERNAL, 0);
    return queue(req->conn, req->status, body, len, "application/json", req->request_id, 0);
}

/* Sums header sizes; the gateway's limits are 32 KB for one and 128 KB total. */
struct header_sizes {
    size_t total, largest;
};

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    (void)kind;
    struct header_sizes *hs = cls;
    size_t n = strlen(key) + (value ? strlen(value) : 0) + 4;
    hs->total += n;
    if (n > hs->largest)
        hs->largest = n;
    return MHD_YES;
}

static enum MHD_Result answer(struct conn_ctx *cc, enum err e)
{
    return e == E_OK ? queue_success(cc) : queue_error(cc, e, 0);
}

/* A work-pool job: the handler, then back to MHD, which calls on_request
 * again to queue the answer from the HTTP thread. */
static void run_in_pool(void *arg)
{
    struct conn_ctx *cc = arg;
    cc->req.timing.queue_ms =
        req_clock_ms() - ((double)cc->start.tv_sec * 1e3 + (double)cc->start.tv_nsec / 1e6);
    cc->result = req_timed_handler(&cc->req);
    atomic_store(&cc->phase, PHASE_POOL_DONE);
    MHD_resume_connection(cc->req.conn);
}

/* Everything after the body is complete: route, auth, parse, handle. */
static enum MHD_Result dispatch(struct server *srv, struct conn_ctx *cc)
{
    struct request *req = &cc->req;
    const struct route *route = NULL;
    int n_params = 0;
    req->body = cc->body;
    req->body_len = cc->len;

    if (atomic_load(&srv->stopping))
        return queue_error(cc, E_APIG_0601, 1);

    enum route_match m =
        router_match(routes, n_routes, req->method, req->path, cc->scratch, sizeof cc->scratch,
                     &route, req->params, &n_params, &req->family);
    if (m != ROUTE_FOUND)
        return queue_error(cc, m == ROUTE_NO_METHOD ? E_APIG_0101_METHOD : E_APIG_0101, 0);
    req->route = route;
    if (route->flags & R_PROJECT) {
        req->project_id = req->params[0];
        /* "only letters and digits, length [1-64]" */
        size_t pl = strlen(req->project_id);
        int ok = pl >= 1 && pl <= 64;
        for (size_t i = 0; ok && i < pl; i++) {
            char c = req->project_id[i];
            ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        }
        if (!ok)
            return queue_error(cc, req_fail(req, E_BAD_PARAM, "project_id"), 0);
    }
    if (route->flags & R_AUTH) {
        enum err e = auth_check(req);
        if (e != E_OK)
            return queue_error(cc, e, 0);
    }
    if (route->flags & R_JSON) {
        req->json = json_parse_object(req->body, req->body_len);
        if (!req->json)
            return queue_error(cc, req_fail(req, E_BAD_JSON, NULL), 0);
    }
    /* A SQLite read never waits for a writer (WAL) and takes a fraction of
     * a millisecond: handing it to a store worker would cost two thread
     * wake-ups, which on busy cores is most of its time, and would queue it
     * behind writes waiting for the disk. */
    int inline_read = (route->flags & R_READ) && db_backend(srv->db) == SQL_SQLITE;
    struct workpool *pool = (route->flags & R_POOL)                    ? srv->pool
                            : (route->flags & R_STORE) && !inline_read ? srv->store_pool
                                                                       : NULL;
    if (pool) {
        /* Suspend before queueing: a fast worker may resume at once. */
        atomic_store(&cc->phase, PHASE_IN_POOL);
        MHD_suspend_connection(req->conn);
        if (workpool_submit(pool, run_in_pool, cc) != 0) {
            /* Full, or draining for a shutdown (answered as one is above).
             * The store pool queues as many calls as there may be
             * connections, so only the image pool fills in practice. */
            cc->result = atomic_load(&srv->stopping) ? E_APIG_0601
                         : pool == srv->pool ? req_fail(req, E_MA_4401, "extraction queue full")
                                             : req_fail(req, E_MA_4401, "request queue full");
            atomic_store(&cc->phase, PHASE_POOL_DONE);
            MHD_resume_connection(req->conn);
        }
        return MHD_YES;
    }
    return answer(cc, req_timed_handler(req));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct server *srv = cls;
    struct conn_ctx *cc = *con_cls;
    if (!cc) {
        cc = calloc(1, sizeof *cc);
        if (!cc)
            return MHD_NO;
        *con_cls = cc;
        atomic_fetch_add(&srv->in_flight, 1);
        clock_gettime(CLOCK_MONOTONIC, &cc->start);
        cc->req.srv = srv;
        cc->req.conn = conn;
        cc->req.method = method;
        cc->req.path = url;
        new_request_id(cc->req.request_id);
        if (strncmp(url, "/v2/", 4) == 0)
            cc->req.family = API_V2;
        else if (strncmp(url, "/v1/", 4) == 0)
            cc->req.family = API_V1;
        else if (strncmp(url, "/admin/", 7) == 0)
            cc->req.family = API_ADMIN;

        if (strlen(url) > MAX_URI_BYTES) {
            cc->rejected = 1;
            return queue_error(cc, E_APIG_0201_URI_TOO_LARGE, 1);
        }
        struct header_sizes hs = {0, 0};
        MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header_size, &hs);
        if (hs.largest > MAX_HEADER_BYTES || hs.total > MAX_HEADERS_TOTAL) {
            cc->rejected = 1;
            return queue_error(cc, E_APIG_0201_HEADERS_TOO_LARGE, 1);
        }
        /* Refuse an announced oversized body before reading a byte of it. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end == 0 && n > srv->cfg.max_body_bytes) {
                cc->rejected = 1;
                return queue_error(cc, E_APIG_0201_TOO_LARGE, 1);
            }
        }
        return MHD_YES;
    }
    switch (atomic_load(&cc->phase)) {
    case PHASE_IN_POOL:
        return MHD_YES; /* not called while suspended; harmless if it is */
    case PHASE_POOL_DONE:
        atomic_store(&cc->phase, PHASE_READING);
        return answer(cc, cc->result);
    default:
        break;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cc->rejected)
            return MHD_YES;
        if (cc->too_large || cc->len + n > srv->cfg.max_body_bytes) {
            /* A chunked upload has no Content-Length to refuse up front, and
             * MHD cannot answer mid-body: free what we hold, discard the
             * rest and answer 413 at its end; a sender that keeps going past
             * 4x the limit is cut off. */
            free(cc->body);
            cc->body = NULL;
            cc->len = cc->cap = 0;
            cc->too_large = 1;
            cc->discarded += n;
            return cc->discarded > 4 * srv->cfg.max_body_bytes ? MHD_NO : MHD_YES;
        }
        if (cc->len + n > cc->cap) {
            size_t cap = cc->cap ? cc->cap : 16384;
            while (cap < cc->len + n)
                cap *= 2;
            if (cap > srv->cfg.max_body_bytes)
                cap = srv->cfg.max_body_bytes;
            uint8_t *g = realloc(cc->body, cap);
            if (!g)
                return MHD_NO;
            cc->body = g;
            cc->cap = cap;
        }
        memcpy(cc->body + cc->len, upload_data, n);
        cc->len += n;
        return MHD_YES;
    }
    if (cc->rejected)
        return MHD_YES;
    if (cc->too_large)
        return queue_error(cc, E_APIG_0201_TOO_LARGE, 1);
    return dispatch(srv, cc);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct server *srv = cls;
    struct conn_ctx *cc = *con_cls;
    if (!cc)
        return;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double ms = (double)(end.tv_sec - cc->start.tv_sec) * 1e3 +
                (double)(end.tv_nsec - cc->start.tv_nsec) / 1e6;
    http_log_access(&cc->req, ms);
    metrics_request(srv->metrics, cc->req.route ? cc->req.route->name : "unmatched", cc->req.status,
                    ms / 1e3);
    json_decref(cc->req.json);
    json_decref(cc->req.reply);
    free(cc->req.raw);
    free(cc->body);
    free(cc);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

int http_start(struct server *srv, char *errbuf, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (inet_pton(AF_INET, srv->cfg.listen_host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)srv->cfg.listen_port);
    } else if (inet_pton(AF_INET6, srv->cfg.listen_host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)srv->cfg.listen_port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(errbuf, errlen, "listen: \"%s\" is not an IP address", srv->cfg.listen_host);
        return -1;
    }
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)srv->cfg.listen_port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv->n_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->cfg.request_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->cfg.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)srv->cfg.max_connections_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(MAX_HEADERS_TOTAL + MAX_URI_BYTES + 64 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned)1, MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(errbuf, errlen, "cannot listen on %s:%d", srv->cfg.listen_host,
                 srv->cfg.listen_port);
        return -1;
    }
    return 0;
}

int http_port(struct server *srv)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : -1;
}

void http_stop(struct server *srv, int grace_s)
{
    atomic_store(&srv->stopping, 1);
    if (!srv->daemon)
        return;
    MHD_socket s = MHD_quiesce_daemon(srv->daemon);
    if (s != MHD_INVALID_SOCKET)
        close(s);
    /* Pool jobs resume their connections; MHD must not stop with any still
     * suspended, so they all finish first (downloads have timeouts). */
    if (srv->pool)
        workpool_drain(srv->pool);
    if (srv->store_pool)
        workpool_drain(srv->store_pool);
    /* Let in-flight requests finish and their answers go out. */
    for (int i = 0; i < grace_s * 20 && atomic_load(&srv->in_flight) > 0; i++)
        usleep(50 * 1000);
    MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
}
