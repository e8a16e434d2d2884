/* client.h: the CLI's HTTP client: JSON requests to an imgsearchd server,
 * signed with AK/SK exactly like the Huawei Cloud SDKs (server/signer.h) or
 * carrying an X-Auth-Token, so it works against a remote server too. */
#ifndef IMGSEARCH_CLI_CLIENT_H
#define IMGSEARCH_CLI_CLIENT_H

#include <jansson.h>

struct client {
    char *base;    /* "http://host:port", no trailing slash */
    char *project; /* project id for every path */
    char *token;   /* X-Auth-Token, or NULL */
    char *ak, *sk; /* AK/SK signing, or NULL */
};

/* Sends `body` (NULL: none) to `path` (already escaped; the signer gets
 * the decoded form). On any HTTP answer returns 0 with *status and *reply
 * (parsed JSON or NULL); -1 with a message on stderr when no answer came. */
int client_call(const struct client *cl, const char *method, const char *path, json_t *body,
                long *status, json_t **reply);

/* client_call, then: 2xx -> 0 with *reply (may be NULL when not wanted);
 * an error answer prints "error_code: error_msg" and returns 1 (CLI_API). */
int client_api(const struct client *cl, const char *method, const char *path, json_t *body,
               json_t **reply);

/* Percent-encodes one path segment (malloc'd). */
char *client_escape(const char *s);

#endif
