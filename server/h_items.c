/* h_items.c: ours, for the console: the thumbnail of a stored item, by path
 * segment or (for ids with '/', as imported object keys have) by query. */
#include <stdlib.h>
#include "server/handlers.h"
#include "server/server.h"
#include "storage/items.h"

enum err item_thumb_reply(struct request *req, const char *item_id)
{
    struct instance inst;
    enum err e = req_instance(req, req->params[1], &inst);
    if (e)
        return e;
    uint8_t *data = NULL;
    size_t len = 0;
    enum db_status s = items_thumb(req->srv->db, inst.id, item_id, &data, &len);
    instance_free(&inst);
    if (s == DB_NOT_FOUND)
        return req_fail(req, E_MMS_ITEM_NOT_FOUND, item_id);
    if (s != DB_OK)
        return req_fail(req, E_STORE_FAILED, "thumbnail");
    req->raw = (char *)data;
    req->raw_len = len;
    req->raw_type = "image/jpeg";
    return E_OK;
}

enum err h_admin_item_thumb(struct request *req)
{
    return item_thumb_reply(req, req->params[2]);
}
