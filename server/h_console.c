/* h_console.c: ours: the web console, static files from cfg.console_dir.
 * Only flat file names of [A-Za-z0-9._-] not starting with '.' are served,
 * so no request can reach outside the directory. Also the thumbnail
 * lookup by query argument the console's result grid uses. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/handlers.h"
#include "server/server.h"
#include "storage/items.h"

#define CONSOLE_MAX_FILE (4u << 20)

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return NULL; /* anything else is not ours to serve */
}

static int name_ok(const char *s)
{
    if (!*s || *s == '.' || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

enum err h_console(struct request *req)
{
    const char *name = "index.html";
    const char *p = req->path + strlen("/console");
    if (*p == '/' && p[1])
        name = p + 1;
    const char *type = content_type(name);
    if (!name_ok(name) || !type)
        return req_fail(req, E_APIG_0101, NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", req->srv->cfg.console_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return req_fail(req, E_APIG_0101, NULL);
    char *buf = malloc(CONSOLE_MAX_FILE);
    size_t n = buf ? fread(buf, 1, CONSOLE_MAX_FILE, f) : 0;
    fclose(f);
    if (!buf)
        return req_fail(req, E_INTERNAL, "out of memory");
    req->raw = buf;
    req->raw_len = n;
    req->raw_type = type;
    return E_OK;
}

/* The thumbnail of an item named by ?item_id=: the path form
 * (.../items/{item_id}/thumbnail) cannot carry ids with '/', which imported
 * object keys usually have. */
enum err h_console_thumb(struct request *req)
{
    const char *id = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "item_id");
    if (!id || !*id)
        return req_fail(req, E_MISSING_PARAM, "item_id");
    return item_thumb_reply(req, id);
}
