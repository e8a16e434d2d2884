/* jobs.h: import jobs and their per-key progress. The keys of a job are
 * materialised in SQLite (at creation for a manifest, page by page by the
 * lister for a bucket prefix), so a job resumed after a crash knows exactly
 * which keys are left and where its listing stopped; a key's status is
 * committed before the job counts it, so resume neither duplicates nor
 * loses an image. */
#ifndef IMGSEARCH_JOBS_H
#define IMGSEARCH_JOBS_H

#include <jansson.h>
#include <stdint.h>
#include "storage/db.h"

enum key_status { KEY_PENDING = 0, KEY_DONE = 1, KEY_FAILED = 2 };

struct job {
    int64_t id;      /* row id, internal */
    char job_id[40]; /* public id */
    char *project_id;
    char *instance;     /* instance name */
    char *source;       /* obs:// prefix URL as given */
    char *manifest;     /* NULL: none */
    char *item_id_from; /* "key" or "path" */
    int force;
    char *status;                  /* QUEUED RUNNING SUCCEEDED FAILED CANCELLED */
    char *error;                   /* job-level failure reason, or NULL */
    long long total, done, failed; /* total: keys appended so far */
    int listing_done;              /* 0 while the lister still appends keys */
    long long created_ms, started_ms, finished_ms, active_ms;
};

/* One key to import: object key, object URL and the manifest line (or NULL). */
struct job_key {
    int64_t seq;
    char *key;
    char *url;
    char *meta; /* JSON text */
};

/* Inserts the job (status QUEUED) and its keys in one transaction; fills
 * j->id and j->job_id. Its listing is done: these are all its keys. */
enum db_status jobs_create(struct db *db, struct job *j, const struct job_key *keys, size_t n);
/* Inserts a job (status QUEUED) with no keys yet and listing_done = 0: the
 * lister appends them (jobs_append). Fills j->id and j->job_id. */
enum db_status jobs_create_listing(struct db *db, struct job *j);

/* Lister side. The oldest QUEUED/RUNNING job whose listing is not done;
 * DB_NOT_FOUND when none. */
enum db_status jobs_next_unlisted(struct db *db, struct job *out);
/* The same among the RUNNING jobs `node` claimed (a shared database: each
 * node lists the sources of its own jobs only, never two at once). */
enum db_status jobs_next_unlisted_by(struct db *db, const char *node, struct job *out);
/* The last key appended (listings run in byte order, so the listing
 * resumes after it), or *out = NULL when none; malloc'd. */
enum db_status jobs_last_key(struct db *db, int64_t id, char **out);
/* These take the job as jobs_next_unlisted gave it: row id and public id
 * both match, since a row id is reused once its instance deleted the job.
 * Appends keys after the existing ones and grows total, in one transaction.
 * DB_NOT_FOUND (nothing written) when the job is gone, finished or
 * cancelled, or its listing is already done: the lister stops. */
enum db_status jobs_append(struct db *db, const struct job *j, const struct job_key *keys,
                           size_t n);
/* Marks the listing complete (total is final); DB_NOT_FOUND as above. */
enum db_status jobs_listing_finish(struct db *db, const struct job *j);
/* Ends the job FAILED with `error` because its listing failed. */
enum db_status jobs_listing_fail(struct db *db, const struct job *j, const char *error);

/* By public id, within a project (and instance, when not NULL). */
enum db_status jobs_get(struct db *db, const char *project_id, const char *instance,
                        const char *job_id, struct job *out);
enum db_status jobs_get_row(struct db *db, int64_t id, struct job *out);
/* Newest first; instance NULL: every instance of the project; project NULL: all. */
enum db_status jobs_list(struct db *db, const char *project_id, const char *instance,
                         const char *status, struct job **out, size_t *n);
void job_free(struct job *j);
void jobs_free(struct job *list, size_t n);

/* Per-key errors as [{key, error_code, error_msg}] in key order. */
enum db_status jobs_errors(struct db *db, int64_t id, long long offset, long long limit,
                           json_t **out);

/* Marks the oldest QUEUED job RUNNING and loads it; DB_NOT_FOUND when none.
 * *resumed: it had run before (a crash or shutdown interrupted it). */
enum db_status jobs_claim(struct db *db, struct job *out, int *resumed);
/* The same, recording `node` (NULL: none) as the job's runner. */
enum db_status jobs_claim_by(struct db *db, const char *node, struct job *out, int *resumed);
/* RUNNING -> QUEUED for every job (start-up: their worker died). */
enum db_status jobs_requeue_running(struct db *db);
/* Sets a final status (only from QUEUED/RUNNING); `error` may be NULL. */
enum db_status jobs_finish(struct db *db, int64_t id, const char *status, const char *error);
/* QUEUED/RUNNING -> CANCELLED; DB_OK also when it had already ended. */
enum db_status jobs_cancel(struct db *db, int64_t id);
/* Current status into buf. */
enum db_status jobs_status(struct db *db, int64_t id, char *buf, size_t len);
/* The same for the job's runner `node`: "LOST" when another node (or none)
 * has claimed it since (it was requeued while `node` was taken for dead). */
enum db_status jobs_status_for(struct db *db, int64_t id, const char *node, char *buf, size_t len);
/* Adds time spent working (for images/s across restarts). */
enum db_status jobs_add_active(struct db *db, int64_t id, long long ms);

/* Up to `max` pending keys in order. */
enum db_status jobs_pending(struct db *db, int64_t id, size_t max, struct job_key **out, size_t *n);
void job_keys_free(struct job_key *k, size_t n);
/* Durably records a key's result. */
enum db_status jobs_key_result(struct db *db, int64_t id, int64_t seq, enum key_status st,
                               const char *code, const char *msg);

#endif
