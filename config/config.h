/* config.h: the one immutable configuration struct, built at start-up from
 * built-in defaults, then the INI file, then command-line overrides. */
#ifndef IMGSEARCH_CONFIG_H
#define IMGSEARCH_CONFIG_H

/* [server] image_nice = idle: decode and CNN threads run SCHED_IDLE (server/priority.c). */
#define IMAGE_NICE_IDLE 20

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum auth_mode { AUTH_NONE = 0, AUTH_TOKEN, AUTH_AKSK, AUTH_ANY };

struct credential_config {
    char *name;
    char *access_key;
    char *secret_key;
    char *project_id; /* NULL: any project */
};

struct token_config {
    char *name;
    char *token;
    char *project_id; /* NULL: any project */
};

enum bucket_kind { BUCKET_LOCAL = 0, BUCKET_S3 };

/* One object-store bucket, [bucket:NAME]. NAME is the bucket name clients use
 * in obs://NAME/key and https://NAME.obs.<region>.myhuaweicloud.com/key. */
struct bucket_config {
    char *name;
    enum bucket_kind kind;
    char *root;       /* local: directory holding the objects */
    char *endpoint;   /* s3: base URL, e.g. http://127.0.0.1:9000 (path-style) */
    char *remote;     /* s3: bucket name on the server (default: name) */
    char *region;     /* s3: SigV4 region (default us-east-1) */
    char *access_key; /* s3 */
    char *secret_key; /* s3 */
};

/* An IPv4/IPv6 network in CIDR form, for the URL-fetch allow/deny lists. */
struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
};

struct fetch_config {
    long connect_timeout_ms; /* default 5000 */
    long timeout_ms;         /* whole transfer, default 20000 */
    long max_redirects;      /* default 3 */
    struct cidr *allow;      /* checked first: a match is allowed */
    size_t n_allow;
    struct cidr *deny; /* then: a match is denied (defaults: loopback, private, link-local) */
    size_t n_deny;
    int deny_configured; /* 0: the built-in deny list applies */
    int max_concurrent;  /* downloads at once from request threads; 0 = half the threads */
};

struct index_config {
    long exact_max;        /* exact (flat) search up to this many items; default 100000 */
    char *ann_factory;     /* FAISS factory string beyond it; default "IVF1024,SQ8" */
    long nprobe;           /* default nprobe when the request has none; 0 = request default */
    int views;             /* new instances index extra views (vectors.h); default 1 */
    int int8;              /* 1x1 convolutions in int8 where the CPU has VNNI; default 1 */
    long snapshot_changes; /* background snapshot after this many changes; 0: never */
    long snapshot_seconds; /* ... or when a change is this old; 0: never */
    char *projection;      /* compact descriptors for new instances; NULL: off */
    long compact_after;    /* items: a float instance this big goes compact in its own
                            * space (server/compactor.h), at start and as it grows; 0: never;
                            * default 1000 */
    long compact_batch;    /* rows per transaction of that conversion; default 256 */
    long compact_pause_ms; /* pause between those transactions; default 0 */
    /* Compact instances past exact_max: a PQ index in RAM whose top
     * compact_rerank candidates are re-scored with the int8 codes in the
     * database. */
    char *compact_ann_factory; /* default "IVF4096,PQ64" */
    long compact_rerank;       /* default 128; 0: the PQ scores as they are */
    /* Compact instances leave exact search past min(exact_max, this) items:
     * an exact scan of 100k items' codes costs ~100 ms a search, the PQ tier
     * ~1 ms (docs/bench/scale.md). */
    long compact_exact_max;
    /* Their IVF index re-partitions into 4x the lists (index/vindex_regrow.c)
     * when the lists average more than this many vectors: a probe's scan
     * stays bounded from the switch to 10M items. Default 1024; 0: never. */
    long compact_list_max;
};

/* [search]: query-time retries of a weak match. When the query's best score
 * is below views_below, its centre window and then its grey view are
 * searched too (instances with views); when still below rotation_below, the
 * query rotated by 90, 180 and 270 degrees. Those hits count with a penalty,
 * so they never outrank an equally good plain match. */
