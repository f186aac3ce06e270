/* SPDX-License-Identifier: Apache-2.0 */
/*
 * migrate.c - copying a whole catalog from one SQL store into a new one
 * (`didfs migrate FROM TO`: a SQLite file into PostgreSQL, or back).
 *
 * Both ends are opened at the current schema version (opening the source
 * brings an older file up to date first), so they hold the same tables and
 * columns.  The tables are read from the target's own schema and copied in
 * the order their foreign keys need (parents first); per table, the source
 * is read in one streaming query and written through the driver's bulk
 * load (COPY on PostgreSQL, a prepared INSERT on SQLite), so memory stays
 * constant whatever the size.  The source is read in one snapshot; the
 * whole target is written in one transaction, so a failure half-way leaves
 * it as empty as it was.  Surrogate keys (dids.id, rses.num, ...) are kept
 * as they are and PostgreSQL's identity sequences moved past them.
 *
 * Only into an empty catalog (no accounts: a new file or a database that
 * `didfs init` has not bootstrapped), and only by who may read everything
 * in the source (the file's owner or root; PostgreSQL's server decides).
 */
#include "catalog_i.h"

#include <stdlib.h>
#include <string.h>

enum col_kind { COL_INT, COL_REAL, COL_TEXT, COL_BLOB };

struct table {
	char *name;
	char **cols;
	enum col_kind *kinds;
	int ncols;
	char **parents; /* tables its foreign keys reference */
	int nparents;
	int done;
};

struct tables {
	struct table *v;
	size_t n;
};

static void tables_free(struct tables *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct table *x = &t->v[i];
		for (int c = 0; c < x->ncols; c++)
			free(x->cols[c]);
		for (int p = 0; p < x->nparents; p++)
			free(x->parents[p]);
		free(x->cols);
		free(x->kinds);
		free(x->parents);
		free(x->name);
	}
	free(t->v);
	memset(t, 0, sizeof *t);
}

static enum dm_status fail_db(struct cat_db *db, const char *what)
{
	return cat_dberr(db, what);
}

/* The kind of value a declared column type holds, by SQLite's affinity
 * rules (which PostgreSQL's type names also satisfy: bigint, text, bytea,
 * double precision). */
static enum col_kind kind_of(const char *type)
{
	char t[64];
	size_t i;

	for (i = 0; type && type[i] && i + 1 < sizeof t; i++)
		t[i] = (char)(type[i] >= 'a' && type[i] <= 'z' ? type[i] - 32 : type[i]);
	t[i] = 0;
	if (strstr(t, "INT") || strstr(t, "BOOL"))
		return COL_INT;
	if (strstr(t, "CHAR") || strstr(t, "CLOB") || strstr(t, "TEXT"))
		return COL_TEXT;
	if (strstr(t, "BLOB") || strstr(t, "BYTEA") || t[0] == 0)
		return COL_BLOB;
	if (strstr(t, "REAL") || strstr(t, "FLOA") || strstr(t, "DOUB"))
		return COL_REAL;
	return COL_INT; /* NUMERIC affinity: the catalog keeps only integers there */
}

static struct table *table_find(struct tables *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	return NULL;
}

/* The target's tables, columns and foreign keys. */
static enum dm_status read_schema(struct cat_db *db, struct tables *out)
{
	int pg = cat_is_pg(db);
	struct sqldrv_stmt *st;
	int r;

	st = cat_stmt(db, pg ? "SELECT table_name FROM information_schema.tables"
			       " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
			       " AND table_name <> 'schema_version' ORDER BY table_name"
			     : "SELECT name FROM sqlite_master WHERE type = 'table'"
			       " AND name NOT LIKE 'sqlite_%' ORDER BY name");
	if (!st)
		return db->err.code;
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		out->v = dm_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
		memset(&out->v[out->n], 0, sizeof out->v[0]);
		out->v[out->n++].name = dm_xstrdup(sqldrv_col_text(st, 0));
	}
	sqldrv_reset(st);
	if (r != SQLDRV_DONE)
		return fail_db(db, "reading the target's tables");
	for (size_t i = 0; i < out->n; i++) {
		struct table *t = &out->v[i];

		st = cat_stmt(db, pg ? "SELECT column_name, data_type FROM information_schema.columns"
				       " WHERE table_schema = current_schema() AND table_name = ?1"
				       " ORDER BY ordinal_position"
				     : "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid");
		if (!st)
			return db->err.code;
		sqldrv_bind_text(st, 1, t->name, -1);
		while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
			t->cols = dm_xrealloc(t->cols, (size_t)(t->ncols + 1) * sizeof *t->cols);
			t->kinds = dm_xrealloc(t->kinds, (size_t)(t->ncols + 1) * sizeof *t->kinds);
			t->cols[t->ncols] = dm_xstrdup(sqldrv_col_text(st, 0));
			t->kinds[t->ncols++] = kind_of(sqldrv_col_text(st, 1));
		}
		sqldrv_reset(st);
		if (r != SQLDRV_DONE)
			return fail_db(db, "reading the target's columns");
		st = cat_stmt(db, pg ? "SELECT DISTINCT c.confrelid::regclass::text FROM pg_constraint c"
				       " WHERE c.contype = 'f' AND c.conrelid = ?1::regclass"
				     : "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)");
		if (!st)
			return db->err.code;
		sqldrv_bind_text(st, 1, t->name, -1);
		while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
			t->parents = dm_xrealloc(t->parents,
						 (size_t)(t->nparents + 1) * sizeof *t->parents);
			t->parents[t->nparents++] = dm_xstrdup(sqldrv_col_text(st, 0));
		}
		sqldrv_reset(st);
		if (r != SQLDRV_DONE)
			return fail_db(db, "reading the target's foreign keys");
	}
	return DM_OK;
}

