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
#include "storage/shard.h"

/* Nodes silent this many timeouts are removed from the table altogether. */
#define REAP_TIMEOUTS 12

struct cluster {
    struct server *srv;
    char id[33];
    pthread_t thread, warmer;
    int warmer_running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    /* The live nodes with a URL as of the last heartbeat, under lock: the
     * candidates of rendezvous hashing (storage/shard.h). */
    char **live_ids, **live_urls;
    size_t n_live;
    /* Owner tables of the instances asked about since the view last
     * changed (shard_owners over live_ids), under lock. */
    struct owner_table *tables;
    size_t n_tables;
};

struct owner_table {
    int64_t instance_id;
    int shards;
    int *owner; /* shards entries: indexes in live_ids */
};

/* Most instances a node keeps owner tables for; past it they start over. */
#define OWNER_TABLES_MAX 4096

static void drop_tables(struct cluster *cl)
{
    for (size_t i = 0; i < cl->n_tables; i++)
        free(cl->tables[i].owner);
    free(cl->tables);
    cl->tables = NULL;
    cl->n_tables = 0;
}

/* The instance's owner table for the current view, made on first use.
 * Under cl->lock; NULL when out of memory. */
static const int *owner_table(struct cluster *cl, int64_t instance_id, int shards)
{
    for (size_t i = 0; i < cl->n_tables; i++)
        if (cl->tables[i].instance_id == instance_id && cl->tables[i].shards == shards)
            return cl->tables[i].owner;
    if (cl->n_tables >= OWNER_TABLES_MAX)
        drop_tables(cl);
    struct owner_table *t = realloc(cl->tables, (cl->n_tables + 1) * sizeof *t);
    if (!t)
        return NULL;
    cl->tables = t;
    int *owner = malloc((size_t)shards * sizeof *owner);
    if (!owner || shard_owners((const char *const *)cl->live_ids, cl->n_live, instance_id, shards,
                               owner) != 0) {
        free(owner);
        return NULL;
    }
    t[cl->n_tables++] = (struct owner_table){instance_id, shards, owner};
    return owner;
}

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

static void free_view(char **ids, char **urls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
        free(urls[i]);
    }
    free(ids);
    free(urls);
}

/* Re-reads the live nodes that can be reached (a URL). A node silent for
 * node_timeout_ms drops out here, and its shards move to the others. */
static void update_view(struct cluster *cl)
{
    struct server *srv = cl->srv;
    struct node_info *v;
    size_t n, m = 0;
    if (nodes_list(srv->db, &v, &n) != 0)
        return; /* keep the last view */
    char **ids = calloc(n + 1, sizeof *ids), **urls = calloc(n + 1, sizeof *urls);
    for (size_t i = 0; ids && urls && i < n; i++) {
        if (v[i].silent_ms > srv->cfg.cluster.node_timeout_ms || !v[i].url[0])
            continue;
        ids[m] = strdup(v[i].id);
        urls[m] = strdup(v[i].url);
        if (!ids[m] || !urls[m]) {
            free(ids[m]);
            free(urls[m]);
            break;
        }
        m++;
    }
    nodes_list_free(v, n);
    if (!ids || !urls || m == 0) {
        /* Out of memory, or nobody advertises a URL: every shard is served
         * where it is asked for (cluster_shard_owner answers -1). */
        free_view(ids, urls, m);
        ids = urls = NULL;
        m = 0;
    }
    pthread_mutex_lock(&cl->lock);
    /* The owner tables hold for as long as the set of ids does (nodes_list
     * orders them, so an unchanged set compares equal in order). */
    int same = m == cl->n_live;
    for (size_t i = 0; same && i < m; i++)
        same = strcmp(ids[i], cl->live_ids[i]) == 0;
    char **oi = cl->live_ids, **ou = cl->live_urls;
    size_t on = cl->n_live;
    cl->live_ids = ids;
    cl->live_urls = urls;
    cl->n_live = m;
    if (!same)
        drop_tables(cl);
    pthread_mutex_unlock(&cl->lock);
    free_view(oi, ou, on);
}

int cluster_shard_owner(struct cluster *cl, int64_t instance_id, int shards, int shard, char *url,
                        size_t len)
{
    if (!cl || shard < 0 || shard >= shards)
        return -1;
    pthread_mutex_lock(&cl->lock);
    const int *owner = cl->n_live ? owner_table(cl, instance_id, shards) : NULL;
    int o = owner ? owner[shard] : -1;
    int rc = o < 0 ? -1 : strcmp(cl->live_ids[o], cl->id) == 0 ? 1 : 0;
    if (rc == 0)
        snprintf(url, len, "%s", cl->live_urls[o]);
    pthread_mutex_unlock(&cl->lock);
    return rc;
}