struct search_config {
    int query_views;         /* 1: on (default) */
    double views_below;      /* default 0.9 */
    int rotations;           /* 1: on (default) */
    double rotation_below;   /* default 0.9 */
    double rotation_penalty; /* default 0.1 */
    /* The same for compact instances, whose whitened scores run lower
     * (calibrated in docs/bench/compact.md, Recommendation). */
    double compact_views_below;      /* default 0.78 */
    double compact_view_penalty;     /* stored and query views; default 0.041 */
    double compact_rotation_below;   /* default 0.78 */
    double compact_rotation_penalty; /* default 0.21 */
};

/* [storage]: where the metadata lives. SQLite (a file in data_dir) is the
 * embedded default; PostgreSQL is a database several nodes can share. The
 * index snapshots stay in data_dir either way. */
enum storage_backend { STORAGE_SQLITE = 0, STORAGE_POSTGRES };

struct storage_config {
    enum storage_backend backend;
    char *dsn; /* postgres: libpq conninfo ("host=... dbname=...") or URI */
};

/* [cluster]: several nodes on one PostgreSQL database (docs/cluster.md).
 * With backend = postgres a node keeps its indexes current from the shared
 * change log whatever these say; they name it to the others. */
struct cluster_config {
    char *node_url;        /* how other nodes reach this one; NULL: not advertised */
    long node_timeout_ms;  /* a node silent this long is dead; default 5000 */
    long shards;           /* shards of instances created from now on; default 1 */
    char *secret;          /* authenticates /internal/v1 calls between nodes */
    long shard_timeout_ms; /* a shard's answer to a search; default 2000 */
    /* Index snapshots also go to this [bucket:NAME] (server/snapstore.h),
     * under snapshot_prefix; NULL: they stay in data_dir only (default). */
    char *snapshot_bucket;
    char *snapshot_prefix; /* "" or a key prefix, e.g. "prod/"; default "" */
};

struct config {
    /* [server] */
    char *listen_host;          /* default 127.0.0.1 */
    int listen_port;            /* default 8080 */
    char *data_dir;             /* default ./data */
    int threads;                /* HTTP worker threads; 0 = number of cores */
    size_t max_body_bytes;      /* default 12 MiB */
    long request_timeout_s;     /* idle connection timeout, default 60 */
    char *model_path;           /* extractor weights; default ./models/mnv2_140.bin */
    char *console_dir;          /* static console files; default ./console */
    char *objects_dir;          /* root of the default local bucket; default ./objects */
    int max_connections;        /* default 256 */
    int max_connections_per_ip; /* default 64 */
    int image_workers;          /* threads running image calls; 0 = 2 per core */
    int image_queue;            /* image calls waiting for one; 0 = 4 per core */
    int image_nice;             /* decode + CNN threads: nice value, relative, or
                                   IMAGE_NICE_IDLE (SCHED_IDLE, the default) */

    /* [auth] */
    enum auth_mode auth_mode;
    long auth_max_skew_s; /* default 900 */
    struct credential_config *credentials;
    size_t n_credentials;
    struct token_config *tokens;
    size_t n_tokens;

    /* [bucket:NAME]; when none is configured a local bucket "local" rooted
     * at ./objects is the embedded default. */
    struct bucket_config *buckets;
    size_t n_buckets;

    struct fetch_config fetch;
    struct index_config index;
    struct search_config search;
    struct storage_config storage;
    struct cluster_config cluster;

    /* [import] */
    int import_workers; /* default 1 */

    char *path; /* file it was read from, or NULL */
};

/* Builds the configuration from argv (which may name --config FILE).
 * On a bad file, key or value it writes a message naming file, line and key
 * to errbuf and returns -1. Returns 1 when --help was printed, 0 otherwise. */
int config_load(int argc, char **argv, struct config *cfg, char *errbuf, size_t errlen);

/* Same, from an INI file alone (used by tests and the CLI). */
int config_load_file(const char *path, struct config *cfg, char *errbuf, size_t errlen);

void config_defaults(struct config *cfg);
/* Frees one bucket's strings (not the struct itself). */
void bucket_config_free(struct bucket_config *b);
void config_free(struct config *cfg);
void config_usage(FILE *out);

/* Parses "10.0.0.0/8", "::1/128" or a bare address. 0 on success. */
int cidr_parse(const char *s, struct cidr *out);
int cidr_match(const struct cidr *c, int family, const uint8_t *addr);

/* "HOST:PORT" or "[v6]:PORT" into host (malloc'd, replacing *host) and port. */
int config_parse_listen(const char *v, char **host, int *port);

#endif
