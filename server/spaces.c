/* spaces.c: known projections by digest (spaces.h). A handful per server:
 * a list under a mutex is enough, and entries are never removed, so a
 * pointer handed out stays valid. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "index/projection.h"
#include "server/http_log.h"
#include "server/spaces.h"
#include "storage/compaction.h"

struct entry {
    struct projection *pr;
    struct entry *next;
};

struct spaces {
    struct db *db;
    pthread_mutex_t lock;
    struct entry *list;
};

static void push(struct spaces *sp, struct projection *pr)
{
    struct entry *e = malloc(sizeof *e);
    if (!e) {
        projection_free(pr); /* unusable, not leaked: the next get reloads it */
        return;
    }
    e->pr = pr;
    e->next = sp->list;
    sp->list = e;
}

int spaces_new(struct db *db, struct projection *configured, struct spaces **out)
{
    struct spaces *sp = calloc(1, sizeof *sp);
    if (!sp) {
        projection_free(configured);
        return -1;
    }
    sp->db = db;
    pthread_mutex_init(&sp->lock, NULL);
    if (configured)
        push(sp, configured);
    *out = sp;
    return 0;
}

void spaces_free(struct spaces *sp)
{
    if (!sp)
        return;
    for (struct entry *e = sp->list, *next; e; e = next) {
        next = e->next;
        projection_free(e->pr);
        free(e);
    }
    pthread_mutex_destroy(&sp->lock);
    free(sp);
}

static const struct projection *find(struct spaces *sp, const char *digest)
{
    for (struct entry *e = sp->list; e; e = e->next)
        if (!strcmp(e->pr->digest, digest))
            return e->pr;
    return NULL;
}

const struct projection *spaces_get(struct spaces *sp, const char *digest)
{
    pthread_mutex_lock(&sp->lock);
    const struct projection *pr = find(sp, digest);
    if (!pr) {
        /* Loading under the lock: once per space per process. */
        unsigned char *b = NULL;
        size_t len = 0;
        struct projection *got = NULL;
        char err[256];
        if (projections_get(sp->db, digest, &b, &len) == DB_OK) {
            if (projection_from_bytes(b, len, digest, &got, err, sizeof err) != 0)
                log_info("projection %.12s in the database: %s", digest, err);
            else if (strcmp(got->digest, digest) != 0) {
                log_info("projection %.12s in the database has digest %.12s", digest, got->digest);
                projection_free(got);
                got = NULL;
            }
        }
        free(b);
        if (got) {
            push(sp, got);
            pr = find(sp, digest);
        }
    }
    pthread_mutex_unlock(&sp->lock);
    return pr;
}

void spaces_add(struct spaces *sp, struct projection *pr)
{
    pthread_mutex_lock(&sp->lock);
    if (find(sp, pr->digest))
        projection_free(pr);
    else
        push(sp, pr);
    pthread_mutex_unlock(&sp->lock);
}
