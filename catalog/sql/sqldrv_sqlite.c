/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqldrv_sqlite.c - the SQLite backend of sqldrv.h: a file in WAL mode with
 * synchronous=NORMAL, foreign keys on, a busy timeout ($DIDFS_BUSY_TIMEOUT
 * seconds, default 30) after which a writer gets DM_AGAIN, a statement
 * cache keyed by the SQL text, didfs_hash() (FNV-1a, as catalog/store.c and
 * schema_pg.sql define it), and bulk loads as a prepared INSERT loop.
 */
#include "sqldrv_i.h"
#include "dmcheck.h"

#include <ctype.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* statements cached per handle; more while that many are stepping at once */
#define SQ_CACHE 128

struct sq_stmt {
	struct sqldrv_stmt base;
	sqlite3_stmt *st;
	char *sql;
	uint64_t hash;
	uint64_t used;   /* LRU clock */
	int active;      /* stepped and not yet reset / done */
};

struct sq_db {
	struct sqldrv base;
	sqlite3 *db;
	int busy_ms;
	int bulk_last;       /* the last statement was a bulk load of bulk_rows */
	int64_t bulk_rows;
	uint64_t clock;
	int ncache, capcache;
	struct sq_stmt **cache;
};

static const struct sqldrv_ops sq_ops;

static struct sq_db *SQ(struct sqldrv *db)
{
	return (struct sq_db *)db;
}

static struct sq_stmt *SQS(struct sqldrv_stmt *st)
{
	return (struct sq_stmt *)st;
}

static enum dm_status sq_err(struct sq_db *d, const char *what)
{
	int ext = sqlite3_extended_errcode(d->db), code = ext & 0xff;
	const char *msg = sqlite3_errmsg(d->db);

	switch (code) {
	case SQLITE_CONSTRAINT:
		if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
			return sqldrv_fail(&d->base, DM_EEXIST, "Duplicate", "%s: %s", what, msg);
		return sqldrv_fail(&d->base, DM_EINVAL, "DatabaseException", "%s: %s", what, msg);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return sqldrv_fail(&d->base, DM_AGAIN, "DatabaseException",
				   "%s: the catalog is busy: another writer held %s for more"
				   " than %d s (the busy timeout: --busy-timeout or $DIDFS_BUSY_TIMEOUT); try again",
				   what, d->base.uri, d->busy_ms / 1000);
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		d->base.damaged = 1;
		return sqldrv_fail(&d->base, DM_EIO, "DatabaseException",
				   "%s: the catalog file %s is damaged (%s)", what, d->base.uri, msg);
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
		return sqldrv_fail(&d->base, DM_EIO, "DatabaseException", "%s: %s: %s", what,
				   d->base.uri, msg);
	case SQLITE_NOMEM:
		return sqldrv_fail(&d->base, DM_ENOMEM, "DatabaseException", "%s: %s", what, msg);
	case SQLITE_RANGE:
	case SQLITE_MISMATCH:
	case SQLITE_TOOBIG:
		return sqldrv_fail(&d->base, DM_EINVAL, "DatabaseException", "%s: %s", what, msg);
	default:
		return sqldrv_fail(&d->base, DM_EINTERNAL, "DatabaseException", "%s: %s", what, msg);
	}
}

static void sql_hash(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	sqlite3_result_int64(ctx, (sqlite3_int64)dm_fnv1a((const char *)sqlite3_value_text(argv[0])));
}

static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void)
{
	/* No global memory statistics: they take a global mutex per malloc. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* A WAL file can be read without write access only while its -wal and -shm
 * files exist, or where they can be created.  Where neither holds (a reader
 * of another user's catalog in a directory it cannot write, with no writer
 * running: the -wal file is removed by the last connection, so there is
 * nothing uncheckpointed), open it immutable: SQLite reads the file as it
 * is, without the shared-memory index. */
static void readonly_fallback(struct sq_db *d, const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	struct dm_buf uri = DM_BUF_INIT;
	sqlite3 *alt = NULL;
	int rc = sqlite3_exec(d->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);

	if (rc == SQLITE_OK || ((rc & 0xff) != SQLITE_READONLY && (rc & 0xff) != SQLITE_CANTOPEN))
		return;
	dm_buf_adds(&uri, "file:");
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (isalnum(*p) || strchr("/-._~", *p)) {
			dm_buf_addc(&uri, (char)*p);
		} else {
			dm_buf_addc(&uri, '%');
			dm_buf_addc(&uri, hex[*p >> 4]);
			dm_buf_addc(&uri, hex[*p & 15]);
		}
	}
	dm_buf_adds(&uri, "?immutable=1");
	if (sqlite3_open_v2(uri.s, &alt, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
			    NULL) == SQLITE_OK) {
		sqlite3_close(d->db);
		d->db = alt;
	} else {
		sqlite3_close(alt);
	}
	dm_buf_release(&uri);
}

