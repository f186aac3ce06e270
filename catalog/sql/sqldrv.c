/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqldrv.c - the driver's front end over the backends' operations table
 * (sqldrv_i.h): hiding passwords in URIs, errors, nested transactions
 * (savepoints inside the outermost BEGIN), the retry loop, the bulk-load
 * front end and the `?N` -> `$N` placeholder rewrite.  The backends
 * (sqldrv_sqlite.c, sqldrv_pg.c) use its helpers; choosing one by URI is
 * sqldrv_open.c's, above them all.
 */
#include "sqldrv_i.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum dm_status sqldrv_fail(struct sqldrv *db, enum dm_status st, const char *cls,
			   const char *fmt, ...)
{
	va_list ap;

	db->err.code = st;
	dm_strlcpy(db->err.cls, cls ? cls : dm_status_class(st), sizeof db->err.cls);
	va_start(ap, fmt);
	vsnprintf(db->err.msg, sizeof db->err.msg, fmt, ap);
	va_end(ap);
	return st;
}

int sqldrv_damaged(const struct sqldrv *db)
{
	return db->damaged;
}

/* postgresql://user:secret@host/db?password=secret -> user:***@host/db?password=*** */
void sqldrv_redact_uri(const char *uri, char *out, size_t n)
{
	struct dm_buf b = DM_BUF_INIT;
	const char *p = strstr(uri, "://"), *auth, *end, *at, *colon, *q;

	if (!p) {
		dm_strlcpy(out, uri, n);
		return;
	}
	auth = p + 3;
	end = auth + strcspn(auth, "/?#");
	at = NULL;
	for (const char *s = auth; s < end; s++)
		if (*s == '@')
			at = s;
	dm_buf_add(&b, uri, (size_t)(auth - uri));
	if (at) {
		colon = memchr(auth, ':', (size_t)(at - auth));
		if (colon) {
			dm_buf_add(&b, auth, (size_t)(colon - auth));
			dm_buf_adds(&b, ":***");
			dm_buf_add(&b, at, (size_t)(end - at));
		} else {
			dm_buf_add(&b, auth, (size_t)(end - auth));
		}
	} else {
		dm_buf_add(&b, auth, (size_t)(end - auth));
	}
	/* the rest: path, then query parameters; hide password=... */
	q = end + strcspn(end, "?");
	dm_buf_add(&b, end, (size_t)(q - end));
	if (*q == '?') {
		dm_buf_addc(&b, *q++);
		while (*q) {
			size_t klen = strcspn(q, "&");
			if (strncmp(q, "password=", 9) == 0)
				dm_buf_adds(&b, "password=***");
			else
				dm_buf_add(&b, q, klen);
			q += klen;
			if (*q == '&')
				dm_buf_addc(&b, *q++);
		}
	}
	dm_strlcpy(out, b.s, n);
	dm_buf_release(&b);
}

void sqldrv_close(struct sqldrv *db)
{
	if (!db)
		return;
	while (db->depth > 0)
		sqldrv_rollback(db);
	free(db->uri);
	db->uri = NULL;
	db->ops->close(db);
}

enum sqldrv_dialect sqldrv_dialect(const struct sqldrv *db)
{
	return db->ops->dialect;
}

const char *sqldrv_uri(const struct sqldrv *db)
{
	return db->uri;
}

const struct dm_err *sqldrv_error(const struct sqldrv *db)
{
	return &db->err;
}

enum dm_status sqldrv_exec(struct sqldrv *db, const char *sql)
{
	return db->ops->exec(db, sql);
}

/* ---- statements: thin dispatch ---- */

struct sqldrv_stmt *sqldrv_prepare(struct sqldrv *db, const char *sql)
{
	return db->ops->prepare(db, sql);
}

void sqldrv_reset(struct sqldrv_stmt *st)
{
	st->db->ops->reset(st);
}

enum dm_status sqldrv_bind_int64(struct sqldrv_stmt *st, int idx, int64_t v)
{
	return st->db->ops->bind_int64(st, idx, v);
}

enum dm_status sqldrv_bind_double(struct sqldrv_stmt *st, int idx, double v)
{
	return st->db->ops->bind_double(st, idx, v);
}

