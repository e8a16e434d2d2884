/* handlers.h: every route's handler, grouped by file (h_*.c). */
#ifndef IMGSEARCH_HANDLERS_H
#define IMGSEARCH_HANDLERS_H

#include "server/request.h"
#include "storage/instances.h"

/* h_instances.c: v1 instance API and our admin instance API. */
enum err h_v1_instance_create(struct request *req);
enum err h_v1_instance_get(struct request *req);
enum err h_v1_instance_delete(struct request *req);
enum err h_admin_instance_create(struct request *req);
enum err h_admin_instance_list(struct request *req);
enum err h_admin_instance_get(struct request *req);
enum err h_admin_instance_delete(struct request *req);

/* h_system.c */
enum err h_healthz(struct request *req);
enum err h_metrics(struct request *req);

/* Loads the instance named by the path (params[1]) in the request's project;
 * E_NO_INSTANCE when there is none. */
enum err req_instance(struct request *req, const char *name, struct instance *out);

#endif
