/* compact.h: an instance's descriptor space (issue 9). A float instance
 * stores and indexes the extractor's EXTRACT_DIM-d vectors; a compact one
 * (created while [index] projection was set) maps them through that
 * projection to out_dim dims and stores int8 codes. Every path that stores
 * or searches a vector asks here first, so the two spaces never mix. */
#ifndef IMGSEARCH_COMPACT_H
#define IMGSEARCH_COMPACT_H

#include <stdint.h>
#include "server/request.h"
#include "storage/instances.h"

struct projection;

/* The projection of inst's space: *pr NULL for a float instance.
 * E_MA_4508 (503) for a compact instance whose projection is not the
 * server's (another file, or none configured): its vectors would be
 * compared with vectors of another space. */
enum err compact_space(struct request *req, const struct instance *inst,
                       const struct projection **pr);

/* How many floats a vector of that space has. */
int compact_dim(const struct projection *pr);

/* x (EXTRACT_DIM floats) into the space: y (out_dim floats) = the
 * projection, L2-normalised. With q, also its int8 codes, and y becomes
 * their decoded value: what a rebuild from SQLite indexes, so the live
 * index and a rebuilt one agree exactly. */
void compact_project(const struct projection *pr, const float *x, float *y, int8_t *q);

/* The instance's space as the database says now (NULL: float, or unknown):
 * for a call that read the instance as float before it was made compact. */
struct server;
const struct projection *compact_now(struct server *srv, int64_t instance_id);

/* Whether the instance is now compact in pr's space (pr NULL: no): it was
 * made compact after the caller read it as float (server/compactor.h),
 * rather than being a deleted instance whose id a new one took. */
int compact_switched(struct server *srv, int64_t instance_id, const struct projection *pr);

#endif
