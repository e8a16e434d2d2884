/* detail.h: the optional human-readable failure text the storage sources
 * hand back for logs (never shown to clients). */
#ifndef IMGSEARCH_DETAIL_H
#define IMGSEARCH_DETAIL_H

#include <stddef.h>

/* printf into detail[len]; does nothing when detail is NULL or len is 0. */
void source_detail(char *detail, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
