/* handlers.h: every route's handler, grouped by file (h_*.c). */
#ifndef IMGSEARCH_HANDLERS_H
#define IMGSEARCH_HANDLERS_H

#include "server/request.h"
#include "storage/instances.h"

/* h_cluster.c: the nodes on a shared database (a JSON array, NULL on
 * SQLite or when the database cannot be read). */
struct server;
json_t *cluster_nodes_json(struct server *srv);
enum err h_admin_cluster(struct request *req);

/* h_instances.c: v1 instance API and our admin instance API. */
enum err h_v1_instance_create(struct request *req);
enum err h_v1_instance_get(struct request *req);
enum err h_v1_instance_delete(struct request *req);
enum err h_admin_instance_create(struct request *req);
enum err h_admin_instance_list(struct request *req);
enum err h_admin_instance_get(struct request *req);
enum err h_admin_instance_delete(struct request *req);
enum err h_admin_instance_compact(struct request *req);

/* h_v2_data.c, h_v2_search.c: the v2 API. */
enum err h_v2_add(struct request *req);
enum err h_v2_check(struct request *req);
enum err h_v2_update(struct request *req);
enum err h_v2_delete(struct request *req);
enum err h_v2_search(struct request *req);
struct image_input;
/* image_base64 / image_url / optional_params.box of v2 add and search. */
enum err v2_image_input(struct request *req, json_t *body, struct image_input *in);

/* h_v1_images.c: the v1 picture API. */
enum err h_v1_image_add(struct request *req);
enum err h_v1_image_check(struct request *req);
enum err h_v1_image_modify(struct request *req);
enum err h_v1_image_delete(struct request *req);
enum err h_v1_image_search(struct request *req);

/* h_items.c: ours: item thumbnails for the console. */
enum err h_admin_item_thumb(struct request *req);
/* Answers the JPEG thumbnail of item_id in the path's instance. */
enum err item_thumb_reply(struct request *req, const char *item_id);

/* h_imports.c: ours: offline import jobs. */
enum err h_admin_import_start(struct request *req);
enum err h_admin_import_list(struct request *req);
enum err h_admin_import_get(struct request *req);
enum err h_admin_import_cancel(struct request *req);

/* h_console.c: ours: the web console's static files. */
enum err h_console(struct request *req);
enum err h_console_thumb(struct request *req);

/* h_system.c */
enum err h_healthz(struct request *req);
enum err h_metrics(struct request *req);

/* Loads the instance named by the path (params[1]) in the request's project;
 * E_NO_INSTANCE when there is none. */
enum err req_instance(struct request *req, const char *name, struct instance *out);

#endif
