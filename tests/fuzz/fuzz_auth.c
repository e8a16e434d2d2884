/* fuzz_auth.c: libFuzzer target for SDK-HMAC-SHA256 / X-Auth-Token
 * checking. The input is lines: Authorization, X-Sdk-Date, method, path,
 * query, then "Name: value" headers. They go (1) straight to the signer
 * (server/signer.c: header split, date, canonical request, signature), with
 * invariants on each result, and (2) as a real HTTP request through
 * libmicrohttpd on a socketpair, routed by the real route table, to
 * auth_check (server/auth.c), which then reads the headers and query
 * exactly as in the server. MHD runs in this thread (MHD_run), so each
 * input is deterministic. The date check is switched off for half the
 * inputs (bit 1 of the last byte; bit 0 picks mode aksk or any) so the
 * canonical-request path is reached with any parsable date, and the seeds
 * that carry valid signatures (fixed date, SK1/SK2 below) keep passing. */
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "server/auth.h"
#include "server/router.h"
#include "server/server.h"
#include "server/signer.h"

#define MAX_LINES 32

struct input {
    char *line[MAX_LINES]; /* point into one buffer; missing lines are "" */
    size_t n;
};

static struct server srv;
static struct MHD_Daemon *daemon_;
static const struct route fallback = {"POST", "*", API_V2, NULL, R_AUTH | R_PROJECT, "fuzz"};

static void setup(void)
{
    static struct credential_config creds[] = {{"c1", "AK1", "SK1", NULL},
                                               {"c2", "AK2", "SK2", "p2"}};
    static struct token_config tokens[] = {{"t1", "fuzz-token-0001", NULL},
                                           {"t2", "fuzz-token-0002", "p2"}};
    srv.cfg.credentials = creds;
    srv.cfg.n_credentials = 2;
    srv.cfg.tokens = tokens;
    srv.cfg.n_tokens = 2;
}

/* --- (1) the signer alone --------------------------------------------------- */

static const char *hdr_lookup(void *ctx, const char *name)
{
    const struct input *in = ctx;
    size_t nl = strlen(name);
    for (size_t i = 5; i < in->n; i++) {
        const char *l = in->line[i];
        if (!strncasecmp(l, name, nl) && l[nl] == ':')
            return l + nl + 1;
    }
    return NULL;
}

static int is_lower_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static size_t count(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void fuzz_signer(struct input *in)
{
    const char *authz = in->line[0], *date = in->line[1];
    char *ak, *sh, *sig;
    int parsed = signer_parse_authorization(authz, &ak, &sh, &sig) == 0;
    if (parsed) {
        if (!ak || !sh || !sig || !*ak || !*sh || !is_lower_hex(sig, 64) || strchr(ak, ',') ||
            strchr(sh, ',') || strlen(ak) + strlen(sh) > strlen(authz))
            abort();
    } else if (ak || sh || sig) {
        abort();
    }
    long long t = signer_parse_date(date);
    if (t != -1 && strlen(date) != 16)
        abort();

    /* The query line as "k=v&k2": keys and values as MHD would hand them. */
    struct signer_query q[16];
    size_t nq = 0;
    char *qs = strdup(in->line[4]), *save = NULL;
    if (!qs)
        goto out;
    for (char *tok = strtok_r(qs, "&", &save); tok && nq < 16; tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        if (eq)
            *eq = 0;
        q[nq].key = tok;
        q[nq].value = eq ? eq + 1 : NULL;
        nq++;
    }
    const char *list = parsed ? sh : in->line[5];
    char *creq = signer_canonical_request(in->line[2], in->line[3], q, nq, list, hdr_lookup, in,
                                          "UNSIGNED-PAYLOAD");
    if (creq) {
        /* method, URI, query, one line per signed header, blank, list, hash */
        size_t ml = strlen(in->line[2]), cl = strlen(creq), ll = strlen(list);
        size_t tail = ll + strlen("\nUNSIGNED-PAYLOAD");
        if (strncmp(creq, in->line[2], ml) || creq[ml] != '\n' || cl < tail + 1 ||
            strcmp(creq + cl - strlen("UNSIGNED-PAYLOAD"), "UNSIGNED-PAYLOAD") ||
            strncmp(creq + cl - tail - 1, "\n", 1) || strncmp(creq + cl - tail, list, ll))
            abort();
        const char *uri_end = strchr(creq + ml + 1, '\n');
        if (!uri_end || uri_end[-1] != '/')
            abort();
        /* The builder stops at a trailing ';' (and "" lists nothing). */
        size_t nh = ll ? count(list, ';') + 1 - (list[ll - 1] == ';') : 0;
        if (count(creq, '\n') != 5 + nh)
            abort();
        char out[65];
        signer_signature(in->line[5], date, creq, out);
        /* Dates too long to be one sign to "" (see signer.h). */
        if (strlen(date) > 174 ? out[0] != 0 : !is_lower_hex(out, 64))
            abort();
        free(creq);
    }
    free(qs);
out:
    free(ak);
    free(sh);
    free(sig);
}

/* --- (2) auth_check behind libmicrohttpd ------------------------------------ */

static int marker;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload_data;
    if (!*con_cls) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* the body is not signed-checked here: drop it */
        return MHD_YES;
    }
    char scratch[4096];
    const char *params[REQ_MAX_PARAMS] = {0};
    int n_params = 0;
    enum api_family family = API_V2;
    const struct route *route = NULL;
    struct request req;
    memset(&req, 0, sizeof req);
    if (router_match(routes, n_routes, method, url, scratch, sizeof scratch, &route, params,
                     &n_params, &family) != ROUTE_FOUND ||
        !(route->flags & R_PROJECT) || n_params < 1) {
        route = &fallback;
        params[0] = "p1";
    }
    req.srv = &srv;
    req.route = route;
    req.family = family;
    req.conn = c;
    req.method = method;
    req.path = url;
    req.project_id = params[0];

    enum err e = auth_check(&req);
    if (strnlen(req.detail, sizeof req.detail) == sizeof req.detail)
        abort();
    if (e == E_OK) {
        if (!req.who.name || (req.who.project_id && (route->flags & R_PROJECT) &&
                              strcmp(req.who.project_id, req.project_id)))
            abort();
    } else if (e != E_APIG_0301 && e != E_APIG_0302 && e != E_TOKEN_MISSING) {
        abort();
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok = MHD_queue_response(c, e == E_OK ? 200 : 401, r);
    MHD_destroy_response(r);
    return ok;
}

