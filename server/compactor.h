/* compactor.h: makes a float instance compact in a space fitted on its own
 * vectors (issue 9, "per instance when it grows"): PCA-whitening to 256
 * dims trained on a sample of the instance's stored views, every vector
 * rewritten as int8 codes in one transaction, the index rebuilt in the new
 * space. The study behind it (docs/bench/compact.md) found a projection
 * fitted on the instance as good as float32 on every transform. */
#ifndef IMGSEARCH_COMPACTOR_H
#define IMGSEARCH_COMPACTOR_H

#include <stddef.h>
#include <stdint.h>
#include "server/server.h"

#define COMPACT_OUT_DIM 256
#define COMPACT_SAMPLE_MAX 20000 /* vectors the fit reads at most */

struct compact_result {
    char digest[65];
    long long vectors; /* rewritten */
    size_t trained_on;
    double seconds;
};

/* Writes of the instance wait meanwhile (its write lock); searches go on
 * with the float index until the new one replaces it. A call that had
 * already read the instance as float and reaches it after the switch is
 * answered 503 ModelArts.4508 (retry). 0 ok; otherwise nothing changed and
 * errbuf says why: -2 refused (already compact, too few vectors to fit),
 * -1 failed (a store error). */
int compact_instance(struct server *srv, int64_t instance_id, struct compact_result *res,
                     char *errbuf, size_t errlen);

/* [index] compact_after: a thread that makes float instances of that many
 * items compact, first every one already that big (existing data dirs, at
 * start), then each add reports its instance's size here. A no-op when the
 * setting is 0. */
int compactor_start(struct server *srv);
void compactor_note(struct server *srv, int64_t instance_id, size_t items);
void compactor_stop(struct server *srv);

#endif
