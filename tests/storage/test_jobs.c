/* test_jobs.c: storage/jobs.c on a temporary database: a job and its keys
 * created in one go; claim takes the oldest QUEUED job once and tells a
 * resumed one apart; pending keys shrink as results are recorded; counts
 * come from the key markers; errors page in key order; cancel only ends
 * unfinished jobs; requeue puts interrupted jobs back; projects and
 * instances keep their jobs apart; a job listed in the background takes
 * keys in batches until its listing is done, cancelled or failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "storage/db.h"
#include "storage/jobs.h"
#include "tests/storage/testdb.h"
#include "tests/unit.h"

static struct db *open_db(const char *name)
{
    struct db *db = NULL;
    CHECK_INT(testdb_open(name, &db), 0);
    return db;
}

static int64_t make_job(struct db *db, const char *project, const char *inst, size_t n,
                        char job_id[40])
{
    struct job_key *keys = calloc(n, sizeof *keys);
    char k[32][32], u[32][64];
    for (size_t i = 0; i < n && i < 32; i++) {
        snprintf(k[i], sizeof k[i], "dir/%02zu.jpg", i);
        snprintf(u[i], sizeof u[i], "obs://local/dir/%02zu.jpg", i);
        keys[i].key = k[i];
        keys[i].url = u[i];
        keys[i].meta = i == 0 ? "{\"key\":\"dir/00.jpg\"}" : NULL;
    }
    struct job j = {.project_id = (char *)project,
                    .instance = (char *)inst,
                    .source = "obs://local/dir/",
                    .item_id_from = "key"};
    CHECK_INT(jobs_create(db, &j, keys, n), DB_OK);
    free(keys);
    CHECK(!strncmp(j.job_id, "imp-", 4) && strlen(j.job_id) == 28);
    if (job_id)
        strcpy(job_id, j.job_id);
    return j.id;
}

static void test_lifecycle(void)
{
    struct db *db = open_db("life.db");
    char id1[40], id2[40];
    int64_t j1 = make_job(db, "p1", "a", 5, id1);
    make_job(db, "p1", "b", 2, id2);
    CHECK(strcmp(id1, id2) != 0);

    struct job j;
    int resumed = -1;
    CHECK_INT(jobs_claim(db, &j, &resumed), DB_OK);
    CHECK_INT(j.id, j1);
    CHECK_INT(resumed, 0);
    CHECK_STR(j.status, "RUNNING");
    CHECK_INT(j.total, 5);
    CHECK(j.started_ms > 0);
    job_free(&j);

    struct job_key *k;
    size_t n;
    CHECK_INT(jobs_pending(db, j1, 3, &k, &n), DB_OK);
    CHECK_INT(n, 3);
    CHECK_STR(k[0].key, "dir/00.jpg");
    CHECK_STR(k[0].meta, "{\"key\":\"dir/00.jpg\"}");
    CHECK(k[1].meta == NULL);
    CHECK_INT(jobs_key_result(db, j1, k[0].seq, KEY_DONE, NULL, NULL), DB_OK);
    CHECK_INT(jobs_key_result(db, j1, k[1].seq, KEY_FAILED, "MMS.0003", "bad"), DB_OK);
    CHECK_INT(jobs_key_result(db, j1, k[2].seq, KEY_FAILED, "ModelArts.4706", "gone"), DB_OK);
    job_keys_free(k, n);
    CHECK_INT(jobs_pending(db, j1, 10, &k, &n), DB_OK);
    CHECK_INT(n, 2);
    CHECK_STR(k[0].key, "dir/03.jpg");
    job_keys_free(k, n);

    CHECK_INT(jobs_get(db, "p1", "a", id1, &j), DB_OK);
    CHECK_INT(j.done, 1);
    CHECK_INT(j.failed, 2);
    job_free(&j);
    CHECK_INT(jobs_get(db, "p2", NULL, id1, &j), DB_NOT_FOUND);
    CHECK_INT(jobs_get(db, "p1", "b", id1, &j), DB_NOT_FOUND);

    json_t *errs;
    CHECK_INT(jobs_errors(db, j1, 1, 10, &errs), DB_OK);
    CHECK_INT(json_array_size(errs), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(errs, 0), "error_code")),
              "ModelArts.4706");
    json_decref(errs);

    /* A crash: RUNNING goes back to QUEUED and the next claim is a resume. */
    CHECK_INT(jobs_requeue_running(db), DB_OK);
    CHECK_INT(jobs_claim(db, &j, &resumed), DB_OK);
    CHECK_INT(j.id, j1);
    CHECK_INT(resumed, 1);
    job_free(&j);
    CHECK_INT(jobs_add_active(db, j1, 1500), DB_OK);
    CHECK_INT(jobs_finish(db, j1, "SUCCEEDED", NULL), DB_OK);
    CHECK_INT(jobs_cancel(db, j1), DB_OK); /* finished stays finished */
    char st[16];
    CHECK_INT(jobs_status(db, j1, st, sizeof st), DB_OK);
    CHECK_STR(st, "SUCCEEDED");
    CHECK_INT(jobs_get_row(db, j1, &j), DB_OK);
    CHECK_INT(j.active_ms, 1500);
    CHECK(j.finished_ms > 0);
    job_free(&j);

    /* The second job: cancelled while queued, so nothing claims it. */
    struct job *list;
    CHECK_INT(jobs_list(db, "p1", "b", NULL, &list, &n), DB_OK);
    CHECK_INT(n, 1);
    CHECK_INT(jobs_cancel(db, list[0].id), DB_OK);
    jobs_free(list, n);
    CHECK_INT(jobs_claim(db, &j, &resumed), DB_NOT_FOUND);
    CHECK_INT(jobs_list(db, "p1", NULL, NULL, &list, &n), DB_OK);
    CHECK_INT(n, 2);
    CHECK_STR(list[0].status, "CANCELLED"); /* newest first */
    CHECK_STR(list[1].status, "SUCCEEDED");
    jobs_free(list, n);
    CHECK_INT(jobs_list(db, NULL, NULL, "CANCELLED", &list, &n), DB_OK);
    CHECK_INT(n, 1);
    jobs_free(list, n);
    db_close(db);
}

