/* test_items.c: items_put's write transaction on a full disk. A COMMIT that
 * runs out of space (RLIMIT_FSIZE stands in for a full disk: writes past it
 * fail with EFBIG, no root or mount needed) fails, stores nothing, leaves
 * change_seq as it was, says why in db_last_error, and the same connection
 * works again once there is room, integrity_check clean. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "storage/db.h"
#include "storage/instances.h"
#include "storage/items.h"
#include "storage/vectors.h"
#include "tests/unit.h"

#define DIM 8

static char dir[64];

static struct db *open_with_instance(const char *name, int64_t *inst)
{
    char path[128], err[256] = "";
    struct db *db = NULL;
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    CHECK_INT(db_open(path, &db, err, sizeof err), 0);
    if (!db)
        return NULL;
    struct instance in = {.project_id = "p", .name = "i", .model = "common-search"};
    CHECK_INT(instances_create(db, &in), DB_OK);
    *inst = in.id;
    return db;
}

static enum db_status put(struct db *db, int64_t inst, const char *id, const uint8_t *thumb,
                          size_t thumb_len)
{
    static const float vec[DIM] = {1, 0, 0, 0, 0, 0, 0, 0};
    struct item_rec rec = {.item_id = id,
                           .vector = vec,
                           .dim = DIM,
                           .width = 10,
                           .height = 10,
                           .thumb = thumb,
                           .thumb_len = thumb_len};
    int64_t old = 0;
    return items_put(db, inst, &rec, 0, &old);
}

static int exists(struct db *db, int64_t inst, const char *id)
{
    return items_get(db, inst, id, NULL, NULL) == DB_OK;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static void test_commit_out_of_space(void)
{
    int64_t inst = 0;
    struct db *db = open_with_instance("full", &inst);
    if (!db)
        return;
    CHECK_INT(put(db, inst, "before", NULL, 0), DB_OK);
    long long seq = vectors_change_seq(db, inst);

    /* Room for nothing beyond what the files hold now; the 64 KB thumbnail
     * stays in SQLite's page cache until COMMIT writes it to the WAL. */
    char path[160];
    long biggest = 0;
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/full.db%s", dir, suffixes[i]);
        if (file_size(path) > biggest)
            biggest = file_size(path);
    }
    size_t big_len = 64 * 1024;
    uint8_t *big = calloc(1, big_len);
    struct rlimit saved, small;
    getrlimit(RLIMIT_FSIZE, &saved);
    small = saved;
    small.rlim_cur = (rlim_t)biggest;
    signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of death */
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &small), 0);
    enum db_status s = put(db, inst, "refused", big, big_len);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, SIG_DFL);
    CHECK_INT(s, DB_ERROR);
    CHECK(strcmp(db_last_error(), "no error") != 0);
    CHECK(!exists(db, inst, "refused"));
    CHECK_INT(vectors_change_seq(db, inst), seq);

    /* Room again: the same connection goes on. */
    CHECK_INT(put(db, inst, "after", big, big_len), DB_OK);
    CHECK(exists(db, inst, "before") && exists(db, inst, "after"));
    sqlite3 *c = db_conn(db);
    sqlite3_stmt *st = c ? db_prepare(c, "PRAGMA integrity_check") : NULL;
    CHECK(st && sqlite3_step(st) == SQLITE_ROW);
    if (st)
        CHECK_STR((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    free(big);
    db_close(db);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_items_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_commit_out_of_space);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return unit_report();
}
