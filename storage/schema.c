/* schema.c: the migrations, in order. Never edit an applied one: add the
 * next. migrate.c runs those past PRAGMA user_version at open, each in its own
 * transaction. */
#include <stddef.h>
#include "storage/schema.h"

static const char *const migrations[] = {
    /* 1: projects, instances, items with their tags, keywords and vectors. */
    "CREATE TABLE projects ("
    "  id TEXT PRIMARY KEY,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE instances ("
    "  id INTEGER PRIMARY KEY,"
    "  project_id TEXT NOT NULL REFERENCES projects(id),"
    "  name TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  model TEXT NOT NULL DEFAULT 'common-search',"
    "  level INTEGER NOT NULL DEFAULT 30000000,"
    "  search_types TEXT NOT NULL DEFAULT '[\"IMAGE\",\"KEYWORD\"]',"
    "  custom_tags TEXT NOT NULL DEFAULT '[]',"
    "  custom_num_tags TEXT NOT NULL DEFAULT '[]',"
    "  created_ms INTEGER NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'NORMAL',"
    /* bumped in every item write transaction; an index snapshot is reused only
     * when it was saved at the same value */
    "  change_seq INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (project_id, name));"
    /* rowid is the vector id in the instance's FAISS index. */
    "CREATE TABLE items ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    "  item_id TEXT NOT NULL,"
    "  descr TEXT,"
    "  custom_tags TEXT,"
    "  custom_num_tags TEXT,"
    "  keywords TEXT,"
    "  vector BLOB NOT NULL,"
    "  phash INTEGER NOT NULL,"
    "  width INTEGER NOT NULL,"
    "  height INTEGER NOT NULL,"
    "  box TEXT,"
    "  thumb BLOB,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  UNIQUE (instance_id, item_id));"
    "CREATE TABLE item_tags ("
    "  item INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL, value TEXT NOT NULL,"
    "  PRIMARY KEY (item, key)) WITHOUT ROWID;"
    "CREATE INDEX item_tags_kv ON item_tags(key, value);"
    "CREATE TABLE item_num_tags ("
    "  item INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL, value REAL NOT NULL,"
    "  PRIMARY KEY (item, key)) WITHOUT ROWID;"
    "CREATE INDEX item_num_tags_kv ON item_num_tags(key, value);"
    "CREATE TABLE item_keywords ("
    "  item INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  keyword TEXT NOT NULL,"
    "  PRIMARY KEY (item, keyword)) WITHOUT ROWID;"
    "CREATE INDEX item_keywords_kw ON item_keywords(keyword);"
    "CREATE INDEX items_phash ON items(instance_id, phash);",

    /* 2: import jobs and the keys each one imports (materialised at start,
     * so a job resumed after a crash knows exactly what is left). */
    "CREATE TABLE import_jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  job_id TEXT NOT NULL UNIQUE,"
    "  project_id TEXT NOT NULL,"
    "  instance TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  manifest TEXT,"
    "  item_id_from TEXT NOT NULL DEFAULT 'key',"
    "  force INTEGER NOT NULL DEFAULT 0,"
    "  status TEXT NOT NULL DEFAULT 'QUEUED',"
    "  error TEXT,"
    "  total INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  started_ms INTEGER NOT NULL DEFAULT 0,"
    "  finished_ms INTEGER NOT NULL DEFAULT 0,"
    "  active_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX import_jobs_project ON import_jobs(project_id, instance);"
    "CREATE INDEX import_jobs_status ON import_jobs(status);"
    "CREATE TABLE import_keys ("
    "  job INTEGER NOT NULL REFERENCES import_jobs(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  key TEXT NOT NULL,"
    "  url TEXT NOT NULL,"
    "  meta TEXT,"
    "  status INTEGER NOT NULL DEFAULT 0," /* 0 pending, 1 done, 2 failed */
    "  error_code TEXT,"
    "  error_msg TEXT,"
    "  PRIMARY KEY (job, seq)) WITHOUT ROWID;"
    "CREATE INDEX import_keys_status ON import_keys(job, status, seq);",
    /* 3: regional descriptors (5 crops of 0.6 x 0.6 of the sides, centre and
     * corners) for instances created with regions on; k is 1..5. */
    "ALTER TABLE instances ADD COLUMN regions INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE item_regions ("
    "  item INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    "  k INTEGER NOT NULL,"
    "  vector BLOB NOT NULL,"
    "  PRIMARY KEY (item, k)) WITHOUT ROWID;",
    /* 4: extra views (storage/vectors.h: centre window, low resolution,
     * grey) for instances created with views on; they live in item_regions
     * too, k = 1, 6, 7. Older instances keep views = 0. */
    "ALTER TABLE instances ADD COLUMN views INTEGER NOT NULL DEFAULT 0;",
    /* 5: imports list their source in the background (server/lister.c);
     * listing_done = 0 while keys are still being appended. Older jobs had
     * their keys materialised at creation. */
    "ALTER TABLE import_jobs ADD COLUMN listing_done INTEGER NOT NULL DEFAULT 1;",
    /* 6: a change log for index snapshots (server/registry.c). Each item row
     * records the change_seq of the transaction that inserted it, each
     * removed row leaves a tombstone with the seq that removed it, so a
     * snapshot taken at seq S is brought up to date by replaying seq > S.
     * replay_floor: changes with seq <= it may be missing from the log (all
     * of them before this migration; tombstones pruned once a snapshot
     * covers them), so an older snapshot is not replayed but rebuilt. */
    "ALTER TABLE items ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX items_seq ON items(instance_id, seq);"
    "ALTER TABLE instances ADD COLUMN replay_floor INTEGER NOT NULL DEFAULT 0;"
    "UPDATE instances SET replay_floor = change_seq;"
    "CREATE TABLE index_tombstones ("
    "  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  row INTEGER NOT NULL,"
    "  PRIMARY KEY (instance_id, seq, row)) WITHOUT ROWID;",
    /* 7: compact descriptors (issue 9). projection: the hex SHA-256 of the
     * projection file an instance's vectors are int8 codes in; NULL (every
     * older instance) keeps float32 vectors. */
    "ALTER TABLE instances ADD COLUMN projection TEXT;",
    /* 8: several nodes on one database (docs/cluster.md; only PostgreSQL
     * is shared, SQLite gets the same tables so a version means one
     * schema). nodes: each live imgsearchd's heartbeat, on the database's
     * clock. node_applied: per node and instance the change seq whose
     * tombstones that node may still replay from (its snapshot's, or its
     * in-memory index's): pruning stays below the lowest of live nodes. */
    "CREATE TABLE nodes ("
    "  id TEXT PRIMARY KEY,"
    "  url TEXT NOT NULL DEFAULT '',"
    "  started_ms INTEGER NOT NULL,"
    "  heartbeat_ms INTEGER NOT NULL);"
    "CREATE TABLE node_applied ("
    "  node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
    "  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  PRIMARY KEY (instance_id, node_id)) WITHOUT ROWID;",
    /* 9: the node (nodes.id) running an import job, so on a shared database
     * a node requeues only the jobs of dead nodes, and lists only its own
     * jobs' sources. NULL: a single node's job, or not running. */
    "ALTER TABLE import_jobs ADD COLUMN claimed_by TEXT;",
    /* 10: projections fitted on an instance's own vectors (server/compactor.c),
     * by digest: the file's bytes, so every node reads the same space. */
    "CREATE TABLE projections ("
    "  digest TEXT PRIMARY KEY,"
    "  data BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL) WITHOUT ROWID;",
    /* 11: shards (docs/cluster.md). instances.shards: fixed at creation
     * ([cluster] shards; always 1 here on SQLite); items.shard: FNV-1a of
     * item_id mod shards (storage/shard.h), 0 for every older row, as they
     * all belong to instances of one shard. shard_map: which node owns a
     * shard, written by its owner for operators; epoch counts its owners. */
    "ALTER TABLE instances ADD COLUMN shards INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE items ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX items_shard ON items(instance_id, shard, seq);"
    "CREATE TABLE shard_map ("
    "  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    "  shard INTEGER NOT NULL,"
    "  node_id TEXT NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  assigned_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (instance_id, shard)) WITHOUT ROWID;",
};

size_t schema_count(void)
{
    return sizeof migrations / sizeof migrations[0];
}

const char *schema_migration(size_t i)
{
    return i < schema_count() ? migrations[i] : NULL;
}