/* The next table whose parents are all copied (a table referencing
 * itself counts as ready). */
static struct table *next_table(struct tables *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct table *x = &t->v[i];
		int ready = !x->done;

		for (int p = 0; ready && p < x->nparents; p++) {
			struct table *par = table_find(t, x->parents[p]);
			ready = !par || par == x || par->done;
		}
		if (ready)
			return x;
	}
	for (size_t i = 0; i < t->n; i++) /* a cycle: take them in name order */
		if (!t->v[i].done)
			return &t->v[i];
	return NULL;
}

static enum dm_status copy_table(struct cat_db *from, struct cat_db *to, struct table *t,
				 cat_migrate_cb cb, void *ud, uint64_t *rows)
{
	struct dm_buf q = DM_BUF_INIT;
	struct sqldrv_stmt *st;
	struct sqldrv_bulk *b;
	enum dm_status rc = DM_OK;
	int r;

	*rows = 0;
	dm_buf_adds(&q, "SELECT ");
	for (int c = 0; c < t->ncols; c++)
		dm_buf_addf(&q, "%s%s", c ? ", " : "", t->cols[c]);
	dm_buf_addf(&q, " FROM %s", t->name);
	st = sqldrv_prepare(from->sql, q.s);
	dm_buf_release(&q);
	if (!st)
		return cat_fail(to, DM_EIO, "DatabaseException", "reading table %s of the source: %s",
				t->name, sqldrv_error(from->sql)->msg);
	b = sqldrv_bulk_begin(to->sql, t->name, (const char *const *)t->cols, t->ncols);
	if (!b) {
		sqldrv_reset(st);
		return cat_fail(to, DM_EIO, "DatabaseException", "writing table %s of the target: %s",
				t->name, sqldrv_error(to->sql)->msg);
	}
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		for (int c = 0; c < t->ncols; c++) {
			if (sqldrv_col_is_null(st, c)) {
				sqldrv_bulk_null(b);
				continue;
			}
			switch (t->kinds[c]) {
			case COL_INT:
				sqldrv_bulk_int64(b, sqldrv_col_int64(st, c));
				break;
			case COL_REAL:
				sqldrv_bulk_double(b, sqldrv_col_double(st, c));
				break;
			case COL_TEXT:
				sqldrv_bulk_text(b, sqldrv_col_text(st, c), -1);
				break;
			case COL_BLOB: {
				size_t n = 0;
				const void *p = sqldrv_col_blob(st, c, &n);
				sqldrv_bulk_blob(b, p ? p : "", n);
				break;
			}
			}
		}
		rc = sqldrv_bulk_row(b);
		if (rc)
			break;
		if (++*rows % 100000 == 0 && cb)
			cb(ud, t->name, *rows, 0);
	}
	if (rc == DM_OK && r != SQLDRV_DONE)
		rc = cat_fail(to, DM_EIO, "DatabaseException", "reading table %s of the source: %s",
			      t->name, sqldrv_error(from->sql)->msg);
	else if (rc)
		rc = cat_fail(to, rc, "DatabaseException", "writing table %s of the target: %s",
			      t->name, sqldrv_error(to->sql)->msg);
	sqldrv_reset(st);
	{
		enum dm_status end = sqldrv_bulk_end(b, rc);
		if (rc == DM_OK && end != DM_OK)
			rc = cat_fail(to, end, "DatabaseException", "writing table %s of the target: %s",
				      t->name, sqldrv_error(to->sql)->msg);
	}
	if (rc == DM_OK && cb)
		cb(ud, t->name, *rows, 1);
	return rc;
}

