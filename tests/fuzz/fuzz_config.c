/* fuzz_config.c: libFuzzer target for the INI configuration loader
 * (config/config.c through libinih) and the value parsers it shares with the
 * command line (cidr_parse, config_parse_listen). The input is the file: it
 * is written to a memfd and loaded by path (/proc/self/fd/N) through both
 * config_load_file and config_load --config, exactly as at start-up.
 * Invariants: a loaded config satisfies what validate()/finish() promise
 * (a bucket always exists and is complete, auth modes have credentials,
 * tokens are long enough); a rejected one says why, naming the file. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "config/config.h"

static int fd = -1;
static char path[64];

static void check_loaded(const struct config *c)
{
    if (!c->listen_host || c->listen_port < 0 || c->listen_port > 65535 || !*c->data_dir ||
        !*c->objects_dir || !*c->model_path || !*c->console_dir || c->n_buckets < 1 ||
        !c->buckets || !c->max_body_bytes || !c->index.ann_factory)
        abort();
    for (size_t i = 0; i < c->n_buckets; i++) {
        const struct bucket_config *b = &c->buckets[i];
        if (!b->name || !*b->name)
            abort();
        if (b->kind == BUCKET_LOCAL && (!b->root || !*b->root))
            abort();
        if (b->kind == BUCKET_S3 &&
            (!b->endpoint || !b->access_key || !b->secret_key || !b->remote || !b->region))
            abort();
    }
    for (size_t i = 0; i < c->n_credentials; i++)
        if (!c->credentials[i].name || !c->credentials[i].access_key ||
            !*c->credentials[i].access_key || !c->credentials[i].secret_key ||
            !*c->credentials[i].secret_key)
            abort();
    for (size_t i = 0; i < c->n_tokens; i++)
        if (!c->tokens[i].name || !c->tokens[i].token || strlen(c->tokens[i].token) < 8)
            abort();
    if (c->auth_mode != AUTH_NONE && c->n_tokens + c->n_credentials == 0)
        abort();
    for (size_t i = 0; i < c->fetch.n_allow; i++)
        if (c->fetch.allow[i].prefix < 0 || c->fetch.allow[i].prefix > 128)
            abort();
    for (size_t i = 0; i < c->fetch.n_deny; i++)
        if (c->fetch.deny[i].prefix < 0 || c->fetch.deny[i].prefix > 128)
            abort();
}

static void check_rejected(const char *err)
{
    /* Every message names the file it came from. */
    if (strncmp(err, path, strlen(path)) != 0 && strncmp(err, "(defaults)", 10) != 0)
        abort();
}

/* Each line also goes to the shared value parsers on its own. */
static void fuzz_values(char *text)
{
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        struct cidr c;
        if (cidr_parse(l, &c) == 0) {
            int bits = c.family == AF_INET ? 32 : 128;
            if ((c.family != AF_INET && c.family != AF_INET6) || c.prefix < 0 || c.prefix > bits)
                abort();
            /* A network holds its own address, except that an IPv4-mapped
             * address is always matched as IPv4 (cidr.c), so it is never in
             * an IPv6 network such as ::ffff:10.0.0.0/90 (found by this target). */
            static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
            int as_v4 = c.family == AF_INET6 && !memcmp(c.addr, mapped, sizeof mapped);
            if (cidr_match(&c, c.family, c.addr) == as_v4)
                abort();
        }
        char *host = NULL;
        int port = -1;
        if (config_parse_listen(l, &host, &port) == 0 && (!host || port < 0 || port > 65535))
            abort();
        free(host);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("fuzz_config.conf", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();

    struct config cfg;
    char err[512] = "";
    if (config_load_file(path, &cfg, err, sizeof err) == 0)
        check_loaded(&cfg);
    else
        check_rejected(err);
    config_free(&cfg);

    /* The same file through the command line, with the overrides on top. */
    char *argv[] = {"imgsearchd", "--config", path, "--listen", "[::1]:0", "--data-dir", "d", NULL};
    err[0] = 0;
    int rc = config_load(7, argv, &cfg, err, sizeof err);
    if (rc == 0) {
        check_loaded(&cfg);
        if (strcmp(cfg.listen_host, "::1") || cfg.listen_port != 0 || strcmp(cfg.data_dir, "d"))
            abort();
    } else if (rc < 0) {
        check_rejected(err);
    }
    config_free(&cfg);

    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = 0;
        fuzz_values(text);
        free(text);
    }
    return 0;
}