enum dm_status sqldrv_bind_text(struct sqldrv_stmt *st, int idx, const char *s, ptrdiff_t len)
{
	if (!s)
		return st->db->ops->bind_null(st, idx);
	return st->db->ops->bind_text(st, idx, s, len < 0 ? strlen(s) : (size_t)len);
}

enum dm_status sqldrv_bind_blob(struct sqldrv_stmt *st, int idx, const void *p, size_t n)
{
	return st->db->ops->bind_blob(st, idx, p, n);
}

enum dm_status sqldrv_bind_null(struct sqldrv_stmt *st, int idx)
{
	return st->db->ops->bind_null(st, idx);
}

int sqldrv_step(struct sqldrv_stmt *st)
{
	return st->db->ops->step(st);
}

enum dm_status sqldrv_run(struct sqldrv_stmt *st)
{
	int r;

	while ((r = sqldrv_step(st)) == SQLDRV_ROW)
		;
	if (r == SQLDRV_ERROR)
		return st->db->err.code ? st->db->err.code : DM_EINTERNAL;
	return DM_OK;
}

int sqldrv_col_count(struct sqldrv_stmt *st)
{
	return st->db->ops->col_count(st);
}

int sqldrv_col_is_null(struct sqldrv_stmt *st, int col)
{
	return st->db->ops->col_is_null(st, col);
}

int64_t sqldrv_col_int64(struct sqldrv_stmt *st, int col)
{
	return st->db->ops->col_int64(st, col);
}

double sqldrv_col_double(struct sqldrv_stmt *st, int col)
{
	return st->db->ops->col_double(st, col);
}

const char *sqldrv_col_text(struct sqldrv_stmt *st, int col)
{
	return st->db->ops->col_text(st, col);
}

const void *sqldrv_col_blob(struct sqldrv_stmt *st, int col, size_t *n)
{
	return st->db->ops->col_blob(st, col, n);
}

struct sqldrv *sqldrv_stmt_db(struct sqldrv_stmt *st)
{
	return st->db;
}

int64_t sqldrv_changes(struct sqldrv *db)
{
	return db->ops->changes(db);
}

enum dm_status sqldrv_last_id(struct sqldrv *db, int64_t *id)
{
	return db->ops->last_id(db, id);
}

/* ---- transactions ---- */

static enum dm_status begin(struct sqldrv *db, int serializable)
{
	char sql[48];
	enum dm_status rc;

	if (db->depth == 0) {
		rc = db->ops->tx_begin(db, serializable);
		if (rc)
			return rc;
		db->depth = 1;
		db->tx_failed = 0;
		return DM_OK;
	}
	if (db->tx_failed)
		return sqldrv_fail(db, db->err.code ? db->err.code : DM_AGAIN, NULL,
				   "%s", db->err.msg[0] ? db->err.msg : "the transaction failed");
	snprintf(sql, sizeof sql, "SAVEPOINT sqldrv_%d", db->depth);
	rc = db->ops->exec(db, sql);
	if (rc)
		return rc;
	db->depth++;
	return DM_OK;
}

enum dm_status sqldrv_begin(struct sqldrv *db)
{
	return begin(db, 0);
}

enum dm_status sqldrv_begin_serializable(struct sqldrv *db)
{
	return begin(db, 1);
}

int sqldrv_tx_depth(const struct sqldrv *db)
{
	return db->depth;
}

enum dm_status sqldrv_commit(struct sqldrv *db)
{
	char sql[48];
	enum dm_status rc;

	if (db->depth <= 0)
		DM_BUG("sqldrv_commit without a transaction");
	if (db->depth == 1) {
		db->depth = 0;
		if (db->tx_failed) {
			struct dm_err keep = db->err;
			db->ops->tx_rollback(db);
			db->err = keep;
			db->tx_failed = 0;
			return keep.code ? keep.code : DM_AGAIN;
		}
		rc = db->ops->tx_commit(db);
		if (rc) {
			struct dm_err keep = db->err;
			db->ops->tx_rollback(db);
			db->err = keep;
		}
		return rc;
	}
	db->depth--;
	if (db->tx_failed)
		return db->err.code ? db->err.code : DM_AGAIN;
	snprintf(sql, sizeof sql, "RELEASE SAVEPOINT sqldrv_%d", db->depth);
	rc = db->ops->exec(db, sql);
	if (rc)
		db->tx_failed = 1;
	return rc;
}

