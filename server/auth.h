/* auth.h: request authentication per [auth] mode: static X-Auth-Token
 * tokens and SDK-HMAC-SHA256 AK/SK signatures, optionally limited to one
 * project each. */
#ifndef IMGSEARCH_AUTH_H
#define IMGSEARCH_AUTH_H

#include "server/request.h"

/* Checks req's credentials; fills req->who. Returns E_OK or the error to
 * send (with req->detail set for APIG.0301). */
enum err auth_check(struct request *req);

/* Constant-time string equality. */
int auth_equal(const char *a, const char *b);

#endif
