/* compaction.h: turning a float instance into a compact one (issue 9): its
 * stored float vectors become int8 codes of a projection fitted on them (a
 * short switch, then a rewrite in short batches: the design is in
 * compaction.c), and the projection itself is kept in the database by
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

/* In one short transaction: stores the projection's bytes under
 * pr->digest, marks the float instance compact in that space and moves its
 * change log on (replay_floor = the new change_seq), so no snapshot from
 * before is ever replayed. Its rows stay float until compaction_rewrite;
 * readers code them on the fly meanwhile (vectors_decode). 0 ok; -1 with
 * errbuf (nothing changed: the instance is gone or already compact). */
int compaction_switch(struct db *db, int64_t instance_id, const struct projection *pr,
                      const unsigned char *bytes, size_t len, char *errbuf, size_t errlen);

/* Rows per rewrite transaction, unless [index] compact_batch says. */
#define COMPACTION_BATCH 256
/* A stored code is at most this long; a float vector is longer. */
#define COMPACTION_CODE_MAX 1024

struct compaction_pace {
    int batch;              /* rows per transaction; <= 0: COMPACTION_BATCH */
    int pause_ms;           /* between transactions: the writer is others' meanwhile */
    int (*stop)(void *arg); /* non-zero: stop before the next batch */
    void *arg;
};

struct compaction_progress {
    long long converted; /* rows rewritten */
    long long batches;   /* transactions */
    double hold_ms;      /* the writer held, all batches */
    double max_hold_ms;  /* ... the longest one */
};

/* Rewrites every row of a switched instance that still holds pr->in_dim
 * floats as pr's codes (vectors_code_rows): whole-image vectors, then views, in
 * batches of pace->batch rows, each read and coded outside any transaction
 * and written in one short one. Idempotent and resumable: it only ever
 * looks at float rows. 0: none left; 1: stopped; -1 with errbuf (the
 * batches before stay done). */
int compaction_rewrite(struct db *db, int64_t instance_id, const struct projection *pr,
                       const struct compaction_pace *pace, struct compaction_progress *p,
                       char *errbuf, size_t errlen);

/* Compact instances with float rows left (a rewrite a stop or a crash cut
 * short): the start resumes them (malloc'd ids). */
int compaction_pending(struct db *db, int64_t **ids, size_t *n);

/* Float instances with at least `items` items (malloc'd ids). */
int compaction_candidates(struct db *db, long items, int64_t **ids, size_t *n);

/* The bytes of a projection kept under `digest` (malloc'd). */
enum db_status projections_get(struct db *db, const char *digest, unsigned char **data,
                               size_t *len);

#endif