/* The sharded instances as warm() read them, for owned_here. */
struct sharded {
    struct cluster *cl;
    const int64_t *ids;
    const int *shards;
    size_t n;
};

/* Whether this node keeps a shard it has loaded: it owns it, or nobody is
 * known to. A shard of an instance no longer listed (deleted) goes. */
static int owned_here(void *arg, int64_t instance_id, int shard)
{
    const struct sharded *sh = arg;
    for (size_t i = 0; i < sh->n; i++)
        if (sh->ids[i] == instance_id) {
            char url[8];
            return cluster_shard_owner(sh->cl, instance_id, sh->shards[i], shard, url,
                                       sizeof url) != 0;
        }
    return 0;
}

/* Takeover: loads (snapshot, else rebuild; then replay) every shard this
 * node owns by the current view and keeps it caught up, so a search of a
 * shard whose owner died answers as soon as the view moved it here, and
 * records the ownership in shard_map for operators. */
static void warm(struct cluster *cl)
{
    struct server *srv = cl->srv;
    int64_t *ids;
    int *shards;
    size_t n;
    if (nodes_sharded_instances(srv->db, &ids, &shards, &n) != 0)
        return;
    /* Shards another node owns (this one took them over, or answered them
     * while their owner was unreachable) go once idle for two node
     * timeouts: the map has been stable that long. */
    struct sharded sh = {cl, ids, shards, n};
    registry_release_shards(srv->registry, 2LL * srv->cfg.cluster.node_timeout_ms, owned_here, &sh);
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < shards[i]; s++) {
            char url[8];
            if (cluster_shard_owner(cl, ids[i], shards[i], s, url, sizeof url) != 1)
                continue;
            int had = registry_has_shard(srv->registry, ids[i], s);
            struct instance_rt *rt = registry_get_shard(srv->registry, ids[i], s);
            if (rt && !had)
                log_info("cluster: took shard %d of instance %lld", s, (long long)ids[i]);
            registry_put(srv->registry, rt);
            nodes_claim_shard(srv->db, ids[i], s, cl->id);
            pthread_mutex_lock(&cl->lock);
            int stop = cl->stopping;
            pthread_mutex_unlock(&cl->lock);
            if (stop)
                goto out;
        }
out:
    free(ids);
    free(shards);
}

static void *warm_loop(void *arg)
{
    struct cluster *cl = arg;
    pthread_mutex_lock(&cl->lock);
    while (!cl->stopping) {
        pthread_mutex_unlock(&cl->lock);
        warm(cl);
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

static void beat(struct cluster *cl)
{
    struct server *srv = cl->srv;
    if (nodes_heartbeat(srv->db, cl->id, srv->cfg.cluster.node_url) != 0)
        return; /* the database is away: the next beat tries again */
    update_view(cl);
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
    update_view(cl);
    if (pthread_create(&cl->thread, NULL, main_loop, cl) != 0) {
        snprintf(errbuf, errlen, "cannot start the heartbeat thread");
        goto fail;
    }
    /* A thread of its own: loading a big shard must not delay heartbeats. */
    cl->warmer_running = pthread_create(&cl->warmer, NULL, warm_loop, cl) == 0;
    if (!cl->warmer_running)
        log_info("cluster: no takeover thread; shards load on first search");
    log_info("cluster: node %s%s%s", cl->id, srv->cfg.cluster.node_url ? " at " : "",
             srv->cfg.cluster.node_url ? srv->cfg.cluster.node_url : "");
    *out = cl;
    return 0;
fail:
    free_view(cl->live_ids, cl->live_urls, cl->n_live);
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
    pthread_cond_broadcast(&cl->wake);
    pthread_mutex_unlock(&cl->lock);
    pthread_join(cl->thread, NULL);
    if (cl->warmer_running)
        pthread_join(cl->warmer, NULL);
    free_view(cl->live_ids, cl->live_urls, cl->n_live);
    drop_tables(cl);
    nodes_forget(cl->srv->db, cl->id);
    pthread_cond_destroy(&cl->wake);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

const char *cluster_node_id(const struct cluster *cl)
{
    return cl ? cl->id : NULL;
}
