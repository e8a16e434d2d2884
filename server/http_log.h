/* http_log.h: one access-log line per request on stderr, and the detail of
 * every error answer (so an operator sees why, while the client gets the
 * cloud's fixed message). IMGSEARCH_QUIET=1 silences the access log. */
#ifndef IMGSEARCH_HTTP_LOG_H
#define IMGSEARCH_HTTP_LOG_H

#include "server/request.h"

void http_log_access(const struct request *req, double ms);
void http_log_error(const struct request *req, const char *code, const char *msg);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