/* Appends a field of the input, CR and LF left out (they would end it). */
static size_t put(char *buf, size_t o, const char *s)
{
    for (; *s; s++)
        if (*s != '\r' && *s != '\n')
            buf[o++] = *s;
    return o;
}

/* Appends fixed framing as is. */
static size_t raw(char *buf, size_t o, const char *s)
{
    size_t n = strlen(s);
    memcpy(buf + o, s, n);
    return o + n;
}

static void fuzz_http(const struct input *in, size_t size)
{
    if (!daemon_) {
        daemon_ = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, on_request, NULL,
                                   MHD_OPTION_END);
        if (!daemon_)
            abort();
    }
    /* Everything in the input plus fixed framing fits in 2 * size + 256. */
    char *msg = malloc(2 * size + 256);
    if (!msg)
        return;
    const char *m = in->line[2];
    size_t o = put(msg, 0, *m && strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == strlen(m) ? m : "POST");
    o = raw(msg, o, in->line[3][0] == '/' ? " " : " /");
    o = put(msg, o, in->line[3]);
    o = raw(msg, o, *in->line[4] ? "?" : "");
    o = put(msg, o, in->line[4]);
    o = raw(msg, o, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: ");
    o = put(msg, o, in->line[0]);
    o = raw(msg, o, "\r\nX-Sdk-Date: ");
    o = put(msg, o, in->line[1]);
    o = raw(msg, o, "\r\n");
    for (size_t i = 5; i < in->n; i++) {
        o = put(msg, o, in->line[i]);
        o = raw(msg, o, "\r\n");
    }
    o = raw(msg, o, "\r\n");

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        free(msg);
        return;
    }
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (MHD_add_connection(daemon_, sv[0], (struct sockaddr *)&peer, sizeof peer) != MHD_YES) {
        close(sv[1]); /* MHD closed sv[0] already */
        free(msg);
        return;
    }
    size_t off = 0;
    int shut = 0;
    for (int i = 0; i < 2000; i++) {
        if (off < o) {
            ssize_t w = send(sv[1], msg + off, o - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                off = o;
        } else if (!shut) {
            shutdown(sv[1], SHUT_WR); /* a Content-Length header cannot keep it waiting */
            shut = 1;
        }
        MHD_run(daemon_);
        char buf[4096];
        ssize_t r = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN))
            break;
    }
    close(sv[1]);
    MHD_run(daemon_); /* lets MHD see the close and free the connection */
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv.cfg.credentials)
        setup();
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    /* An embedded NUL would make lines lie about their length: treat as LF. */
    for (size_t i = 0; i < size; i++)
        if (!buf[i])
            buf[i] = '\n';
    struct input in = {.n = 0};
    char *p = buf;
    while (in.n < MAX_LINES) {
        in.line[in.n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = 0;
        p = nl + 1;
    }
    static char empty[] = "";
    while (in.n < 6)
        in.line[in.n++] = empty;

    unsigned mode = size ? data[size - 1] : 0;
    srv.cfg.auth_mode = mode & 1 ? AUTH_AKSK : AUTH_ANY;
    srv.cfg.auth_max_skew_s = mode & 2 ? 900 : 400LL * 366 * 86400 * 100;

    fuzz_signer(&in);
    fuzz_http(&in, size);
    free(buf);
    return 0;
}