enum dm_status sqldrv_rollback(struct sqldrv *db)
{
	char sql[96];
	struct dm_err keep = db->err;
	enum dm_status rc = DM_OK;

	if (db->depth <= 0)
		DM_BUG("sqldrv_rollback without a transaction");
	if (db->depth == 1) {
		db->depth = 0;
		db->tx_failed = 0;
		db->ops->tx_rollback(db);
		db->err = keep;
		return DM_OK;
	}
	db->depth--;
	if (!db->tx_failed) {
		snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT sqldrv_%d; RELEASE SAVEPOINT sqldrv_%d",
			 db->depth, db->depth);
		rc = db->ops->exec(db, sql);
		if (rc)
			db->tx_failed = 1;
		else
			db->err = keep;
	}
	return rc;
}

enum dm_status sqldrv_end(struct sqldrv *db, enum dm_status rc)
{
	if (rc == DM_OK)
		return sqldrv_commit(db);
	sqldrv_rollback(db);
	return rc;
}

static int default_retry(void *ud, int attempt, const struct dm_err *why)
{
	long ms = 20L << (attempt - 2 > 6 ? 6 : attempt - 2);
	struct timespec ts;

	if (attempt > 8)
		return 0;
	if (ms > 1000)
		ms = 1000;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	return 1;
}

void sqldrv_set_retry(struct sqldrv *db, sqldrv_retry_fn fn, void *ud)
{
	db->retry = fn;
	db->retry_ud = ud;
}

enum dm_status sqldrv_tx_run(struct sqldrv *db, sqldrv_tx_body body, void *ud)
{
	enum dm_status rc;

	for (int attempt = 1;; attempt++) {
		rc = sqldrv_begin(db);
		if (rc == DM_OK)
			rc = sqldrv_end(db, body(db, ud));
		/* only the outermost transaction can be redone */
		if (rc != DM_AGAIN || db->depth > 0)
			return rc;
		if (!(db->retry ? db->retry(db->retry_ud, attempt + 1, &db->err)
				: default_retry(NULL, attempt + 1, &db->err)))
			return rc;
		dm_log(DM_LOG_INFO, "sqldrv", "%s: redoing the transaction (attempt %d): %s",
		       db->uri, attempt + 1, db->err.msg);
	}
}

/* ---- notifications ---- */

enum dm_status sqldrv_listen(struct sqldrv *db, const char *channel)
{
	return db->ops->listen ? db->ops->listen(db, channel) : DM_OK;
}

enum dm_status sqldrv_notify(struct sqldrv *db, const char *channel, const char *payload)
{
	return db->ops->notify ? db->ops->notify(db, channel, payload ? payload : "") : DM_OK;
}

int sqldrv_wait(struct sqldrv *db, int timeout_ms, char *chan, size_t n)
{
	struct timespec ts;

	if (db->ops->wait)
		return db->ops->wait(db, timeout_ms, chan, n);
	if (timeout_ms > 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
	}
	if (n)
		chan[0] = 0;
	return 0;
}

/* ---- bulk load front end ---- */

struct sqldrv_bulk *sqldrv_bulk_begin(struct sqldrv *db, const char *table,
				      const char *const *cols, int ncols)
{
	struct sqldrv_bulk *b = dm_xcalloc(1, sizeof *b);

	b->db = db;
	b->table = dm_xstrdup(table);
	b->ncols = ncols;
	b->cols = dm_xcalloc((size_t)ncols, sizeof *b->cols);
	for (int i = 0; i < ncols; i++)
		b->cols[i] = dm_xstrdup(cols[i]);
	b->rc = sqldrv_begin(db);
	if (b->rc == DM_OK) {
		b->rc = db->ops->bulk_begin(b);
		if (b->rc) {
			struct dm_err keep = db->err;
			db->ops->bulk_end(b, b->rc); /* frees what the backend set up */
			sqldrv_rollback(db);
			db->err = keep;
			b->rc = keep.code ? keep.code : DM_EINTERNAL;
			b->db = NULL; /* the transaction is gone */
		}
	} else {
		b->db = NULL;
	}
	if (!b->db)
		b->impl = db; /* keep the handle for the error */
	return b;
}

