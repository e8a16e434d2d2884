/* snapstore.h: index snapshots kept in an object-store bucket ([cluster]
 * snapshot_bucket: S3 or a local directory), so a node with an empty
 * data_dir, or one taking an instance over, loads a snapshot and replays the
 * change log instead of rebuilding the index from every row.
 *
 * Key: <snapshot_prefix>snapshots/<instance>/<shard>.snap. The object is the
 * local snapshot file byte for byte (server/registry.c: "IMGSNAP1", seq,
 * FAISS index) followed by a trailer: its length, the instance id, shard,
 * the instance's created_ms and the file's SHA-256. A fetch checks all of
 * them before the file is renamed into data_dir, so a truncated or corrupt
 * object, or one left by another instance that had the same id (SQLite
 * reuses a deleted instance's id; a database re-created on the same bucket
 * starts again at 1), is refused and the index is rebuilt. One PUT per
 * object: S3 shows readers the old or the new object whole, never a part.
 *
 * Transfers are streamed in constant memory. S3 takes at most 5 GiB in one
 * PUT and multipart uploads are not implemented: a larger snapshot stays
 * local only, with a log line saying so. */
#ifndef IMGSEARCH_SNAPSTORE_H
#define IMGSEARCH_SNAPSTORE_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct db;
struct snapstore;

/* Which snapshot: the instance, its shard (0 until instances are sharded)
 * and the instance's created_ms, which tells two instances of one id apart. */
struct snap_ref {
    int64_t instance;
    int shard;
    int64_t created_ms;
};

/* *out is NULL when [cluster] snapshot_bucket is not set (the default). */
int snapstore_new(const struct config *cfg, struct snapstore **out, char *errbuf, size_t errlen);
void snapstore_free(struct snapstore *ss);

/* The ref of (instance, shard), reading created_ms from the database. */
int snapstore_ref(struct db *db, int64_t instance, int shard, struct snap_ref *ref);

/* "<prefix>snapshots/<instance>/<shard>.snap"; -1 when it does not fit. */
int snapstore_key(const char *prefix, const struct snap_ref *ref, char *buf, size_t len);

/* Uploads the local snapshot at `path`, taken at `seq`. 0: stored. */
int snapstore_put(struct snapstore *ss, const struct snap_ref *ref, const char *path, int64_t seq);

/* When the store holds a snapshot of ref whose seq is in [lo, hi] and above
 * `than` (a usable local one's seq, or -1), downloads it to `tmp`, checks it
 * and renames it to `path`. Returns its seq, or -1: none, not newer,
 * refused or unreachable (each logged), and `path` is left as it was.
 * *stored: the seq of the store's usable copy (-1: none, or unknown). */
int64_t snapstore_fetch(struct snapstore *ss, const struct snap_ref *ref, const char *path,
                        const char *tmp, int64_t than, int64_t lo, int64_t hi, int64_t *stored);

/* Removes the snapshot of (instance, shard) from the store (absent: fine).
 * 0 on success. */
int snapstore_delete(struct snapstore *ss, int64_t instance, int shard);

#endif
