/* auth.c: verifies X-Auth-Token and SDK-HMAC-SHA256 exactly as the cloud's
 * gateway does (API spec §2): the canonical request is rebuilt from the
 * client's own SignedHeaders list and the raw body bytes received. */
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "server/auth.h"
#include "server/router.h"
#include "server/server.h"
#include "server/signer.h"

int auth_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    /* Compare over the longer length so timing reveals no prefix. */
    int diff = la != lb;
    size_t n = la > lb ? la : lb;
    for (size_t i = 0; i < n; i++)
        diff |= (i < la ? a[i] : 0) ^ (i < lb ? b[i] : 0);
    return diff == 0;
}

static const char *header_cb(void *ctx, const char *name)
{
    return req_header(ctx, name);
}

struct query_acc {
    struct signer_query q[64];
    size_t n;
    int overflow;
};

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct query_acc *acc = cls;
    if (acc->n == 64) {
        acc->overflow = 1;
        return MHD_NO;
    }
    acc->q[acc->n].key = key;
    acc->q[acc->n].value = value ? value : "";
    acc->n++;
    return MHD_YES;
}

/* The project limit of a credential or token, and X-Project-Id, must agree
 * with the {project_id} the request names. */
static enum err check_project(struct request *req)
{
    if (!(req->route->flags & R_PROJECT))
        return E_OK;
    if (req->who.project_id && strcmp(req->who.project_id, req->project_id) != 0)
        return req_fail(req, E_APIG_0302, "credential is limited to another project");
    const char *xp = req_header(req, "X-Project-Id");
    if (xp && *xp && strcmp(xp, req->project_id) != 0)
        return req_fail(req, E_APIG_0302, "X-Project-Id does not match the path");
    return E_OK;
}

static enum err check_token(struct request *req, const char *token)
{
    const struct config *cfg = &req->srv->cfg;
    for (size_t i = 0; i < cfg->n_tokens; i++)
        if (auth_equal(cfg->tokens[i].token, token)) {
            req->who.name = cfg->tokens[i].name;
            req->who.project_id = cfg->tokens[i].project_id;
            return check_project(req);
        }
    return req_fail(req, E_APIG_0301, "decrypt token fail");
}

/* Lists "a;b;c" must be lowercase, sorted and include x-sdk-date. */
static int signed_headers_ok(const char *list)
{
    int has_date = 0;
    const char *p = list, *prev = NULL;
    size_t prev_len = 0;
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        if (n == 0)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (p[i] >= 'A' && p[i] <= 'Z')
                return 0;
        if (n == 10 && !strncmp(p, "x-sdk-date", 10))
            has_date = 1;
        if (prev) {
            size_t m = n < prev_len ? n : prev_len;
            int c = strncmp(prev, p, m);
            if (c > 0 || (c == 0 && prev_len >= n))
                return 0;
        }
        prev = p;
        prev_len = n;
        if (!semi)
            break;
        p = semi + 1;
    }
    return has_date;
}

static enum err check_aksk(struct request *req, const char *authz)
{
    const struct config *cfg = &req->srv->cfg;
    char *ak = NULL, *sh = NULL, *sig = NULL, *creq = NULL;
    enum err rc = E_OK;
    if (signer_parse_authorization(authz, &ak, &sh, &sig) != 0) {
        rc = req_fail(req, E_APIG_0301, "verify aksk signature fail");
        goto out;
    }
    const struct credential_config *cred = NULL;
    for (size_t i = 0; i < cfg->n_credentials; i++)
        if (auth_equal(cfg->credentials[i].access_key, ak))
            cred = &cfg->credentials[i];
    if (!cred) {
        rc = req_fail(req, E_APIG_0301, "Get secretKey failed");
        goto out;
    }
    if (!signed_headers_ok(sh)) {
        rc = req_fail(req, E_APIG_0301, "verify aksk signature fail");
        goto out;
    }
    const char *date = req_header(req, "X-Sdk-Date");
    long long t = signer_parse_date(date);
    if (t < 0) {
        rc = req_fail(req, E_APIG_0301, "verify aksk signature fail");
        goto out;
    }
    if (llabs((long long)time(NULL) - t) > cfg->auth_max_skew_s) {
        rc = req_fail(req, E_APIG_0301, "signature expired");
        goto out;
    }
    char payload_hash[65];
    const char *content_sha = req_header(req, "X-Sdk-Content-Sha256");
    if (content_sha && !strcmp(content_sha, "UNSIGNED-PAYLOAD"))
        strcpy(payload_hash, "UNSIGNED-PAYLOAD");
    else
        sha256_hex(req->body ? (const void *)req->body : "", req->body_len, payload_hash);

    struct query_acc qa = {.n = 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect_query, &qa);
    if (qa.overflow) {
        rc = req_fail(req, E_APIG_0301, "verify aksk signature fail");
        goto out;
    }
    creq = signer_canonical_request(req->method, req->path, qa.q, qa.n, sh, header_cb, req,
                                    payload_hash);
    char expect[65];
    if (creq)
        signer_signature(cred->secret_key, date, creq, expect);
    if (!creq || CRYPTO_memcmp(expect, sig, 64) != 0) {
        /* Like the gateway, show the canonical request we computed ('\n' as
         * '|'), so a client author can see where the two differ. */
        char detail[sizeof req->detail];
        int n = snprintf(detail, sizeof detail, "verify aksk signature fail,canonicalRequest:%s",
                         creq ? creq : "(a signed header is missing)");
        (void)n;
        for (char *c = detail; *c; c++)
            if (*c == '\n')
                *c = '|';
        rc = req_fail(req, E_APIG_0301, detail);
        goto out;
    }
    req->who.name = cred->name;
    req->who.project_id = cred->project_id;
    rc = check_project(req);
out:
    free(ak);
    free(sh);
    free(sig);
    free(creq);
    return rc;
}

enum err auth_check(struct request *req)
{
    enum auth_mode mode = req->srv->cfg.auth_mode;
    req->who.name = "anonymous";
    req->who.project_id = NULL;
    if (mode == AUTH_NONE)
        return E_OK;
    const char *authz = req_header(req, "Authorization");
    const char *token = req_header(req, "X-Auth-Token");
    int has_sig = authz && !strncmp(authz, SIGNER_ALGORITHM " ", strlen(SIGNER_ALGORITHM) + 1);
    int has_token = token && *token;
    if (mode == AUTH_AKSK || (mode == AUTH_ANY && has_sig)) {
        if (!authz || !*authz)
            return req_fail(req, E_APIG_0301, "Authorization header not found");
        return check_aksk(req, authz);
    }
    if (!has_token)
        return req_fail(req, E_TOKEN_MISSING, NULL);
    return check_token(req, token);
}
