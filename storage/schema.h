/* schema.h: the ordered lists of schema migrations, one per back end.
 * Both have the same length: migration N means the same change on each. */
#ifndef IMGSEARCH_SCHEMA_H
#define IMGSEARCH_SCHEMA_H

#include <stddef.h>

size_t schema_count(void);
const char *schema_migration(size_t i); /* 0-based; migration i brings version i -> i+1 */

/* PostgreSQL's (storage/schema_pg.c). */
size_t schema_pg_count(void);
const char *schema_pg_migration(size_t i);

#endif