static void bulk_value(struct sqldrv_bulk *b, int type, int64_t i, double d, const void *p,
		       size_t n)
{
	if (b->rc)
		return;
	if (b->col >= b->ncols) {
		b->rc = sqldrv_fail(b->db, DM_EINVAL, "DatabaseException",
				    "bulk load into %s: more values than its %d columns",
				    b->table, b->ncols);
		return;
	}
	b->db->ops->bulk_value(b, type, i, d, p, n);
	b->col++;
}

void sqldrv_bulk_int64(struct sqldrv_bulk *b, int64_t v)
{
	bulk_value(b, SQLDRV_T_INT, v, 0, NULL, 0);
}

void sqldrv_bulk_double(struct sqldrv_bulk *b, double v)
{
	bulk_value(b, SQLDRV_T_DOUBLE, 0, v, NULL, 0);
}

void sqldrv_bulk_text(struct sqldrv_bulk *b, const char *s, ptrdiff_t len)
{
	if (!s)
		bulk_value(b, SQLDRV_T_NULL, 0, 0, NULL, 0);
	else
		bulk_value(b, SQLDRV_T_TEXT, 0, 0, s, len < 0 ? strlen(s) : (size_t)len);
}

void sqldrv_bulk_blob(struct sqldrv_bulk *b, const void *p, size_t n)
{
	bulk_value(b, SQLDRV_T_BLOB, 0, 0, p, n);
}

void sqldrv_bulk_null(struct sqldrv_bulk *b)
{
	bulk_value(b, SQLDRV_T_NULL, 0, 0, NULL, 0);
}

enum dm_status sqldrv_bulk_row(struct sqldrv_bulk *b)
{
	if (b->rc)
		return b->rc;
	if (b->col != b->ncols)
		return b->rc = sqldrv_fail(b->db, DM_EINVAL, "DatabaseException",
					   "bulk load into %s: a row has %d values for %d columns",
					   b->table, b->col, b->ncols);
	b->rc = b->db->ops->bulk_row(b);
	b->col = 0;
	if (b->rc == DM_OK)
		b->rows++;
	return b->rc;
}

enum dm_status sqldrv_bulk_end(struct sqldrv_bulk *b, enum dm_status rc)
{
	struct sqldrv *db = b->db;

	if (!db) {
		rc = b->rc;
	} else {
		if (rc == DM_OK && b->rc)
			rc = b->rc;
		if (rc == DM_OK && b->col != 0)
			rc = sqldrv_fail(db, DM_EINVAL, "DatabaseException",
					 "bulk load into %s: the last row is incomplete", b->table);
		rc = db->ops->bulk_end(b, rc);
		rc = sqldrv_end(db, rc);
	}
	for (int i = 0; i < b->ncols; i++)
		free(b->cols[i]);
	free(b->cols);
	free(b->table);
	free(b);
	return rc;
}

/* ---- placeholders ---- */

char *sqldrv_pg_placeholders(const char *sql, int *nparams)
{
	struct dm_buf b = DM_BUF_INIT;
	const char *p = sql;
	int maxn = 0;

	while (*p) {
		char c = *p;

		if (c == '\'' || c == '"') {
			/* literal or quoted identifier; a doubled quote stays inside */
			const char *q = p + 1;
			for (;;) {
				if (!*q)
					break;
				if (*q == c) {
					if (q[1] == c) {
						q += 2;
						continue;
					}
					q++;
					break;
				}
				q++;
			}
			dm_buf_add(&b, p, (size_t)(q - p));
			p = q;
		} else if (c == '-' && p[1] == '-') {
			size_t n = strcspn(p, "\n");
			dm_buf_add(&b, p, n);
			p += n;
		} else if (c == '/' && p[1] == '*') {
			const char *q = strstr(p + 2, "*/");
			size_t n = q ? (size_t)(q + 2 - p) : strlen(p);
			dm_buf_add(&b, p, n);
			p += n;
		} else if (c == '?') {
			int n = 0;
			p++;
			if (*p >= '0' && *p <= '9') {
				while (*p >= '0' && *p <= '9' && n < 100000)
					n = n * 10 + (*p++ - '0');
			} else {
				n = maxn + 1;
			}
			if (n > maxn)
				maxn = n;
			dm_buf_addf(&b, "$%d", n);
		} else {
			dm_buf_addc(&b, c);
			p++;
		}
	}
	if (nparams)
		*nparams = maxn;
	return b.alloc ? dm_buf_detach(&b) : dm_xstrdup(b.s);
}