enum dm_status sqldrv_sqlite_open(const char *path, const char *shown, unsigned flags,
				  struct sqldrv **out, struct dm_err *err)
{
	struct sq_db *d = dm_xcalloc(1, sizeof *d);
	int of = SQLITE_OPEN_NOMUTEX;
	enum dm_status rc;

	pthread_once(&sqlite_once, sqlite_setup);
	d->base.ops = &sq_ops;
	d->base.uri = dm_xstrdup(shown);
	if (flags & SQLDRV_OPEN_READONLY)
		of |= SQLITE_OPEN_READONLY;
	else
		of |= SQLITE_OPEN_READWRITE | ((flags & SQLDRV_OPEN_CREATE) ? SQLITE_OPEN_CREATE : 0);
	if (sqlite3_open_v2(path, &d->db, of, NULL) != SQLITE_OK) {
		dm_seterr(err, DM_ENOENT, "DatabaseException", "cannot open the catalog '%s': %s",
			  shown, d->db ? sqlite3_errmsg(d->db) : "out of memory");
		sqlite3_close(d->db);
		free(d->base.uri);
		free(d);
		return DM_ENOENT;
	}
	if (flags & SQLDRV_OPEN_READONLY)
		readonly_fallback(d, path);
	sqlite3_extended_result_codes(d->db, 1);
	d->busy_ms = dm_busy_timeout_s() * 1000;
	sqlite3_busy_timeout(d->db, d->busy_ms);
	sqlite3_create_function(d->db, "didfs_hash", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				sql_hash, NULL, NULL);
	rc = sq_ops.exec(&d->base, "PRAGMA foreign_keys=ON");
	if (rc == DM_OK && !(flags & SQLDRV_OPEN_READONLY))
		rc = sq_ops.exec(&d->base, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
	if (rc) {
		if (err)
			*err = d->base.err;
		sq_ops.close(&d->base);
		return rc;
	}
	*out = &d->base;
	return DM_OK;
}

static void sq_close(struct sqldrv *db)
{
	struct sq_db *d = SQ(db);

	for (int i = 0; i < d->ncache; i++) {
		sqlite3_finalize(d->cache[i]->st);
		free(d->cache[i]->sql);
		free(d->cache[i]);
	}
	free(d->cache);
	sqlite3_close(d->db);
	free(d->base.uri);
	free(d);
}

static enum dm_status sq_exec(struct sqldrv *db, const char *sql)
{
	struct sq_db *d = SQ(db);

