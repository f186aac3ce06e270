/* SPDX-License-Identifier: Apache-2.0 */
/*
 * schema_pg.h - the catalog schema for PostgreSQL (schema_pg.c): its
 * migrations, numbered as catalog/store.c's SQLite ones, and the call that
 * brings a database up to date.
 */
#ifndef SCHEMA_PG_H
#define SCHEMA_PG_H

#include "sqldrv.h"

/* The schema version this didfs writes (the number of migrations). */
int sqldrv_pg_schema_target(void);
/* The SQL script of migration `version` (1..target), or NULL. */
const char *sqldrv_pg_schema_migration(int version);
/* Create schema_version if needed and apply the missing migrations in one
 * transaction (redone on DM_AGAIN).  *from / *to (may be NULL): the version
 * before and after.  A database newer than this didfs: DM_ENOTSUP. */
enum dm_status sqldrv_pg_schema_apply(struct sqldrv *db, int *from, int *to);

#endif
