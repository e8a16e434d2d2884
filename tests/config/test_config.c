/* test_config.c: config/config.c. Built-in defaults (and the default "local"
 * bucket), every section and key that config_usage documents read from a
 * temporary INI file, command-line overrides (--config, --listen, --data-dir,
 * --help), error messages that name file, line and key, size suffixes,
 * listen addresses (IPv4 and [IPv6]), and config_free after every outcome
 * (the ASan build checks for leaks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "config/config.h"
#include "tests/unit.h"

/* Writes `text` to a fresh /tmp file; its name goes to path. */
static void write_ini(char path[64], const char *text)
{
    snprintf(path, 64, "/tmp/imgsearch-test-config-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    size_t len = strlen(text);
    CHECK_INT(write(fd, text, len), (long long)len);
    close(fd);
}

/* Loads `text` as a file; returns config_load_file's result. */
static int load_text(const char *text, struct config *cfg, char *err, size_t errlen, char path[64])
{
    write_ini(path, text);
    err[0] = 0;
    return config_load_file(path, cfg, err, errlen);
}

/* Expects `text` to fail with a message containing "FILE:line:" (line > 0)
 * and each of the NULL-terminated `needles`. */
static void expect_error(const char *text, int line, const char *const *needles)
{
    char path[64], err[1024], prefix[96];
    struct config cfg;
    int rc = load_text(text, &cfg, err, sizeof err, path);
    CHECK_INT(rc, -1);
    CHECK(strstr(err, path) != NULL);
    if (line > 0) {
        snprintf(prefix, sizeof prefix, "%s:%d:", path, line);
        if (!strstr(err, prefix))
            fprintf(stderr, "  expected \"%s\" in \"%s\"\n", prefix, err);
        CHECK(strstr(err, prefix) != NULL);
    }
    for (const char *const *n = needles; n && *n; n++) {
        if (!strstr(err, *n))
            fprintf(stderr, "  expected \"%s\" in \"%s\"\n", *n, err);
        CHECK(strstr(err, *n) != NULL);
    }
    config_free(&cfg);
    unlink(path);
}

static void check_defaults(const struct config *cfg)
{
    CHECK_STR(cfg->listen_host, "127.0.0.1");
    CHECK_INT(cfg->listen_port, 8080);
    CHECK_STR(cfg->data_dir, "./data");
    CHECK_STR(cfg->objects_dir, "./objects");
    CHECK_STR(cfg->model_path, "./models/mnv2_140.bin");
    CHECK_STR(cfg->console_dir, "./console");
    CHECK_INT(cfg->threads, 0);
    CHECK_INT(cfg->max_body_bytes, 12 * 1024 * 1024);
    CHECK_INT(cfg->request_timeout_s, 60);
    CHECK_INT(cfg->max_connections, 256);
    CHECK_INT(cfg->image_nice, IMAGE_NICE_IDLE);
    CHECK_INT(cfg->auth_mode, AUTH_NONE);
    CHECK_INT(cfg->auth_max_skew_s, 900);
    CHECK_INT(cfg->n_credentials, 0);
    CHECK_INT(cfg->n_tokens, 0);
    CHECK_INT(cfg->fetch.connect_timeout_ms, 5000);
    CHECK_INT(cfg->fetch.timeout_ms, 20000);
    CHECK_INT(cfg->fetch.max_redirects, 3);
    CHECK_INT(cfg->fetch.n_allow, 0);
    CHECK_INT(cfg->fetch.n_deny, 0);
    CHECK_INT(cfg->fetch.deny_configured, 0);
    CHECK_INT(cfg->index.exact_max, 100000);
    CHECK_STR(cfg->index.ann_factory, "IVF1024,SQ8");
    CHECK_STR(cfg->index.compact_ann_factory, "IVF4096,PQ64");
    CHECK_INT(cfg->index.compact_rerank, 128);
    CHECK_INT(cfg->index.compact_exact_max, 25000);
    CHECK_INT(cfg->index.compact_list_max, 1024);
    CHECK_INT(cfg->index.nprobe, 0);
    CHECK_INT(cfg->index.int8, 1);
    CHECK(cfg->index.projection == NULL); /* compact descriptors off */
    CHECK(cfg->search.compact_views_below == 0.78);
    CHECK(cfg->search.compact_view_penalty == 0.041);
    CHECK(cfg->search.compact_rotation_below == 0.78);
    CHECK(cfg->search.compact_rotation_penalty == 0.21);
    CHECK_INT(cfg->import_workers, 1);
    CHECK_INT(cfg->storage.backend, STORAGE_SQLITE); /* the embedded default */
    CHECK(cfg->storage.dsn == NULL);
    CHECK(cfg->cluster.node_url == NULL); /* one node */
    CHECK_INT(cfg->cluster.node_timeout_ms, 5000);
    CHECK(cfg->cluster.snapshot_bucket == NULL);
    CHECK(cfg->cluster.snapshot_prefix == NULL);
    CHECK_INT(cfg->cluster.shards, 1); /* every node holds whole indexes */
    CHECK(cfg->cluster.secret == NULL);
    CHECK_INT(cfg->cluster.shard_timeout_ms, 2000);
    /* No bucket configured: the embedded "local" bucket at objects_dir. */
    CHECK_INT(cfg->n_buckets, 1);
    if (cfg->n_buckets == 1) {
        CHECK_STR(cfg->buckets[0].name, "local");
        CHECK_INT(cfg->buckets[0].kind, BUCKET_LOCAL);
        CHECK_STR(cfg->buckets[0].root, cfg->objects_dir);
    }
}

static void test_defaults_no_file(void)
{
    struct config cfg;
    char err[256] = "";
    CHECK_INT(config_load_file(NULL, &cfg, err, sizeof err), 0);
    check_defaults(&cfg);
    CHECK(cfg.path == NULL);
    config_free(&cfg);
}

static void test_defaults_no_args(void)
{
    struct config cfg;
    char err[256] = "";
    char *argv[] = {"imgsearchd", NULL};
    CHECK_INT(config_load(1, argv, &cfg, err, sizeof err), 0);
    check_defaults(&cfg);
    config_free(&cfg);
}

static void test_defaults_empty_file(void)
{
    struct config cfg;
    char err[256], path[64];
    CHECK_INT(load_text("; nothing but a comment\n\n", &cfg, err, sizeof err, path), 0);
    check_defaults(&cfg);
    CHECK_STR(cfg.path, path);
    config_free(&cfg);
    unlink(path);
}

/* The default bucket follows objects_dir. */
static void test_default_bucket_follows_objects_dir(void)
{
    struct config cfg;
    char err[256], path[64];
    CHECK_INT(load_text("[server]\nobjects_dir = /srv/objs\n", &cfg, err, sizeof err, path), 0);
    CHECK_INT(cfg.n_buckets, 1);
    if (cfg.n_buckets == 1) {
        CHECK_STR(cfg.buckets[0].name, "local");
        CHECK_STR(cfg.buckets[0].root, "/srv/objs");
    }
    config_free(&cfg);
    unlink(path);
}

static const char full_ini[] = "; every key of config_usage\n"
                               "[server]\n"
                               "listen = 0.0.0.0:9090\n"
                               "data_dir = /tmp/imgs-data\n"
                               "objects_dir = /tmp/imgs-objects\n"
                               "threads = 8\n"
                               "max_body_bytes = 1K\n"
                               "request_timeout = 30\n"
                               "max_connections = 100\n"
                               "image_workers = 3\n"
                               "image_queue = 5\n"
                               "image_nice = 4\n"
                               "model = /opt/model.bin\n"
                               "console_dir = /opt/console\n"
                               "[auth]\n"
                               "mode = any\n"
                               "max_skew_seconds = 60\n"
                               "[credential:alice]\n"
                               "access_key = AKALICE\n"
                               "secret_key = SKALICE\n"
                               "project_id = p0123\n"
                               "[credential:bob]\n"
                               "access_key = AKBOB\n"
                               "secret_key = SKBOB\n"
                               "[token:ops]\n"
                               "token = 0123456789abcdef\n"
                               "project_id = p0456\n"
                               "[bucket:photos]\n"
                               "type = local\n"
                               "root = /srv/photos\n"
                               "[bucket:minio]\n"
                               "type = s3\n"
                               "endpoint = http://127.0.0.1:9000\n"
                               "remote_bucket = real-bucket\n"
                               "region = eu-west-1\n"
                               "access_key = minioak\n"
                               "secret_key = miniosk\n"
                               "[bucket:obs2]\n"
                               "type = obs\n"
                               "endpoint = http://127.0.0.1:9001\n"
                               "access_key = a\n"
                               "secret_key = s\n"
                               "[fetch]\n"
                               "connect_timeout_ms = 100\n"
                               "timeout_ms = 2000\n"
                               "max_redirects = 0\n"
                               "allow = 10.0.0.0/8, ::1/128\n"
                               "deny = 192.168.0.0/16 fe80::/10\n"
                               "[index]\n"
                               "exact_max = 500\n"
                               "ann_factory = IVF64,Flat\n"
                               "compact_ann_factory = IVF256,PQ32\n"
                               "compact_rerank = 0\n"
                               "compact_exact_max = 7000\n"
                               "compact_list_max = 0\n"
                               "nprobe = 8\n"
                               "int8 = off\n"
                               "projection = models/p.bin\n"
                               "[search]\n"
                               "compact_views_below = 0.7\n"
                               "compact_view_penalty = 0.05\n"
                               "compact_rotation_below = 0.6\n"
                               "compact_rotation_penalty = 0.3\n"
                               "[import]\n"
                               "workers = 4\n"
                               "[storage]\n"
                               "backend = postgres\n"
                               "dsn = host=127.0.0.1 port=5433 dbname=imgsearch user=imgsearch\n"
                               "[cluster]\n"
                               "node_url = http://10.0.0.2:8080\n"
                               "node_timeout_ms = 2500\n"
                               "snapshot_bucket = minio\n"
                               "snapshot_prefix = prod/eu\n"
                               "shards = 4\n"
                               "secret = 0123456789abcdef\n"
                               "shard_timeout_ms = 750\n";

static void test_every_key(void)
{
    struct config cfg;
    char err[512], path[64];
    int rc = load_text(full_ini, &cfg, err, sizeof err, path);
    CHECK_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  %s\n", err);
        config_free(&cfg);
        unlink(path);
        return;
    }
    CHECK_STR(cfg.listen_host, "0.0.0.0");
    CHECK_INT(cfg.listen_port, 9090);
    CHECK_STR(cfg.data_dir, "/tmp/imgs-data");
    CHECK_STR(cfg.objects_dir, "/tmp/imgs-objects");
    CHECK_INT(cfg.threads, 8);
    CHECK_INT(cfg.max_body_bytes, 1024);
    CHECK_INT(cfg.request_timeout_s, 30);
    CHECK_INT(cfg.max_connections, 100);
    CHECK_INT(cfg.image_workers, 3);
    CHECK_INT(cfg.image_queue, 5);
    CHECK_INT(cfg.image_nice, 4);
    CHECK_STR(cfg.model_path, "/opt/model.bin");
    CHECK_STR(cfg.console_dir, "/opt/console");

    CHECK_INT(cfg.auth_mode, AUTH_ANY);
    CHECK_INT(cfg.auth_max_skew_s, 60);
    CHECK_INT(cfg.n_credentials, 2);
    if (cfg.n_credentials == 2) {
        CHECK_STR(cfg.credentials[0].name, "alice");
        CHECK_STR(cfg.credentials[0].access_key, "AKALICE");
        CHECK_STR(cfg.credentials[0].secret_key, "SKALICE");
        CHECK_STR(cfg.credentials[0].project_id, "p0123");
        CHECK_STR(cfg.credentials[1].name, "bob");
        CHECK_STR(cfg.credentials[1].access_key, "AKBOB");
        CHECK(cfg.credentials[1].project_id == NULL);
    }
    CHECK_INT(cfg.n_tokens, 1);
    if (cfg.n_tokens == 1) {
        CHECK_STR(cfg.tokens[0].name, "ops");
        CHECK_STR(cfg.tokens[0].token, "0123456789abcdef");
        CHECK_STR(cfg.tokens[0].project_id, "p0456");
    }

    /* Buckets configured: no embedded "local" one. */
    CHECK_INT(cfg.n_buckets, 3);
    if (cfg.n_buckets == 3) {
        CHECK_STR(cfg.buckets[0].name, "photos");
        CHECK_INT(cfg.buckets[0].kind, BUCKET_LOCAL);
        CHECK_STR(cfg.buckets[0].root, "/srv/photos");
        CHECK_STR(cfg.buckets[1].name, "minio");
        CHECK_INT(cfg.buckets[1].kind, BUCKET_S3);
        CHECK_STR(cfg.buckets[1].endpoint, "http://127.0.0.1:9000");
        CHECK_STR(cfg.buckets[1].remote, "real-bucket");
        CHECK_STR(cfg.buckets[1].region, "eu-west-1");
        CHECK_STR(cfg.buckets[1].access_key, "minioak");
        CHECK_STR(cfg.buckets[1].secret_key, "miniosk");
        /* "obs" is an alias of s3; remote and region get their defaults. */
        CHECK_STR(cfg.buckets[2].name, "obs2");
        CHECK_INT(cfg.buckets[2].kind, BUCKET_S3);
        CHECK_STR(cfg.buckets[2].remote, "obs2");
        CHECK_STR(cfg.buckets[2].region, "us-east-1");
    }

    CHECK_INT(cfg.fetch.connect_timeout_ms, 100);
    CHECK_INT(cfg.fetch.timeout_ms, 2000);
    CHECK_INT(cfg.fetch.max_redirects, 0);
    CHECK_INT(cfg.fetch.n_allow, 2);
    if (cfg.fetch.n_allow == 2) {
        CHECK_INT(cfg.fetch.allow[0].family, AF_INET);
        CHECK_INT(cfg.fetch.allow[0].prefix, 8);
        CHECK_INT(cfg.fetch.allow[0].addr[0], 10);
        CHECK_INT(cfg.fetch.allow[1].family, AF_INET6);
        CHECK_INT(cfg.fetch.allow[1].prefix, 128);
        CHECK_INT(cfg.fetch.allow[1].addr[15], 1);
    }
    CHECK_INT(cfg.fetch.deny_configured, 1);
    CHECK_INT(cfg.fetch.n_deny, 2);
    if (cfg.fetch.n_deny == 2) {
        CHECK_INT(cfg.fetch.deny[0].family, AF_INET);
        CHECK_INT(cfg.fetch.deny[0].prefix, 16);
        CHECK_INT(cfg.fetch.deny[1].family, AF_INET6);
        CHECK_INT(cfg.fetch.deny[1].prefix, 10);
    }
    CHECK_INT(cfg.index.exact_max, 500);
    CHECK_STR(cfg.index.ann_factory, "IVF64,Flat");
    CHECK_STR(cfg.index.compact_ann_factory, "IVF256,PQ32");
    CHECK_INT(cfg.index.compact_rerank, 0);
    CHECK_INT(cfg.index.compact_exact_max, 7000);
    CHECK_INT(cfg.index.compact_list_max, 0);
    CHECK_INT(cfg.index.nprobe, 8);
    CHECK_INT(cfg.index.int8, 0);
    CHECK_STR(cfg.index.projection, "models/p.bin");
    CHECK(cfg.search.compact_views_below == 0.7);
    CHECK(cfg.search.compact_view_penalty == 0.05);
    CHECK(cfg.search.compact_rotation_below == 0.6);
    CHECK(cfg.search.compact_rotation_penalty == 0.3);
    CHECK_INT(cfg.import_workers, 4);
    CHECK_INT(cfg.storage.backend, STORAGE_POSTGRES);
    CHECK_STR(cfg.storage.dsn, "host=127.0.0.1 port=5433 dbname=imgsearch user=imgsearch");
    CHECK_STR(cfg.cluster.node_url, "http://10.0.0.2:8080");
    CHECK_INT(cfg.cluster.node_timeout_ms, 2500);
    CHECK_STR(cfg.cluster.snapshot_bucket, "minio");
    CHECK_STR(cfg.cluster.snapshot_prefix, "prod/eu");
    CHECK_INT(cfg.cluster.shards, 4);
    CHECK_STR(cfg.cluster.secret, "0123456789abcdef");
    CHECK_INT(cfg.cluster.shard_timeout_ms, 750);
    CHECK_STR(cfg.path, path);
    config_free(&cfg);
    unlink(path);
}

