/* detail.c: see detail.h. */
#include <stdarg.h>
#include <stdio.h>
#include "storage/detail.h"

void source_detail(char *detail, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!detail || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(detail, len, fmt, ap);
    va_end(ap);
}