static void test_empty_job(void)
{
    struct db *db = open_db("empty.db");
    make_job(db, "p", "i", 0, NULL);
    struct job j;
    int resumed;
    CHECK_INT(jobs_claim(db, &j, &resumed), DB_OK);
    CHECK_INT(j.total, 0);
    struct job_key *k;
    size_t n;
    CHECK_INT(jobs_pending(db, j.id, 8, &k, &n), DB_OK);
    CHECK_INT(n, 0);
    job_keys_free(k, n);
    job_free(&j);
    db_close(db);
}

/* n keys named lst/NNNN starting at `from`. */
static void append_keys(struct db *db, const struct job *j, int from, int n, enum db_status want)
{
    struct job_key k[8];
    char key[8][32], url[8][64];
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(key[i], sizeof key[i], "lst/%04d", from + i);
        snprintf(url[i], sizeof url[i], "obs://local/lst/%04d", from + i);
        k[i] = (struct job_key){.key = key[i], .url = url[i]};
    }
    CHECK_INT(jobs_append(db, j, k, (size_t)n), want);
}

/* A job listed in the background: keys arrive in batches after creation,
 * total follows, the last key is where a resumed listing starts, and only
 * an unfinished job still listing takes keys. */
static void test_listing(void)
{
    struct db *db = open_db("listing.db");
    struct job j = {
        .project_id = "p", .instance = "i", .source = "obs://local/lst/", .item_id_from = "key"};
    CHECK_INT(jobs_create_listing(db, &j), DB_OK);
    CHECK_INT(j.total, 0);
    CHECK_INT(j.listing_done, 0);
    make_job(db, "p", "i", 2, NULL); /* a manifest-style job: listed already */

    struct job l, got;
    char *last = (char *)"x";
    CHECK_INT(jobs_next_unlisted(db, &l), DB_OK);
    CHECK_INT(l.id, j.id);
    CHECK_INT(jobs_last_key(db, l.id, &last), DB_OK);
    CHECK(last == NULL);
    append_keys(db, &l, 0, 3, DB_OK);
    append_keys(db, &l, 3, 2, DB_OK);
    CHECK_INT(jobs_last_key(db, l.id, &last), DB_OK);
    CHECK_STR(last, "lst/0004");
    free(last);
    CHECK_INT(jobs_get_row(db, j.id, &got), DB_OK);
    CHECK_INT(got.total, 5);
    CHECK_INT(got.listing_done, 0);
    job_free(&got);

    /* Workers take the first keys while listing goes on; seqs continue. */
    int resumed;
    CHECK_INT(jobs_claim(db, &got, &resumed), DB_OK);
    CHECK_INT(got.id, j.id);
    job_free(&got);
    struct job_key *k;
    size_t n;
    CHECK_INT(jobs_pending(db, j.id, 10, &k, &n), DB_OK);
    CHECK_INT(n, 5);
    CHECK_INT(k[4].seq, 4);
    CHECK_STR(k[4].url, "obs://local/lst/0004");
    job_keys_free(k, n);

    /* The same row id under another public id (a reused row) is not it. */
    struct job other = l;
    snprintf(other.job_id, sizeof other.job_id, "imp-other");
    append_keys(db, &other, 5, 1, DB_NOT_FOUND);
    CHECK_INT(jobs_listing_finish(db, &other), DB_NOT_FOUND);

    CHECK_INT(jobs_listing_finish(db, &l), DB_OK);
    CHECK_INT(jobs_listing_finish(db, &l), DB_NOT_FOUND); /* once */
    append_keys(db, &l, 5, 1, DB_NOT_FOUND);              /* total is final */
    CHECK_INT(jobs_get_row(db, j.id, &got), DB_OK);
    CHECK_INT(got.total, 5);
    CHECK_INT(got.listing_done, 1);
    job_free(&got);
    CHECK_INT(jobs_next_unlisted(db, &got), DB_NOT_FOUND);
    job_free(&l);

    /* Cancelled while listing: no more keys, and no longer to be listed. */
    struct job c = j;
    CHECK_INT(jobs_create_listing(db, &c), DB_OK);
    CHECK_INT(jobs_next_unlisted(db, &l), DB_OK);
    CHECK_INT(l.id, c.id);
    append_keys(db, &l, 0, 1, DB_OK);
    CHECK_INT(jobs_cancel(db, c.id), DB_OK);
    append_keys(db, &l, 1, 1, DB_NOT_FOUND);
    CHECK_INT(jobs_listing_fail(db, &l, "late"), DB_NOT_FOUND);
    CHECK_INT(jobs_next_unlisted(db, &got), DB_NOT_FOUND);
    job_free(&l);

    /* A failed listing ends the job with its reason. */
    struct job f = j;
    CHECK_INT(jobs_create_listing(db, &f), DB_OK);
    CHECK_INT(jobs_next_unlisted(db, &l), DB_OK);
    CHECK_INT(jobs_listing_fail(db, &l, "listing the source failed: HTTP 403"), DB_OK);
    CHECK_INT(jobs_get_row(db, f.id, &got), DB_OK);
    CHECK_STR(got.status, "FAILED");
    CHECK_STR(got.error, "listing the source failed: HTTP 403");
    CHECK(got.finished_ms > 0);
    CHECK_INT(got.listing_done, 0);
    job_free(&got);
    job_free(&l);
    db_close(db);
}

int main(void)
{
    if (testdb_init("test-jobs") != 0)
        return 1;
    RUN(test_lifecycle);
    RUN(test_empty_job);
    RUN(test_listing);
    testdb_cleanup();
    return unit_report();
}
