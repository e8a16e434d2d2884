/* test_nodes.c: storage/nodes.c on a temporary database: heartbeats list
 * nodes with their silence on the database's clock; the lowest applied seq
 * counts live nodes only; a deleted instance's record is refused; forget
 * and reap remove nodes with their records; import jobs of dead nodes (and
 * of none) are requeued, a live node's are not, the node a job was taken
 * from sees it lost, and a node lists only the sources of the jobs it
 * claimed. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "storage/db.h"
#include "storage/instances.h"
#include "storage/jobs.h"
#include "storage/nodes.h"
#include "tests/storage/testdb.h"
#include "tests/unit.h"

static int64_t make_instance(struct db *db, const char *name)
{
    struct instance in = {.project_id = "p", .name = (char *)name, .level = 1};
    CHECK_INT(instances_create(db, &in), DB_OK);
    return in.id;
}

static void exec(struct db *db, const char *sql)
{
    CHECK_INT(sql_exec(db_conn(db), sql), 0);
}

static void test_heartbeats_and_applied(void)
{
    struct db *db = NULL;
    CHECK_INT(testdb_open("nodes", &db), 0);
    if (!db)
        return;
    int64_t a = make_instance(db, "a"), b = make_instance(db, "b");
    CHECK_INT(nodes_heartbeat(db, "n1", "http://h1"), 0);
    CHECK_INT(nodes_heartbeat(db, "n2", NULL), 0);
    CHECK_INT(nodes_heartbeat(db, "n1", "http://h1b"), 0); /* an upsert */
    struct node_info *v;
    size_t n;
    CHECK_INT(nodes_list(db, &v, &n), 0);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(v[0].url, ""); /* ordered by url */
        CHECK_STR(v[1].id, "n1");
        CHECK_STR(v[1].url, "http://h1b");
        CHECK(v[1].silent_ms >= 0 && v[1].silent_ms < 5000);
        CHECK(v[1].heartbeat_ms >= v[1].started_ms && v[1].started_ms > 1000000000000LL);
    }
    nodes_list_free(v, n);

    int64_t min = 0;
    CHECK_INT(nodes_min_applied(db, a, 5000, &min), 0);
    CHECK(min == INT64_MAX); /* nobody recorded one */
    CHECK_INT(nodes_set_applied(db, "n1", a, 7), DB_OK);
    CHECK_INT(nodes_set_applied(db, "n2", a, 4), DB_OK);
    CHECK_INT(nodes_set_applied(db, "n2", b, 9), DB_OK);
    CHECK_INT(nodes_set_applied(db, "n2", a, 5), DB_OK); /* raised */
    CHECK_INT(nodes_min_applied(db, a, 5000, &min), 0);
    CHECK_INT(min, 5);
    CHECK_INT(nodes_set_applied(db, "n1", 999999, 1), DB_NOT_FOUND); /* no such instance */

    /* n2 silent for a minute: dead, its seq no longer holds pruning back. */
    exec(db, "UPDATE nodes SET heartbeat_ms = heartbeat_ms - 60000 WHERE id = 'n2'");
    CHECK_INT(nodes_min_applied(db, a, 5000, &min), 0);
    CHECK_INT(min, 7);
    CHECK_INT(nodes_min_applied(db, b, 5000, &min), 0);
    CHECK(min == INT64_MAX);
    CHECK_INT(nodes_min_applied(db, b, 120000, &min), 0); /* a longer timeout */
    CHECK_INT(min, 9);

    /* Reaped after long silence, forgotten at once: records go with them. */
    CHECK_INT(nodes_reap(db, 30000), 0);
    CHECK_INT(testdb_query_int(db_conn(db), "SELECT count(*) FROM node_applied"), 1);
    CHECK_INT(nodes_forget(db, "n1"), 0);
    CHECK_INT(testdb_query_int(db_conn(db), "SELECT count(*) FROM nodes"), 0);
    CHECK_INT(testdb_query_int(db_conn(db), "SELECT count(*) FROM node_applied"), 0);
    db_close(db);
}

static void test_jobs_of_dead_nodes(void)
{
    struct db *db = NULL;
    CHECK_INT(testdb_open("nodejobs", &db), 0);
    if (!db)
        return;
    struct job_key k = {.key = "d/1.jpg", .url = "obs://local/d/1.jpg"};
    struct job j1 = {
        .project_id = "p", .instance = "a", .source = "obs://local/d/", .item_id_from = "key"};
    struct job j2 = j1, j3 = j1, got;
    CHECK_INT(jobs_create(db, &j1, &k, 1), DB_OK);
    CHECK_INT(jobs_create_listing(db, &j2), DB_OK);
    CHECK_INT(jobs_create(db, &j3, &k, 1), DB_OK);
    CHECK_INT(nodes_heartbeat(db, "live", ""), 0);
    CHECK_INT(nodes_heartbeat(db, "dead", ""), 0);
    exec(db, "UPDATE nodes SET heartbeat_ms = heartbeat_ms - 60000 WHERE id = 'dead'");
    int resumed;
    CHECK_INT(jobs_claim_by(db, "dead", &got, &resumed), DB_OK); /* j1 */
    job_free(&got);
    /* Not listed by a node that did not claim it, even while QUEUED. */
    CHECK_INT(jobs_next_unlisted_by(db, "live", &got), DB_NOT_FOUND);
    CHECK_INT(jobs_claim_by(db, "live", &got, &resumed), DB_OK); /* j2 */
    CHECK_INT(got.id, j2.id);
    job_free(&got);
    CHECK_INT(jobs_next_unlisted_by(db, "live", &got), DB_OK);
    CHECK_INT(got.id, j2.id);
    job_free(&got);
    CHECK_INT(jobs_next_unlisted_by(db, "dead", &got), DB_NOT_FOUND);
    CHECK_INT(jobs_claim(db, &got, &resumed), DB_OK); /* j3, no node */
    job_free(&got);

    CHECK_INT(nodes_requeue_orphan_jobs(db, 5000), 0);
    char st[32];
    CHECK_INT(jobs_status(db, j1.id, st, sizeof st), DB_OK);
    CHECK_STR(st, "QUEUED"); /* its node is dead */
    CHECK_INT(jobs_status(db, j2.id, st, sizeof st), DB_OK);
    CHECK_STR(st, "RUNNING"); /* its node is alive */
    CHECK_INT(jobs_status(db, j3.id, st, sizeof st), DB_OK);
    CHECK_STR(st, "QUEUED"); /* nobody's */
    CHECK_INT(jobs_claim_by(db, "live", &got, &resumed), DB_OK);
    CHECK_INT(got.id, j1.id);
    CHECK_INT(resumed, 1);
    job_free(&got);
    /* The node it was taken from finds out before its next key. */
    CHECK_INT(jobs_status_for(db, j1.id, "dead", st, sizeof st), DB_OK);
    CHECK_STR(st, "LOST");
    CHECK_INT(jobs_status_for(db, j1.id, "live", st, sizeof st), DB_OK);
    CHECK_STR(st, "RUNNING");
    db_close(db);
}

int main(void)
{
    if (testdb_init("test-nodes") != 0)
        return 1;
    RUN(test_heartbeats_and_applied);
    RUN(test_jobs_of_dead_nodes);
    testdb_cleanup();
    return unit_report();
}
