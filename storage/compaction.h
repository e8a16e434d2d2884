/* compaction.h: turning a float instance into a compact one (issue 9): its
 * stored float vectors become int8 codes of a projection fitted on them, in
 * one transaction, and the projection itself is kept in the database by
 * digest, so the instance's space survives restarts and is the same on every
 * node. The fit and the index rebuild are the caller's (server/compactor.c). */
#ifndef IMGSEARCH_COMPACTION_H
#define IMGSEARCH_COMPACTION_H

#include <stddef.h>
#include <stdint.h>
#include "storage/db.h"

struct projection;

/* Up to `max` of the instance's stored float vectors (every view), spread
 * over all of them when there are more: *x holds *n x dim floats (malloc'd).
 * 0 ok; -1 on error or when a stored vector is not `dim` floats. */
int compaction_sample(struct db *db, int64_t instance_id, int dim, size_t max, float **x,
                      size_t *n);

/* In one transaction: stores the projection's bytes under pr->digest,
 * rewrites every vector of the instance as pr's int8 codes, marks the
 * instance compact in that space and moves its change log on (replay_floor
 * = the new change_seq), so no snapshot from before is ever replayed.
 * *converted: how many vectors. 0 ok; -1 with errbuf (nothing changed). */
int compaction_convert(struct db *db, int64_t instance_id, const struct projection *pr,
                       const unsigned char *bytes, size_t len, long long *converted, char *errbuf,
                       size_t errlen);

/* Float instances with at least `items` items (malloc'd ids). */
int compaction_candidates(struct db *db, long items, int64_t **ids, size_t *n);

/* The bytes of a projection kept under `digest` (malloc'd). */
enum db_status projections_get(struct db *db, const char *digest, unsigned char **data,
                               size_t *len);

#endif
