/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_pg.c - the PostgreSQL store: a catalog in a PostgreSQL 15 database
 * named by a libpq URI (postgresql://user[:password]@host[:port]/db?...),
 * for sites that outgrow one file: many servers and daemon hosts share it.
 * cat_open() (open.c) reaches cat_pg_open() for postgresql:// and
 * postgres:// URIs.  The queries are the SQL stores' shared ones (store.c
 * and the rest of catalog/), run through the SQL driver (catalog/sql/:
 * sqldrv_pg.c reconnects after a server restart and redoes a transaction
 * that lost its connection; DM_AGAIN otherwise); the schema and its
 * migrations are catalog/sql/schema_pg.c, numbered as store_sqlite.c's.
 *
 * Who may act as whom: the database authenticates its clients itself, so
 * a process it let in is trusted as the owner of a SQLite file is (store.c,
 * cat_os_caller); the accounts of Rucio apply as ever through the issuer.
 */
#include "catalog_i.h"
#include "dmcheck.h"
#include "schema_pg.h"

#include <stdlib.h>
#include <string.h>

static void pg_close(struct cat_db *db)
{
	sqldrv_close(db->sql);
	free(db->path);
	free(db->abs_path);
	free(db);
}

/* The URI as given: it reopens the catalog from any directory and process
 * (its password included, so it is never printed: describe() is). */
static void pg_location(const struct cat_db *db, struct dm_buf *out)
{
	dm_buf_adds(out, db->path);
}

static void pg_describe(const struct cat_db *db, struct dm_buf *out)
{
	dm_buf_addf(out, "postgresql:%s (schema version %d)", sqldrv_uri(db->sql),
		    sqldrv_pg_schema_target());
}


/* The schema version of the database: 0 when it has none yet. */
static enum dm_status schema_version(struct cat_db *db, int *version)
{
	struct sqldrv_stmt *st;
	int r;

	*version = 0;
	st = cat_stmt(db, "SELECT count(*) FROM information_schema.tables"
			  " WHERE table_schema = current_schema() AND table_name = 'schema_version'");
	if (!st)
		return db->err.code;
	r = sqldrv_step(st);
	if (r != SQLDRV_ROW)
		return cat_dberr(db, "reading the schema version");
	if (sqldrv_col_int64(st, 0) == 0) {
		sqldrv_reset(st);
		return DM_OK;
	}
	sqldrv_reset(st);
	st = cat_stmt(db, "SELECT coalesce(max(version), 0) FROM schema_version");
	if (!st)
		return db->err.code;
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW)
		*version = (int)sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	return r == SQLDRV_ROW ? DM_OK : cat_dberr(db, "reading the schema version");
}

static int pg_schema_version(struct cat_db *db)
{
	int v = -1;

	return schema_version(db, &v) == DM_OK ? v : -1;
}

static const struct cat_store_ops pg_ops = {
	.name = "postgresql",
	.close = pg_close,
	.location = pg_location,
	.describe = pg_describe,
	.schema_version = pg_schema_version,
	.os_owner = NULL, /* the server authenticates: see the header */
};

enum dm_status cat_pg_open(const char *uri, unsigned flags, struct cat_db **out,
			   struct dm_err *err)
{
	struct cat_db *db;
	int version = 0;
	enum dm_status rc;

	*out = NULL;
	db = dm_xcalloc(1, sizeof *db);
	db->ops = &pg_ops;
	db->path = dm_xstrdup(uri);
	db->issuer_admin = -1;
	dm_strlcpy(db->issuer, "root", sizeof db->issuer);
	rc = sqldrv_open(uri, 0, &db->sql, err);
	if (rc) {
		free(db->path);
		free(db);
		return rc;
	}
	db->busy_ms = dm_busy_timeout_s() * 1000;
	rc = schema_version(db, &version);
	if (rc == DM_OK && version == 0 && !(flags & CAT_OPEN_CREATE))
		rc = cat_fail(db, DM_ENOENT, "DatabaseException",
			      "'%s' is not an initialised catalog (run 'didfs init --catalog URI')",
			      sqldrv_uri(db->sql));
	else if (rc == DM_OK && version != sqldrv_pg_schema_target() &&
		 !(flags & CAT_OPEN_READONLY)) {
		/* a new database, or one of an older didfs: bring it up to date
		 * (one transaction; an advisory lock serialises two openers) */
		if (sqldrv_pg_schema_apply(db->sql, NULL, NULL) != DM_OK) {
			const struct dm_err *e = sqldrv_error(db->sql);
			rc = cat_fail(db, e->code ? e->code : DM_EINTERNAL, "DatabaseException",
				      "setting up the catalog schema in %s: %s", sqldrv_uri(db->sql),
				      e->msg);
		}
	}
	if (rc == DM_OK)
		rc = cat_os_caller(db);
	if (rc) {
		if (err)
			*err = db->err;
		db->ops->close(db);
		return rc;
	}
	*out = db;
	return DM_OK;
}