	d->bulk_last = 0;
	if (sqlite3_exec(d->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return sq_err(d, "running a statement");
	return DM_OK;
}

static uint64_t fnv64(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct sqldrv_stmt *sq_prepare(struct sqldrv *db, const char *sql)
{
	struct sq_db *d = SQ(db);
	uint64_t h = fnv64(sql);
	struct sq_stmt *s;
	sqlite3_stmt *st = NULL;
	int victim = -1;

	for (int i = 0; i < d->ncache; i++) {
		s = d->cache[i];
		if (s->hash == h && strcmp(s->sql, sql) == 0) {
			sqlite3_reset(s->st);
			sqlite3_clear_bindings(s->st);
			s->active = 0;
			s->used = ++d->clock;
			return &s->base;
		}
	}
	if (sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		sq_err(d, "preparing a statement");
		return NULL;
	}
	s = dm_xcalloc(1, sizeof *s);
	s->base.db = db;
	s->st = st;
	s->sql = dm_xstrdup(sql);
	s->hash = h;
	s->used = ++d->clock;
	if (d->ncache >= SQ_CACHE) {
		/* evict the least recently used statement that is not in use */
		for (int i = 0; i < d->ncache; i++)
			if (!d->cache[i]->active &&
			    (victim < 0 || d->cache[i]->used < d->cache[victim]->used))
				victim = i;
	}
	if (victim < 0) {
		/* room left, or every statement is stepping: the cache grows */
		if (d->ncache == d->capcache) {
			d->capcache = d->capcache ? 2 * d->capcache : SQ_CACHE;
			d->cache = dm_xrealloc(d->cache, (size_t)d->capcache * sizeof *d->cache);
		}
		d->cache[d->ncache++] = s;
		return &s->base;
	}
	sqlite3_finalize(d->cache[victim]->st);
	free(d->cache[victim]->sql);
	free(d->cache[victim]);
	d->cache[victim] = s;
	return &s->base;
}

static void sq_reset(struct sqldrv_stmt *st)
{
	sqlite3_reset(SQS(st)->st); /* bindings stay, as SQLite's reset keeps them */
	SQS(st)->active = 0;
}

static enum dm_status sq_bind_rc(struct sqldrv_stmt *st, int r)
{
	if (r == SQLITE_OK)
		return DM_OK;
	return sq_err(SQ(st->db), "binding a parameter");
}

static enum dm_status sq_bind_int64(struct sqldrv_stmt *st, int idx, int64_t v)
{
	return sq_bind_rc(st, sqlite3_bind_int64(SQS(st)->st, idx, v));
}

static enum dm_status sq_bind_double(struct sqldrv_stmt *st, int idx, double v)
{
	return sq_bind_rc(st, sqlite3_bind_double(SQS(st)->st, idx, v));
}

static enum dm_status sq_bind_text(struct sqldrv_stmt *st, int idx, const char *s, size_t len)
{
	return sq_bind_rc(st, sqlite3_bind_text64(SQS(st)->st, idx, s, len, SQLITE_TRANSIENT,
						   SQLITE_UTF8));
}

static enum dm_status sq_bind_blob(struct sqldrv_stmt *st, int idx, const void *p, size_t n)
{
	/* an empty blob is a blob, not NULL */
	return sq_bind_rc(st, sqlite3_bind_blob64(SQS(st)->st, idx, n ? p : "", n,
						   SQLITE_TRANSIENT));
}

static enum dm_status sq_bind_null(struct sqldrv_stmt *st, int idx)
{
	return sq_bind_rc(st, sqlite3_bind_null(SQS(st)->st, idx));
}

static int sq_step(struct sqldrv_stmt *st)
{
	struct sq_stmt *s = SQS(st);
	int r;

	SQ(st->db)->bulk_last = 0;
	r = sqlite3_step(s->st);

	if (r == SQLITE_ROW) {
		s->active = 1;
		return SQLDRV_ROW;
	}
	s->active = 0;
	if (r == SQLITE_DONE) {
		sqlite3_reset(s->st);
		return SQLDRV_DONE;
	}
	sq_err(SQ(st->db), "running a statement");
	sqlite3_reset(s->st);
	return SQLDRV_ERROR;
}

static int sq_col_count(struct sqldrv_stmt *st)
{
	return sqlite3_column_count(SQS(st)->st);
}

static int sq_col_is_null(struct sqldrv_stmt *st, int col)
{
	return sqlite3_column_type(SQS(st)->st, col) == SQLITE_NULL;
}

static int64_t sq_col_int64(struct sqldrv_stmt *st, int col)
{
	return sqlite3_column_int64(SQS(st)->st, col);
}

static double sq_col_double(struct sqldrv_stmt *st, int col)
{
	return sqlite3_column_double(SQS(st)->st, col);
}

static const char *sq_col_text(struct sqldrv_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(SQS(st)->st, col);
}

static const void *sq_col_blob(struct sqldrv_stmt *st, int col, size_t *n)
{
	const void *p = sqlite3_column_blob(SQS(st)->st, col);

	*n = (size_t)sqlite3_column_bytes(SQS(st)->st, col);
	if (!p)
		*n = 0;
	return *n ? p : NULL;
}

static int64_t sq_changes(struct sqldrv *db)
{
	return SQ(db)->bulk_last ? SQ(db)->bulk_rows : sqlite3_changes64(SQ(db)->db);
}

static enum dm_status sq_last_id(struct sqldrv *db, int64_t *id)
{
	*id = sqlite3_last_insert_rowid(SQ(db)->db);
	return DM_OK;
}

static enum dm_status sq_tx_begin(struct sqldrv *db, int serializable)
{
	/* SQLite's writers are serialized anyway */
	if (sqlite3_exec(SQ(db)->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sq_err(SQ(db), "starting a transaction");
	return DM_OK;
}

static enum dm_status sq_tx_commit(struct sqldrv *db)
{
	if (sqlite3_exec(SQ(db)->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return sq_err(SQ(db), "committing");
	return DM_OK;
}

static void sq_tx_rollback(struct sqldrv *db)
{
	if (sqlite3_get_autocommit(SQ(db)->db) == 0)
		sqlite3_exec(SQ(db)->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- bulk: a prepared INSERT, stepped once per row ---- */

struct sq_bulk {
	sqlite3_stmt *st;
	int64_t rows;
};

static enum dm_status sq_bulk_begin(struct sqldrv_bulk *b)
{
	struct sq_db *d = SQ(b->db);
	struct sq_bulk *q = dm_xcalloc(1, sizeof *q);
	struct dm_buf sql = DM_BUF_INIT;
	int r;

	dm_buf_addf(&sql, "INSERT INTO %s(", b->table);
	for (int i = 0; i < b->ncols; i++)
		dm_buf_addf(&sql, "%s%s", i ? "," : "", b->cols[i]);
	dm_buf_adds(&sql, ") VALUES(");
	for (int i = 0; i < b->ncols; i++)
		dm_buf_adds(&sql, i ? ",?" : "?");
	dm_buf_adds(&sql, ")");
	r = sqlite3_prepare_v2(d->db, sql.s, -1, &q->st, NULL);
	dm_buf_release(&sql);
	b->impl = q;
	if (r != SQLITE_OK)
		return sq_err(d, "preparing a bulk load");
	return DM_OK;
}

static void sq_bulk_value(struct sqldrv_bulk *b, int type, int64_t i, double dv,
			  const void *p, size_t n)
{
	struct sq_bulk *q = b->impl;
	int idx = b->col + 1, r;

	switch (type) {
	case SQLDRV_T_INT:
		r = sqlite3_bind_int64(q->st, idx, i);
		break;
	case SQLDRV_T_DOUBLE:
		r = sqlite3_bind_double(q->st, idx, dv);
		break;
	case SQLDRV_T_TEXT:
		r = sqlite3_bind_text64(q->st, idx, p, n, SQLITE_TRANSIENT, SQLITE_UTF8);
		break;
	case SQLDRV_T_BLOB:
		r = sqlite3_bind_blob64(q->st, idx, n ? p : "", n, SQLITE_TRANSIENT);
		break;
	default:
		r = sqlite3_bind_null(q->st, idx);
	}
	if (r != SQLITE_OK)
		b->rc = sq_err(SQ(b->db), "bulk load: binding a value");
}

static enum dm_status sq_bulk_row(struct sqldrv_bulk *b)
{
	struct sq_bulk *q = b->impl;
	int r = sqlite3_step(q->st);

	sqlite3_reset(q->st);
	if (r != SQLITE_DONE) {
		char what[160];
		snprintf(what, sizeof what, "bulk load into %s, row %lld", b->table,
			 (long long)b->rows + 1);
		return sq_err(SQ(b->db), what);
	}
	q->rows++;
	return DM_OK;
}

static enum dm_status sq_bulk_end(struct sqldrv_bulk *b, enum dm_status rc)
{
	struct sq_bulk *q = b->impl;

	if (q) {
		if (rc == DM_OK) {
			SQ(b->db)->bulk_last = 1;
			SQ(b->db)->bulk_rows = q->rows;
		}
		sqlite3_finalize(q->st);
		free(q);
		b->impl = NULL;
	}
	return rc;
}

static const struct sqldrv_ops sq_ops = {
	.dialect = SQLDRV_SQLITE,
	.close = sq_close,
	.exec = sq_exec,
	.prepare = sq_prepare,
	.reset = sq_reset,
	.bind_int64 = sq_bind_int64,
	.bind_double = sq_bind_double,
	.bind_text = sq_bind_text,
	.bind_blob = sq_bind_blob,
	.bind_null = sq_bind_null,
	.step = sq_step,
	.col_count = sq_col_count,
	.col_is_null = sq_col_is_null,
	.col_int64 = sq_col_int64,
	.col_double = sq_col_double,
	.col_text = sq_col_text,
	.col_blob = sq_col_blob,
	.changes = sq_changes,
	.last_id = sq_last_id,
	.tx_begin = sq_tx_begin,
	.tx_commit = sq_tx_commit,
	.tx_rollback = sq_tx_rollback,
	.bulk_begin = sq_bulk_begin,
	.bulk_value = sq_bulk_value,
	.bulk_row = sq_bulk_row,
	.bulk_end = sq_bulk_end,
};
