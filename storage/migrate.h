/* migrate.h: brings a database's schema to the newest version, and reads
 * which version it is at. */
#ifndef IMGSEARCH_MIGRATE_H
#define IMGSEARCH_MIGRATE_H

#include <stddef.h>
#include "storage/sql.h"

/* Applies the migrations past the database's version; refuses a database
 * newer than this server. `label` names it in errors. 0 or -1. */
int migrate_run(struct sql_conn *c, const char *label, char *errbuf, size_t errlen);

/* Number of applied migrations, or -1. */
int migrate_version(struct sql_conn *c);

#endif