/* Every key the test file sets is one config_usage documents, and the other
 * way round: every documented section appears in the file. */
static void test_usage_lists_every_key(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    if (!f)
        return;
    config_usage(f);
    fclose(f);
    static const char *const keys[] = {"[server]",
                                       "listen",
                                       "data_dir",
                                       "objects_dir",
                                       "threads",
                                       "max_body_bytes",
                                       "request_timeout",
                                       "max_connections",
                                       "image_workers",
                                       "image_queue",
                                       "image_nice",
                                       "model",
                                       "console_dir",
                                       "[auth]",
                                       "mode",
                                       "max_skew_seconds",
                                       "[credential:NAME]",
                                       "access_key",
                                       "secret_key",
                                       "project_id",
                                       "[token:NAME]",
                                       "token",
                                       "[bucket:NAME]",
                                       "type",
                                       "root",
                                       "endpoint",
                                       "remote_bucket",
                                       "region",
                                       "[fetch]",
                                       "connect_timeout_ms",
                                       "timeout_ms",
                                       "max_redirects",
                                       "allow",
                                       "deny",
                                       "[index]",
                                       "exact_max",
                                       "ann_factory",
                                       "compact_ann_factory",
                                       "compact_rerank",
                                       "compact_exact_max",
                                       "compact_list_max",
                                       "nprobe",
                                       "int8",
                                       "projection",
                                       "compact_views_below",
                                       "compact_view_penalty",
                                       "compact_rotation_below",
                                       "compact_rotation_penalty",
                                       "[import]",
                                       "workers",
                                       "[storage]",
                                       "backend",
                                       "dsn",
                                       "[cluster]",
                                       "node_url",
                                       "node_timeout_ms",
                                       "snapshot_bucket",
                                       "snapshot_prefix",
                                       "shards",
                                       "secret",
                                       "shard_timeout_ms",
                                       "--config",
                                       "--listen",
                                       "--data-dir",
                                       "--help"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!strstr(text, keys[i]))
            fprintf(stderr, "  usage lacks \"%s\"\n", keys[i]);
        CHECK(strstr(text, keys[i]) != NULL);
    }
    free(text);
}

