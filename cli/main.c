/* main.c: bin/imgsearch, the command-line client. Global options pick the
 * server and credentials (by default from the server's own INI file: the
 * [server] listen address and the first [credential:*] or [token:*]); the
 * commands talk HTTP, so the CLI works against a remote server as well. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "config/config.h"

static void usage(FILE *f)
{
    fputs("usage: imgsearch [--config FILE] [--server URL] [--project ID]\n"
          "                 [--token T | --ak AK --sk SK] COMMAND ...\n"
          "\n"
          "commands:\n"
          "  instance create|list|show|delete   manage instances\n"
          "  import start|status|list|cancel    import a bucket folder into an instance\n"
          "  add INSTANCE FILE|URL              add one image\n"
          "  search INSTANCE FILE|URL           search by image; prints ids and scores\n"
          "  check INSTANCE ITEM_ID             does the item exist; prints its metadata\n"
          "\n"
          "global options:\n"
          "  --config FILE   server config to read the address and credentials from\n"
          "                  (default: $IMGSEARCH_CONFIG)\n"
          "  --server URL    e.g. http://127.0.0.1:8080 (default: the config's listen)\n"
          "  --project ID    project id (default: the credential's project, else \"default\")\n"
          "  --token T       send X-Auth-Token\n"
          "  --ak AK --sk SK sign requests with AK/SK (SDK-HMAC-SHA256)\n"
          "\n"
          "Run 'imgsearch COMMAND --help' for a command's options.\n"
          "Exit status: 0 ok, 1 API or connection error, 2 usage error.\n",
          f);
}

const char *arg_take(struct args *a, const char *name)
{
    size_t nl = strlen(name);
    for (int i = 0; i < a->n; i++) {
        const char *v = NULL;
        int used = 0;
        if (!strcmp(a->v[i], name) && i + 1 < a->n)
            v = a->v[i + 1], used = 2;
        else if (!strncmp(a->v[i], name, nl) && a->v[i][nl] == '=')
            v = a->v[i] + nl + 1, used = 1;
        if (!used)
            continue;
        memmove(&a->v[i], &a->v[i + used], (size_t)(a->n - i - used) * sizeof *a->v);
        a->n -= used;
        return v;
    }
    return NULL;
}

int arg_flag(struct args *a, const char *name)
{
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->v[i], name)) {
            memmove(&a->v[i], &a->v[i + 1], (size_t)(a->n - i - 1) * sizeof *a->v);
            a->n--;
            return 1;
        }
    return 0;
}

int arg_unknown(const struct args *a)
{
    for (int i = 0; i < a->n; i++)
        if (!strncmp(a->v[i], "--", 2) && strcmp(a->v[i], "--")) {
            fprintf(stderr, "imgsearch: unknown option %s\n", a->v[i]);
            return 1;
        }
    return 0;
}

int arg_help(struct args *a, const char *help)
{
    if (arg_flag(a, "--help") || arg_flag(a, "-h")) {
        fputs(help, stdout);
        return 1;
    }
    return 0;
}

int arg_subcommand(struct args *a, const char *help, const char **sub)
{
    if (arg_help(a, help))
        return CLI_OK;
    if (a->n < 1) {
        fputs(help, stderr);
        return CLI_USAGE;
    }
    *sub = a->v[0];
    a->n--, a->v++;
    return -1;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Fills what the command line left open from the config file. */
static int from_config(const char *path, struct client *cl, char **project)
{
    struct config cfg;
    char err[1024] = "";
    if (config_load_file(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "imgsearch: %s\n", err);
        config_free(&cfg);
        return -1;
    }
    if (!cl->base) {
        const char *h = cfg.listen_host;
        if (!strcmp(h, "0.0.0.0") || !*h)
            h = "127.0.0.1";
        else if (!strcmp(h, "::"))
            h = "::1";
        char url[512];
        snprintf(url, sizeof url, strchr(h, ':') ? "http://[%s]:%d" : "http://%s:%d", h,
                 cfg.listen_port);
        cl->base = strdup(url);
    }
    if (!cl->token && !cl->ak) {
        if (cfg.n_credentials &&
            (cfg.auth_mode == AUTH_AKSK || cfg.auth_mode == AUTH_ANY || !cfg.n_tokens)) {
            cl->ak = strdup(cfg.credentials[0].access_key);
            cl->sk = strdup(cfg.credentials[0].secret_key);
            if (!*project)
                *project = dup_or_null(cfg.credentials[0].project_id);
        } else if (cfg.n_tokens) {
            cl->token = strdup(cfg.tokens[0].token);
            if (!*project)
                *project = dup_or_null(cfg.tokens[0].project_id);
        }
    }
    config_free(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    struct client cl = {0};
    char *project = NULL;
    struct args a = {argc - 1, argv + 1};
    int rc = CLI_USAGE;
    const char *config = arg_take(&a, "--config");
    cl.base = dup_or_null(arg_take(&a, "--server"));
    project = dup_or_null(arg_take(&a, "--project"));
    cl.token = dup_or_null(arg_take(&a, "--token"));
    cl.ak = dup_or_null(arg_take(&a, "--ak"));
    cl.sk = dup_or_null(arg_take(&a, "--sk"));
    if (a.n == 0 || !strcmp(a.v[0], "--help") || !strcmp(a.v[0], "-h") || !strcmp(a.v[0], "help")) {
        usage(a.n ? stdout : stderr);
        rc = a.n ? CLI_OK : CLI_USAGE;
        goto out;
    }
    if ((cl.ak != NULL) != (cl.sk != NULL)) {
        fprintf(stderr, "imgsearch: --ak and --sk go together\n");
        goto out;
    }
    if (!config)
        config = getenv("IMGSEARCH_CONFIG");
    if (config && from_config(config, &cl, &project) != 0)
        goto out;
    if (!cl.base)
        cl.base = strdup("http://127.0.0.1:8080");
    size_t bl = strlen(cl.base);
    while (bl > 0 && cl.base[bl - 1] == '/')
        cl.base[--bl] = 0;
    cl.project = project ? project : strdup("default");
    project = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = a.v[0];
    a.n--, a.v++;
    if (!strcmp(cmd, "instance"))
        rc = cmd_instance(&cl, &a);
    else if (!strcmp(cmd, "import"))
        rc = cmd_import(&cl, &a);
    else if (!strcmp(cmd, "add"))
        rc = cmd_add(&cl, &a);
    else if (!strcmp(cmd, "search"))
        rc = cmd_search(&cl, &a);
    else if (!strcmp(cmd, "check"))
        rc = cmd_check(&cl, &a);
    else {
        fprintf(stderr, "imgsearch: unknown command %s\n", cmd);
        usage(stderr);
    }
    curl_global_cleanup();
out:
    free(cl.base);
    free(cl.project);
    free(cl.token);
    free(cl.ak);
    free(cl.sk);
    free(project);
    return rc;
}
