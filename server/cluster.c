/* cluster.c: the heartbeat thread of a node on a shared database. */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "server/cluster.h"
#include "server/http_log.h"
#include "server/registry.h"
#include "server/server.h"
#include "storage/nodes.h"

/* Nodes silent this many timeouts are removed from the table altogether. */
#define REAP_TIMEOUTS 12

struct cluster {
    struct server *srv;
    char id[33];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
};

/* 16 random bytes in hex: unique per process, so a restarted node is a new
 * node (its old row times out) and two nodes never share one. */
static int random_id(char out[33])
{
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof b)
        return -1;
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static void beat(struct cluster *cl)
{
    struct server *srv = cl->srv;
    if (nodes_heartbeat(srv->db, cl->id, srv->cfg.cluster.node_url) != 0)
        return; /* the database is away: the next beat tries again */
    int64_t *ids, *seqs;
    size_t n;
    if (registry_applied(srv->registry, &ids, &seqs, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (nodes_set_applied(srv->db, cl->id, ids[i], seqs[i]) == DB_NOT_FOUND) {
            log_info("instance %lld was deleted by another node: its index is dropped",
                     (long long)ids[i]);
            registry_drop(srv->registry, ids[i]);
        }
    free(ids);
    free(seqs);
    /* A dead node's import jobs go back to the queue; the first free worker
     * of any node resumes them after their last durable key. */
    nodes_requeue_orphan_jobs(srv->db, srv->cfg.cluster.node_timeout_ms);
}

static void *main_loop(void *arg)
{
    struct cluster *cl = arg;
    long beats = 0;
    pthread_mutex_lock(&cl->lock);
    while (!cl->stopping) {
        pthread_mutex_unlock(&cl->lock);
        beat(cl);
        if (beats++ % 60 == 0)
            nodes_reap(cl->srv->db, REAP_TIMEOUTS * cl->srv->cfg.cluster.node_timeout_ms);
        pthread_mutex_lock(&cl->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (!cl->stopping)
            pthread_cond_timedwait(&cl->wake, &cl->lock, &until);
    }
    pthread_mutex_unlock(&cl->lock);
    return NULL;
}

int cluster_start(struct server *srv, struct cluster **out, char *errbuf, size_t errlen)
{
    struct cluster *cl = calloc(1, sizeof *cl);
    if (!cl || random_id(cl->id) != 0) {
        free(cl);
        snprintf(errbuf, errlen, "cannot make a node id");
        return -1;
    }
    cl->srv = srv;
    pthread_mutex_init(&cl->lock, NULL);
    pthread_cond_init(&cl->wake, NULL);
    /* The first beat before serving, so the node is listed once it answers. */
    if (nodes_heartbeat(srv->db, cl->id, srv->cfg.cluster.node_url) != 0) {
        snprintf(errbuf, errlen, "cannot register the node: %s", db_last_error());
        goto fail;
    }
    if (pthread_create(&cl->thread, NULL, main_loop, cl) != 0) {
        snprintf(errbuf, errlen, "cannot start the heartbeat thread");
        goto fail;
    }
    log_info("cluster: node %s%s%s", cl->id, srv->cfg.cluster.node_url ? " at " : "",
             srv->cfg.cluster.node_url ? srv->cfg.cluster.node_url : "");
    *out = cl;
    return 0;
fail:
    pthread_cond_destroy(&cl->wake);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
    return -1;
}

void cluster_stop(struct cluster *cl)
{
    if (!cl)
        return;
    pthread_mutex_lock(&cl->lock);
    cl->stopping = 1;
    pthread_cond_signal(&cl->wake);
    pthread_mutex_unlock(&cl->lock);
    pthread_join(cl->thread, NULL);
    nodes_forget(cl->srv->db, cl->id);
    pthread_cond_destroy(&cl->wake);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

const char *cluster_node_id(const struct cluster *cl)
{
    return cl ? cl->id : NULL;
}