/* PostgreSQL: the identity sequences past the ids copied. */
static enum dm_status move_sequences(struct cat_db *to)
{
	struct sqldrv_stmt *st;
	char (*cols)[2][64] = NULL;
	size_t n = 0;
	int r;

	st = cat_stmt(to, "SELECT table_name, column_name FROM information_schema.columns"
			  " WHERE table_schema = current_schema() AND is_identity = 'YES'");
	if (!st)
		return to->err.code;
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		cols = dm_xrealloc(cols, (n + 1) * sizeof *cols);
		dm_strlcpy(cols[n][0], sqldrv_col_text(st, 0), 64);
		dm_strlcpy(cols[n][1], sqldrv_col_text(st, 1), 64);
		n++;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_DONE) {
		free(cols);
		return fail_db(to, "reading the target's identity columns");
	}
	for (size_t i = 0; i < n; i++) {
		char sql[512];

		snprintf(sql, sizeof sql,
			 "SELECT setval(pg_get_serial_sequence('\"%s\"', '%s'),"
			 " coalesce(max(\"%s\"), 0) + 1, false) FROM \"%s\"",
			 cols[i][0], cols[i][1], cols[i][1], cols[i][0]);
		if (sqldrv_exec(to->sql, sql) != DM_OK) {
			free(cols);
			return fail_db(to, "moving an identity sequence");
		}
	}
	free(cols);
	return DM_OK;
}

static enum dm_status count_rows(struct cat_db *db, const char *table, int64_t *n)
{
	char sql[128];
	struct sqldrv_stmt *st;

	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
	st = cat_stmt(db, sql);
	if (!st)
		return db->err.code;
	if (sqldrv_step(st) != SQLDRV_ROW) {
		sqldrv_reset(st);
		return fail_db(db, "counting rows");
	}
	*n = sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	return DM_OK;
}

static enum dm_status migrate(struct cat_db *from, struct cat_db *to, cat_migrate_cb cb,
			      void *ud, uint64_t *total)
{
	struct tables t = { 0 };
	struct table *x;
	enum dm_status rc;
	int64_t n = 0;

	if (from->ops->remote || to->ops->remote)
		return cat_fail(to, DM_ENOTSUP, "UnsupportedOperation",
				"migrate copies between SQL stores (a file or postgresql://), not a"
				" REST server");
	if (from->os_readonly)
		return cat_fail(to, DM_EPERM, "AccessDenied",
				"migrate reads the whole catalog (password hashes too): only the"
				" catalog's owner or root may");
	rc = count_rows(to, "accounts", &n);
	if (rc)
		return rc;
	if (n > 0)
		return cat_fail(to, DM_EEXIST, "DatabaseException",
				"the target catalog is not empty (it has %lld accounts): migrate"
				" only into a new catalog", (long long)n);
	rc = read_schema(to, &t);
	if (rc) {
		tables_free(&t);
		return rc;
	}
	/* one snapshot of the source, one transaction on the target */
	if (sqldrv_exec(from->sql, cat_is_pg(from) ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
						   : "BEGIN") != DM_OK) {
		tables_free(&t);
		return cat_fail(to, DM_EIO, "DatabaseException", "reading the source: %s",
				sqldrv_error(from->sql)->msg);
	}
	rc = cat_tx_begin(to);
	while (rc == DM_OK && (x = next_table(&t)) != NULL) {
		uint64_t rows = 0;

		rc = copy_table(from, to, x, cb, ud, &rows);
		x->done = 1;
		*total += rows;
	}
	if (rc == DM_OK && cat_is_pg(to))
		rc = move_sequences(to);
	rc = cat_tx_end(to, rc);
	sqldrv_exec(from->sql, "ROLLBACK");
	tables_free(&t);
	return rc;
}

enum dm_status cat_migrate(const char *from_uri, const char *to_uri, cat_migrate_cb cb, void *ud,
			   uint64_t *rows, struct dm_err *err)
{
	struct cat_db *from = NULL, *to = NULL;
	char shown[512];
	enum dm_status rc;
	uint64_t total = 0;

	if (rows)
		*rows = 0;
	rc = cat_open(from_uri, 0, &from, err);
	if (rc)
		return rc;
	rc = cat_open(to_uri, CAT_OPEN_CREATE, &to, err);
	if (rc) {
		cat_close(from);
		return rc;
	}
	rc = migrate(from, to, cb, ud, &total);
	if (rc && err) {
		cat_uri_shown(to_uri, shown, sizeof shown);
		dm_seterr(err, rc, cat_error(to)->cls[0] ? cat_error(to)->cls : "DatabaseException",
			  "migrating into %s: %s", shown, cat_error(to)->msg);
	}
	if (rows)
		*rows = total;
	cat_close(to);
	cat_close(from);
	return rc;
}
