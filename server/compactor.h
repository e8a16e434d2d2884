/* compactor.h: makes a float instance compact in a space fitted on its own
 * vectors (issue 9, "per instance when it grows"): PCA-whitening to 256
 * dims trained on a sample of the instance's stored views, every vector
 * rewritten as int8 codes in short batches that never hold the database
 * writer for long, the index rebuilt in the new space. The study behind it (docs/bench/compact.md)
 * found a projection fitted on the instance as good as float32 on every transform. */
#ifndef IMGSEARCH_COMPACTOR_H
#define IMGSEARCH_COMPACTOR_H

#include <stddef.h>
#include <stdint.h>
#include "server/server.h"

#define COMPACT_OUT_DIM 256
#define COMPACT_SAMPLE_MAX 20000 /* vectors the fit reads at most */

struct compact_result {
    char digest[65];
    long long vectors;  /* rewritten */
    long long batches;  /* ... in this many transactions */
    double switch_ms;   /* the switch transaction held the writer this long */
    double max_hold_ms; /* the longest rewrite transaction */
    int pending;        /* the rewrite stopped or failed: resumed at the next start */
    size_t trained_on;
    double seconds;
};

/* Fits the projection (reads only), switches the instance in one short
 * transaction (storage/compaction.h), then rewrites its float rows as codes
 * in short batches ([index] compact_batch, compact_pause_ms) before it
 * returns. Adds, deletes and searches of this and every other instance go
 * on meanwhile; the index is rebuilt in the new space on its next use,
 * float rows coded on the fly. A call that had already read the instance as
 * float and reaches it after the switch goes into the new space (its
 * vectors projected then, server/ingest.c and search.c). 0 ok (compact; res->pending when the rewrite
 * stopped for a shutdown or failed: the next start resumes it); otherwise
 * nothing changed and errbuf says why: -2 refused (already compact, too
 * few vectors to fit), -1 failed (a store error). */
int compact_instance(struct server *srv, int64_t instance_id, struct compact_result *res,
                     char *errbuf, size_t errlen);

/* The compactor thread: first it resumes every conversion a stop or a
 * crash cut short (compaction_pending); then, with [index] compact_after,
 * makes float instances of that many items compact, first every one
 * already that big (existing data dirs), then each add reports its
 * instance's size here. */
int compactor_start(struct server *srv);
void compactor_note(struct server *srv, int64_t instance_id, size_t items);
void compactor_stop(struct server *srv);

#endif