static void test_auth_modes(void)
{
    static const struct {
        const char *ini;
        enum auth_mode mode;
    } cases[] = {
        {"[auth]\nmode = none\n", AUTH_NONE},
        {"[auth]\nmode = token\n[token:t]\ntoken = abcdefgh\n", AUTH_TOKEN},
        {"[auth]\nmode = aksk\n[credential:c]\naccess_key = a\nsecret_key = s\n", AUTH_AKSK},
        {"[auth]\nmode = ANY\n[token:t]\ntoken = abcdefgh\n", AUTH_ANY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        char err[512], path[64];
        int rc = load_text(cases[i].ini, &cfg, err, sizeof err, path);
        CHECK_INT(rc, 0);
        if (rc)
            fprintf(stderr, "  %s\n", err);
        CHECK_INT(cfg.auth_mode, cases[i].mode);
        config_free(&cfg);
        unlink(path);
    }
}

static void test_size_suffixes(void)
{
    static const struct {
        const char *v;
        size_t bytes;
    } ok[] = {{"1K", 1024},
              {"1k", 1024},
              {"12M", 12u * 1024 * 1024},
              {"2g", 2ull * 1024 * 1024 * 1024},
              {"4096", 4096},
              {"1099511627776", 1ull << 40}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char ini[128], err[512], path[64];
        struct config cfg;
        snprintf(ini, sizeof ini, "[server]\nmax_body_bytes = %s\n", ok[i].v);
        int rc = load_text(ini, &cfg, err, sizeof err, path);
        CHECK_INT(rc, 0);
        if (rc)
            fprintf(stderr, "  %s: %s\n", ok[i].v, err);
        CHECK_INT(cfg.max_body_bytes, ok[i].bytes);
        config_free(&cfg);
        unlink(path);
    }
    static const char *const bad[] = {"0", "-1", "12X", "1KB", "K", "lots", "2048G", "1.5M"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char ini[128];
        snprintf(ini, sizeof ini, "[server]\nmax_body_bytes = %s\n", bad[i]);
        const char *needles[] = {"max_body_bytes", bad[i], NULL};
        expect_error(ini, 2, needles);
    }
}

static void test_listen_ipv6_and_parse(void)
{
    struct config cfg;
    char err[512], path[64];
    CHECK_INT(load_text("[server]\nlisten = [::1]:9000\n", &cfg, err, sizeof err, path), 0);
    CHECK_STR(cfg.listen_host, "::1");
    CHECK_INT(cfg.listen_port, 9000);
    config_free(&cfg);
    unlink(path);

    char *host = strdup("old");
    int port = 1;
    CHECK_INT(config_parse_listen("localhost:80", &host, &port), 0);
    CHECK_STR(host, "localhost");
    CHECK_INT(port, 80);
    CHECK_INT(config_parse_listen("[fe80::1]:65535", &host, &port), 0);
    CHECK_STR(host, "fe80::1");
    CHECK_INT(port, 65535);
    /* Failures leave host and port alone. */
    static const char *const bad[] = {"localhost", ":80",     "host:", "host:65536",
                                      "host:-1",   "host:8o", "[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (config_parse_listen(bad[i], &host, &port) == 0)
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        CHECK_STR(host, "fe80::1");
        CHECK_INT(port, 65535);
    }
    free(host);
}

/* --- command line ------------------------------------------------------ */

static void test_cli_overrides_file(void)
{
    char path[64], err[512] = "";
    write_ini(path, "[server]\nlisten = 10.1.2.3:1000\ndata_dir = /from/file\nthreads = 3\n");
    struct config cfg;
    char *argv[] = {"imgsearchd", "--config",   path,        "--listen",
                    "[::]:7000",  "--data-dir", "/from/cli", NULL};
    int rc = config_load(7, argv, &cfg, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", err);
    CHECK_STR(cfg.listen_host, "::");
    CHECK_INT(cfg.listen_port, 7000);
    CHECK_STR(cfg.data_dir, "/from/cli");
    CHECK_INT(cfg.threads, 3); /* the rest of the file still applies */
    CHECK_STR(cfg.path, path);
    config_free(&cfg);

    /* Without overrides the file wins; "--opt=value" and short forms work. */
    char cfgopt[96];
    snprintf(cfgopt, sizeof cfgopt, "--config=%s", path);
    char *argv2[] = {"imgsearchd", cfgopt, NULL};
    CHECK_INT(config_load(2, argv2, &cfg, err, sizeof err), 0);
    CHECK_STR(cfg.listen_host, "10.1.2.3");
    CHECK_INT(cfg.listen_port, 1000);
    CHECK_STR(cfg.data_dir, "/from/file");
    config_free(&cfg);

    char *argv3[] = {"imgsearchd", "-c", path, "-l", "127.0.0.2:81", "-d", "/short", NULL};
    CHECK_INT(config_load(7, argv3, &cfg, err, sizeof err), 0);
    CHECK_STR(cfg.listen_host, "127.0.0.2");
    CHECK_INT(cfg.listen_port, 81);
    CHECK_STR(cfg.data_dir, "/short");
    config_free(&cfg);
    unlink(path);
}

static void test_cli_help(void)
{
    /* Keep the usage text off stdout, where tests/run.sh reads results. */
    fflush(stdout);
    int saved = dup(1);
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        dup2(fileno(devnull), 1);
        fclose(devnull);
    }
    /* Garbage first: config_free must be safe whatever config_load returned. */
    struct config cfg, cfg2;
    memset(&cfg, 0xA5, sizeof cfg);
    memset(&cfg2, 0xA5, sizeof cfg2);
    char err[256] = "";
    char *argv[] = {"imgsearchd", "--help", NULL};
    int rc = config_load(2, argv, &cfg, err, sizeof err);
    char *argv2[] = {"imgsearchd", "--listen", "1.2.3.4:5", "-h", NULL};
    int rc2 = config_load(4, argv2, &cfg2, err, sizeof err);
    fflush(stdout);
    if (saved >= 0) {
        dup2(saved, 1);
        close(saved);
    }
    CHECK_INT(rc, 1);
    CHECK_INT(rc2, 1);
    config_free(&cfg);
    config_free(&cfg2);
}

static void test_cli_errors(void)
{
    struct config cfg;
    char err[512];

    char *a1[] = {"imgsearchd", "--bogus", NULL};
    memset(&cfg, 0xA5, sizeof cfg);
    err[0] = 0;
    CHECK_INT(config_load(2, a1, &cfg, err, sizeof err), -1);
    CHECK(strstr(err, "--bogus") != NULL);
    config_free(&cfg);

    char *a2[] = {"imgsearchd", "--listen", "nope", NULL};
    err[0] = 0;
    CHECK_INT(config_load(3, a2, &cfg, err, sizeof err), -1);
    CHECK(strstr(err, "--listen") != NULL);
    CHECK(strstr(err, "nope") != NULL);
    config_free(&cfg);

    char *a3[] = {"imgsearchd", "stray", NULL};
    memset(&cfg, 0xA5, sizeof cfg);
    err[0] = 0;
    CHECK_INT(config_load(2, a3, &cfg, err, sizeof err), -1);
    CHECK(strstr(err, "stray") != NULL);
    config_free(&cfg);

    char *a4[] = {"imgsearchd", "--config", "/nonexistent/imgsearch.ini", NULL};
    err[0] = 0;
    CHECK_INT(config_load(3, a4, &cfg, err, sizeof err), -1);
    CHECK(strstr(err, "/nonexistent/imgsearch.ini") != NULL);
    config_free(&cfg);

    char *a5[] = {"imgsearchd", "--config", NULL};
    err[0] = 0;
    CHECK_INT(config_load(2, a5, &cfg, err, sizeof err), -1);
    CHECK(err[0] != 0);
    config_free(&cfg);

    /* A bad file through --config reports file and line too. */
    char path[64];
    write_ini(path, "[server]\n\nthreads = lots\n");
    char *a6[] = {"imgsearchd", "--config", path, NULL};
    err[0] = 0;
    CHECK_INT(config_load(3, a6, &cfg, err, sizeof err), -1);
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%s:3:", path);
    CHECK(strstr(err, prefix) != NULL);
    CHECK(strstr(err, "threads") != NULL);
    config_free(&cfg);
    unlink(path);
}

/* --- file errors ------------------------------------------------------- */

static void test_error_unknown_key(void)
{
    const char *n[] = {"bogus_key", "unknown key", "[server]", NULL};
    expect_error("[server]\nlisten = 127.0.0.1:1\nbogus_key = 1\n", 3, n);
    const char *n2[] = {"colour", "[bucket:b]", NULL};
    expect_error("[bucket:b]\ntype = local\ncolour = red\nroot = /x\n", 3, n2);
    const char *n3[] = {"tokn", NULL};
    expect_error("[token:t]\ntokn = abcdefgh\n", 2, n3);
    const char *n4[] = {"secret", NULL};
    expect_error("[credential:c]\nsecret = abcdefgh\n", 2, n4);
    const char *n5[] = {"probes", NULL};
    expect_error("[index]\nprobes = 3\n", 2, n5);
    const char *n6[] = {"threads", NULL};
    expect_error("[import]\nthreads = 3\n", 2, n6);
    const char *n7[] = {"retries", NULL};
    expect_error("[fetch]\nretries = 3\n", 2, n7);
    const char *n8[] = {"user", NULL};
    expect_error("[auth]\nuser = x\n", 2, n8);
}

/* Only the first error is reported, with its own line. */
static void test_error_first_only(void)
{
    const char *n[] = {"first", NULL};
    expect_error("[server]\n\n\n\nfirst = 1\nsecond = 2\n", 5, n);
}

static void test_error_bad_values(void)
{
    static const struct {
        const char *ini;
        int line;
        const char *key, *value;
    } cases[] = {
        {"[server]\nthreads = lots\n", 2, "threads", "lots"},
        {"[cluster]\nshards = 0\n", 2, "shards", "0"},
        {"[cluster]\nshards = 257\n", 2, "shards", "257"},
        {"[cluster]\nshard_timeout_ms = 10\n", 2, "shard_timeout_ms", "10"},
        {"[server]\nthreads = 257\n", 2, "threads", "257"},
        {"[server]\nthreads = -1\n", 2, "threads", "-1"},
        {"[server]\nthreads = 4x\n", 2, "threads", "4x"},
        {"[server]\nrequest_timeout = 0\n", 2, "request_timeout", "0"},
        {"[server]\nimage_nice = 20\n", 2, "image_nice", "20"},
        {"[server]\nimage_nice = idler\n", 2, "image_nice", "expected idle or"},
        {"[server]\nmax_connections = 0\n", 2, "max_connections", "0"},
        {"[server]\nlisten = localhost\n", 2, "listen", "localhost"},
        {"[server]\nlisten = host:99999\n", 2, "listen", "99999"},
        {"[auth]\nmode = kerberos\n", 2, "mode", "kerberos"},
        {"[auth]\nmax_skew_seconds = 0\n", 2, "max_skew_seconds", "0"},
        {"[bucket:b]\ntype = ftp\n", 2, "type", "ftp"},
        {"[fetch]\nconnect_timeout_ms = 0\n", 2, "connect_timeout_ms", "0"},
        {"[fetch]\ntimeout_ms = soon\n", 2, "timeout_ms", "soon"},
        {"[fetch]\nmax_redirects = 21\n", 2, "max_redirects", "21"},
        {"[index]\nexact_max = 0\n", 2, "exact_max", "0"},
        {"[index]\nnprobe = -2\n", 2, "nprobe", "-2"},
        {"[index]\ncompact_rerank = -1\n", 2, "compact_rerank", "-1"},
        {"[index]\ncompact_exact_max = 0\n", 2, "compact_exact_max", "0"},
        {"[index]\ncompact_rerank = 65537\n", 2, "compact_rerank", "65537"},
        {"[index]\ncompact_list_max = -1\n", 2, "compact_list_max", "-1"},
        {"[import]\nworkers = 0\n", 2, "workers", "0"},
        {"[import]\nworkers = 65\n", 2, "workers", "65"},
        {"[storage]\nbackend = mysql\n", 2, "backend", "mysql"},
        {"[cluster]\nsnapshot_prefix = a/../b\n", 2, "snapshot_prefix", "segments"},
        {"[cluster]\nsnapshot_prefix = /abs\n", 2, "snapshot_prefix", "segments"},
        {"[cluster]\nsnapshot_bucket = a/b\n", 2, "snapshot_bucket", "bucket name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *n[] = {cases[i].key, cases[i].value, NULL};
        expect_error(cases[i].ini, cases[i].line, n);
    }
}

static void test_error_bad_cidr(void)
{
    const char *n[] = {"allow", "10.0.0.0/33", NULL};
    expect_error("[fetch]\nallow = 10.0.0.0/8, 10.0.0.0/33\n", 2, n);
    const char *n2[] = {"allow", "example.com", NULL};
    expect_error("[fetch]\nallow = example.com\n", 2, n2);
    const char *n3[] = {"deny", "::1/129", NULL};
    expect_error("[fetch]\ndeny = ::1/129\n", 2, n3);
}

static void test_error_unknown_section(void)
{
    const char *n[] = {"[database]", "unknown section", "path", NULL};
    expect_error("[server]\nthreads = 1\n[database]\npath = x\n", 4, n);
    const char *n2[] = {"[user:bob]", "unknown section", NULL};
    expect_error("[user:bob]\nname = bob\n", 2, n2);
    const char *n3[] = {"bad section name", NULL};
    expect_error("[bucket:a/b]\ntype = local\n", 2, n3);
    const char *n4[] = {"bad section name", NULL};
    expect_error("[token:]\ntoken = abcdefgh\n", 2, n4);
    /* Keys before any section. */
    const char *n5[] = {"listen", NULL};
    expect_error("listen = 127.0.0.1:1\n", 1, n5);
}

static void test_error_syntax(void)
{
    const char *n[] = {"syntax error", NULL};
    expect_error("[server]\nthis line has no equals sign\n", 2, n);
}

/* Whole-config checks name the file and the section. */
static void test_error_validation(void)
{
    const char *n1[] = {"[auth]", NULL};
    expect_error("[auth]\nmode = token\n", 0, n1);
    expect_error("[auth]\nmode = aksk\n[token:t]\ntoken = abcdefgh\n", 0, n1);
    expect_error("[auth]\nmode = any\n", 0, n1);
    const char *n2[] = {"[bucket:x]", "endpoint", NULL};
    expect_error("[bucket:x]\ntype = s3\naccess_key = a\nsecret_key = s\n", 0, n2);
    const char *n3[] = {"[bucket:x]", "root", NULL};
    expect_error("[bucket:x]\ntype = local\n", 0, n3);
    const char *n4[] = {"[credential:c]", "secret_key", NULL};
    expect_error("[credential:c]\naccess_key = a\n", 0, n4);
    const char *n5[] = {"[token:t]", "8 characters", NULL};
    expect_error("[token:t]\ntoken = short\n", 0, n5);
    const char *n6[] = {"[storage]", "dsn", NULL};
    expect_error("[storage]\nbackend = postgres\n", 0, n6);
    expect_error("[storage]\nbackend = postgres\ndsn =\n", 0, n6);
    const char *n7[] = {"snapshot_bucket", "[bucket:snaps]", NULL};
    expect_error("[cluster]\nsnapshot_bucket = snaps\n", 0, n7);
    /* "local" is the default bucket only while no bucket is configured. */
    const char *n8[] = {"snapshot_bucket", "[bucket:local]", NULL};
    expect_error("[bucket:b]\nroot = /tmp/b\n[cluster]\nsnapshot_bucket = local\n", 0, n8);
    /* Shards answer each other only with a secret. */
    const char *n9[] = {"[cluster]", "secret", NULL};
    expect_error("[storage]\nbackend = postgres\ndsn = x\n[cluster]\nshards = 2\n", 0, n9);
    expect_error("[storage]\nbackend = postgres\ndsn = x\n[cluster]\nshards = 2\nsecret = short\n",
                 0, n9);
}

/* "projection =" means off (the default), unlike an empty path elsewhere,
 * so a later file or line can switch compact descriptors off again. */
static void test_projection_empty_is_off(void)
{
    struct config cfg;
    char err[512], path[64];
    CHECK_INT(load_text("[index]\nprojection = a.bin\nprojection =\n", &cfg, err, sizeof err, path),
              0);
    CHECK(cfg.index.projection == NULL);
    config_free(&cfg);
    unlink(path);
}

/* image_nice takes a nice value or "idle" (SCHED_IDLE), nothing between. */
static void test_image_nice_idle(void)
{
    struct config cfg;
    char err[512], path[64];
    CHECK_INT(load_text("[server]\nimage_nice = idle\n", &cfg, err, sizeof err, path), 0);
    CHECK_INT(cfg.image_nice, IMAGE_NICE_IDLE);
    config_free(&cfg);
    unlink(path);
    CHECK_INT(load_text("[server]\nimage_nice = IDLE\n", &cfg, err, sizeof err, path), 0);
    CHECK_INT(cfg.image_nice, IMAGE_NICE_IDLE);
    config_free(&cfg);
    unlink(path);
}

static void test_error_missing_file(void)
{
    struct config cfg;
    char err[512] = "";
    CHECK_INT(config_load_file("/nonexistent/dir/x.ini", &cfg, err, sizeof err), -1);
    CHECK(strstr(err, "/nonexistent/dir/x.ini") != NULL);
    CHECK(strstr(err, "cannot open") != NULL);
    config_free(&cfg);
}

/* A repeated section adds to the same entry; a repeated key replaces. */
/* Found by fuzz_config: "objects_dir =" gave the default bucket the root
 * "" and "data_dir =" put the database at /imgsearch.db. */
static void test_error_empty_paths(void)
{
    static const char *const keys[] = {"data_dir", "objects_dir", "model", "console_dir"};
    const char *const needles[] = {"[server]", "empty", NULL};
    char text[64];
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        snprintf(text, sizeof text, "[server]\n%s =\n", keys[i]);
        expect_error(text, 2, needles);
    }
    struct config cfg;
    char err[512] = "";
    char *argv[] = {"imgsearchd", "--data-dir", "", NULL};
    CHECK_INT(config_load(3, argv, &cfg, err, sizeof err), -1);
    CHECK(strstr(err, "--data-dir") != NULL);
    config_free(&cfg);
}

static void test_repeated_sections(void)
{
    struct config cfg;
    char err[512], path[64];
    int rc = load_text("[token:t]\ntoken = aaaaaaaa\n[server]\nthreads = 1\n"
                       "[token:t]\ntoken = bbbbbbbb\nproject_id = p\n"
                       "[server]\ndata_dir = /a\ndata_dir = /b\n",
                       &cfg, err, sizeof err, path);
    CHECK_INT(rc, 0);
    CHECK_INT(cfg.n_tokens, 1);
    if (cfg.n_tokens == 1) {
        CHECK_STR(cfg.tokens[0].token, "bbbbbbbb");
        CHECK_STR(cfg.tokens[0].project_id, "p");
    }
    CHECK_STR(cfg.data_dir, "/b");
    config_free(&cfg);
    unlink(path);
}

int main(void)
{
    unsetenv("IMGSEARCH_MODEL");
    RUN(test_defaults_no_file);
    RUN(test_defaults_no_args);
    RUN(test_defaults_empty_file);
    RUN(test_default_bucket_follows_objects_dir);
    RUN(test_every_key);
    RUN(test_projection_empty_is_off);
    RUN(test_usage_lists_every_key);
    RUN(test_auth_modes);
    RUN(test_size_suffixes);
    RUN(test_listen_ipv6_and_parse);
    RUN(test_cli_overrides_file);
    RUN(test_cli_help);
    RUN(test_cli_errors);
    RUN(test_error_unknown_key);
    RUN(test_error_first_only);
    RUN(test_image_nice_idle);
    RUN(test_error_bad_values);
    RUN(test_error_bad_cidr);
    RUN(test_error_unknown_section);
    RUN(test_error_syntax);
    RUN(test_error_validation);
    RUN(test_error_missing_file);
    RUN(test_repeated_sections);
    RUN(test_error_empty_paths);
    return unit_report();
}
