/* instances.h: instance records. One namespace per project: an instance made
 * through the v1 API or the admin API is the same row, named by v2 paths as
 * {service_name} and by v1 paths as {instance_name}. */
#ifndef IMGSEARCH_INSTANCES_H
#define IMGSEARCH_INSTANCES_H

#include <stdint.h>
#include "storage/db.h"

enum search_type_bit {
    ST_IMAGE = 1 << 0,
    ST_KEYWORD = 1 << 1,
    ST_TEXT = 1 << 2,
    ST_CATEGORY = 1 << 3,
};

struct instance {
    int64_t id;
    char *project_id;
    char *name;
    char *description;
    char *model;
    long long level;
    unsigned search_types; /* enum search_type_bit */
    char **tag_keys;       /* allowed custom_tags keys (v1 "tags") */
    size_t n_tag_keys;
    char **num_tag_keys; /* allowed custom_num_tags keys */
    size_t n_num_tag_keys;
    long long created_ms;
    char *status;
    long long item_count; /* filled by list and instances_count_items; get: -1 */
    int regions;          /* also index 5 regional descriptors per item */
    int views;            /* also index the centre, low-res and grey views */
    /* Compact descriptors (issue 9): the digest of the projection its
     * vectors are coded in (index/projection.h); NULL: float vectors. */
    char *projection;
    /* Its items are split into this many shards by item id (storage/shard.h);
     * fixed at creation ([cluster] shards, 1 on SQLite; 0 on create: 1). */
    int shards;
};

/* Creates the project row if needed. DB_EXISTS when the name is taken. */
enum db_status instances_create(struct db *db, struct instance *inst);
enum db_status instances_get(struct db *db, const char *project_id, const char *name,
                             struct instance *out);
enum db_status instances_list(struct db *db, const char *project_id, struct instance **out,
                              size_t *n);
/* Fills inst->item_count (a scan of the instance's items: not per request). */
enum db_status instances_count_items(struct db *db, struct instance *inst);
/* Deletes the instance and (by cascade) its items; *id gets its id. */
enum db_status instances_delete(struct db *db, const char *project_id, const char *name,
                                int64_t *id);
/* Every instance of every project (start-up loads their indexes). */
enum db_status instances_all(struct db *db, struct instance **out, size_t *n);

/* The instance's created_ms by id (DB_NOT_FOUND: no such instance). */
enum db_status instances_created_ms(struct db *db, int64_t id, long long *ms);

void instance_free(struct instance *inst);
void instances_free(struct instance *list, size_t n);

int instance_has_tag_key(const struct instance *inst, const char *key);
int instance_has_num_tag_key(const struct instance *inst, const char *key);

/* "IMAGE" -> ST_IMAGE etc. (also the numeric forms "0".."3"); 0 if unknown. */
unsigned search_type_parse(const char *s);
const char *search_type_name(unsigned bit);

long long now_ms(void);

#endif
