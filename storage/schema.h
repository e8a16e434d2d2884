/* schema.h: the ordered list of schema migrations. */
#ifndef IMGSEARCH_SCHEMA_H
#define IMGSEARCH_SCHEMA_H

#include <stddef.h>

size_t schema_count(void);
const char *schema_migration(size_t i); /* 0-based; migration i brings version i -> i+1 */

#endif
