/* spaces.h: the descriptor spaces this server knows, by digest: the
 * configured projection ([index] projection) and those fitted on an
 * instance's own vectors (server/compactor.c), loaded from the database on
 * first use and kept for the life of the process. A compact instance names
 * its space by digest (instances.projection); every path that maps or reads
 * its vectors asks here. */
#ifndef IMGSEARCH_SPACES_H
#define IMGSEARCH_SPACES_H

#include "storage/db.h"

struct projection;
struct spaces;

/* `configured` (may be NULL) becomes the spaces' own. */
int spaces_new(struct db *db, struct projection *configured, struct spaces **out);
void spaces_free(struct spaces *sp);

/* The projection named `digest`, or NULL when neither configured nor in the
 * database (or its bytes there fail their checksum: logged). */
const struct projection *spaces_get(struct spaces *sp, const char *digest);

/* Keeps a projection just fitted (its digest set); the spaces own it. */
void spaces_add(struct spaces *sp, struct projection *pr);

#endif
