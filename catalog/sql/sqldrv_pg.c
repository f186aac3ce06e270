/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqldrv_pg.c - the PostgreSQL backend of sqldrv.h over libpq.
 *
 * One connection per handle (application_name=didfs, client_encoding UTF8,
 * connect_timeout 10 s unless the URI says otherwise).  Statements are
 * rewritten to `$N` placeholders and prepared server-side once per
 * connection (named sqldrv_N; the cache keeps 128 per handle and
 * DEALLOCATEs what it evicts), with the parameters' types left to the
 * server or, where it cannot infer them, taken from the values bound
 * (prepare_stmt).  Parameters go as text, blobs in binary;
 * results come as text in single-row mode, so a large result streams.  A
 * statement that needs the connection while another still streams makes
 * the driver read the rest of the first one into memory (drain_active).
 *
 * Connection loss (the server restarted: SQLSTATE 57P01 or class 08, or
 * libpq reports the connection bad): outside a transaction the handle
 * reconnects (PQreset, a few tries over ~6 s) and the statement is run
 * again once, when it had returned no row yet; inside a transaction the
 * transaction is marked lost, every statement up to the outermost
 * rollback/commit fails with DM_AGAIN and the caller redoes the whole
 * transaction (sqldrv_tx_run), reconnecting at its next BEGIN.  A COMMIT
 * whose reply is lost without the server's termination notice fails with
 * DM_EIO: its outcome is unknown.
 *
 * Row-lock waits end after $DIDFS_BUSY_TIMEOUT seconds (lock_timeout,
 * default 30) with DM_AGAIN, like SQLite's busy timeout.
 *
 * SQLSTATEs map to didfs statuses: 23505 -> DM_EEXIST "Duplicate", other
 * class 23 -> DM_EINVAL, 40001/40P01/55P03 -> DM_AGAIN, 57014 ->
 * DM_ETIMEDOUT, 28xxx -> DM_EPERM "CannotAuthenticate", 3D000 -> DM_ENOENT,
 * 53xxx -> DM_EIO, the rest DM_EINTERNAL, each with the server's message.
 *
 * Bulk loads are COPY table(cols) FROM STDIN in text format, sent in 256 KiB
 * chunks.  Notifications are LISTEN/NOTIFY; the channels are listened to
 * again after a reconnection, and the next wait reports a possible miss.
 */
#include "sqldrv_i.h"
#include "dmcheck.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PG_CACHE 128
#define BYTEAOID 17
#define BOOLOID 16
#define INT8OID 20
#define TEXTOID 25
#define FLOAT8OID 701
#define COPY_CHUNK (256 * 1024)

enum { ST_IDLE, ST_STREAMING, ST_BUFFERED };

struct pg_stmt {
	struct sqldrv_stmt base;
	char *sql;             /* as given (the cache key) */
	char *pgsql;           /* with $N placeholders */
	uint64_t hash;
	uint64_t used;
	char name[24];
	unsigned prepared_gen; /* connection generation it was prepared on; 0 = never */
	int nparams;
	char **vals;           /* owned copies; NULL = SQL NULL */
	int *lens;
	int *fmts;
	Oid *btypes;           /* the type of each value bound (0 = NULL) */
	Oid *types;            /* declared at PREPARE when `typed` */
	int typed;
	int insert, returning;
	int readonly;          /* a SELECT: safe to run again after any loss */
	int state;
	int rows;              /* rows returned by this execution */
	PGresult *row;         /* the current row: a single-row result, or row rowi of buf */
	int rowi;
	int row_owned;         /* row is a single-row result of its own (PQclear it) */
	PGresult *buf;         /* drained rows, copied into one result (compact) */
	int bufpos;            /* the next of them to step to */
	PGresult **queue;      /* drained results after those rows (the end, an error) */
	size_t qhead, qlen, qcap;
	unsigned char **blobs; /* decoded bytea columns of the current row */
	size_t *bloblens;
	int nblobs;
};

struct pg_db {
	struct sqldrv base;
	PGconn *conn;
	unsigned gen;          /* bumped at every (re)connection */
	int busy_s;            /* lock_timeout, from $DIDFS_BUSY_TIMEOUT */
	uint64_t clock;
	int ncache, capcache;
	struct pg_stmt **cache;
	struct pg_stmt *active; /* streaming on the connection */
	int64_t changes;
	char **channels;        /* LISTENed to; again after a reconnection */
	int nchannels;
	int missed;             /* reconnected: notifications may be lost */
	int64_t last_id;
	int last_id_valid;
	unsigned next_name;
};

static const struct sqldrv_ops pg_ops;

static struct pg_db *PG(struct sqldrv *db)
{
	return (struct pg_db *)db;
}

static struct pg_stmt *PGS(struct sqldrv_stmt *st)
{
	return (struct pg_stmt *)st;
}

/* libpq's messages end in a newline and may span lines: one line. */
static void one_line(const char *in, char *out, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; in && in[i] && j + 1 < n; i++) {
		char c = in[i];
		if (c == '\n' || c == '\r' || c == '\t') {
			if (in[i + 1] == 0)
				break;
			c = ' ';
			if (j > 0 && out[j - 1] == ' ')
				continue;
		}
		out[j++] = c;
	}
	while (j > 0 && out[j - 1] == ' ')
		j--;
	out[j] = 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int sqlstate_is(const char *s, const char *want)
{
	return s && strncmp(s, want, strlen(want)) == 0;
}

static int lost_state(const char *sqlstate)
{
	return sqlstate_is(sqlstate, "08") || sqlstate_is(sqlstate, "57P01") ||
	       sqlstate_is(sqlstate, "57P02") || sqlstate_is(sqlstate, "57P03");
}

/* Connection-level failure (after connect): is the connection gone? */
static int conn_lost(struct pg_db *d, const PGresult *res)
{
	const char *ss = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return PQstatus(d->conn) == CONNECTION_BAD || lost_state(ss);
}

/* Map a failed result (or, res NULL, the connection's error) to a status. */
static enum dm_status pg_err(struct pg_db *d, const PGresult *res, const char *what)
{
	const char *ss = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *prim = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	char msg[700];

	if (prim)
		snprintf(msg, sizeof msg, "%s%s%s", prim, detail ? " (" : "", detail ? detail : "");
	else
		one_line(PQerrorMessage(d->conn), msg, sizeof msg);
	if (detail && prim && strlen(msg) + 2 < sizeof msg)
		strcat(msg, ")");
	if (conn_lost(d, res)) {
		if (d->base.depth > 0) {
			d->base.tx_failed = 1;
			return sqldrv_fail(&d->base, DM_AGAIN, "DatabaseException",
					   "%s: the connection to the catalog %s was lost inside a"
					   " transaction (%s); the transaction was rolled back: redo it",
					   what, d->base.uri, msg);
		}
		return sqldrv_fail(&d->base, DM_EIO, "DatabaseException",
				   "%s: the connection to the catalog %s was lost (%s)", what,
				   d->base.uri, msg);
	}
	if (sqlstate_is(ss, "23505"))
		return sqldrv_fail(&d->base, DM_EEXIST, "Duplicate", "%s: %s", what, msg);
	if (sqlstate_is(ss, "23"))
		return sqldrv_fail(&d->base, DM_EINVAL, "DatabaseException", "%s: %s", what, msg);
	if (sqlstate_is(ss, "55P03"))
		return sqldrv_fail(&d->base, DM_AGAIN, "DatabaseException",
				   "%s: the catalog %s is busy: another transaction held the rows"
				   " for more than %d s (the busy timeout: --busy-timeout or"
				   " $DIDFS_BUSY_TIMEOUT); try again", what, d->base.uri, d->busy_s);
	if (sqlstate_is(ss, "40001") || sqlstate_is(ss, "40P01"))
		return sqldrv_fail(&d->base, DM_AGAIN, "DatabaseException",
				   "%s: %s (the transaction can be redone)", what, msg);
	if (sqlstate_is(ss, "57014"))
		return sqldrv_fail(&d->base, DM_ETIMEDOUT, "DatabaseException", "%s: %s", what, msg);
	if (sqlstate_is(ss, "28"))
		return sqldrv_fail(&d->base, DM_EPERM, "CannotAuthenticate", "%s: %s", what, msg);
	if (sqlstate_is(ss, "3D000"))
		return sqldrv_fail(&d->base, DM_ENOENT, "DatabaseException", "%s: %s", what, msg);
	if (sqlstate_is(ss, "53") || sqlstate_is(ss, "58"))
		return sqldrv_fail(&d->base, DM_EIO, "DatabaseException", "%s: %s", what, msg);
	if (sqlstate_is(ss, "22"))
		return sqldrv_fail(&d->base, DM_EINVAL, "DatabaseException", "%s: %s", what, msg);
	return sqldrv_fail(&d->base, DM_EINTERNAL, "DatabaseException", "%s: %s", what, msg);
}

/* The server's NOTICEs ("table does not exist, skipping") are for
 * debugging, not for the user's terminal. */
static void on_notice(void *ud, const char *msg)
{
	char line[700];

	one_line(msg, line, sizeof line);
	dm_log(DM_LOG_DEBUG, "sqldrv", "%s: %s", (const char *)ud, line);
}

/* $DIDFS_BUSY_TIMEOUT (seconds, 0..3600, default 30), as for SQLite: how
 * long a statement waits for another transaction's row locks before it
 * fails with DM_AGAIN (lock_timeout; 0 = do not wait). */
static void session_setup(struct pg_db *d)
{
	char sql[64];

	PQsetClientEncoding(d->conn, "UTF8");
	PQsetNoticeProcessor(d->conn, on_notice, d->base.uri);
	d->busy_s = dm_busy_timeout_s();
	/* lock_timeout 0 would mean "wait forever": 1 ms is "do not wait" */
	snprintf(sql, sizeof sql, "SET lock_timeout = '%dms'", d->busy_s ? d->busy_s * 1000 : 1);
	PQclear(PQexec(d->conn, sql));
	d->gen++;
	if (d->gen == 0)
		d->gen = 1;
	d->active = NULL;
}

/* ---- opening ---- */

static enum dm_status connect_error(PGconn *c, const char *shown, struct dm_err *err)
{
	char msg[700];
	const char *m = PQerrorMessage(c);

	one_line(m, msg, sizeof msg);
	if (strstr(m, "authentication failed") || strstr(m, "no password supplied") ||
	    strstr(m, "password is required") || strstr(m, "no pg_hba.conf entry") ||
	    (c && PQconnectionNeedsPassword(c)))
		return dm_seterr(err, DM_EPERM, "CannotAuthenticate",
				 "cannot log in to the catalog '%s': %s", shown, msg);
	if (strstr(m, "does not exist"))
		return dm_seterr(err, DM_ENOENT, "DatabaseException",
				 "cannot open the catalog '%s': %s", shown, msg);
	if (strstr(m, "invalid") || strstr(m, "missing") || strstr(m, "unexpected"))
		return dm_seterr(err, DM_EINVAL, "DatabaseException",
				 "cannot open the catalog '%s': %s", shown, msg);
	return dm_seterr(err, DM_EIO, "DatabaseException",
			 "cannot connect to the catalog '%s': %s", shown, msg);
}

enum dm_status sqldrv_pg_open(const char *uri, const char *shown, unsigned flags,
			      struct sqldrv **out, struct dm_err *err)
{
	/* later keywords override earlier ones: the URI's own settings win */
	const char *const keys[] = { "application_name", "client_encoding", "connect_timeout",
				     "dbname", NULL };
	const char *const vals[] = { "didfs", "UTF8", "10", uri, NULL };
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(uri, &perr);
	struct pg_db *d;
	PGconn *c;

	if (!opts) {
		char msg[512];
		one_line(perr ? perr : "cannot parse it", msg, sizeof msg);
		PQfreemem(perr);
		return dm_seterr(err, DM_EINVAL, "DatabaseException",
				 "the catalog URI '%s' is not a valid PostgreSQL URI: %s", shown, msg);
	}
	PQconninfoFree(opts);
	c = PQconnectdbParams(keys, vals, 1);
	if (!c)
		return dm_seterr(err, DM_ENOMEM, "DatabaseException",
				 "cannot connect to the catalog '%s': out of memory", shown);
	if (PQstatus(c) != CONNECTION_OK) {
		enum dm_status rc = connect_error(c, shown, err);
		PQfinish(c);
		return rc;
	}
	d = dm_xcalloc(1, sizeof *d);
	d->base.ops = &pg_ops;
	d->base.uri = dm_xstrdup(shown);
	d->conn = c;
	session_setup(d);
	*out = &d->base;
	return DM_OK;
}

static int listen_cmd(struct pg_db *d, const char *channel)
{
	char *id = PQescapeIdentifier(d->conn, channel, strlen(channel));
	struct dm_buf sql = DM_BUF_INIT;
	PGresult *r;
	int ok;

	if (!id)
		return 0;
	dm_buf_addf(&sql, "LISTEN %s", id);
	PQfreemem(id);
	r = PQexec(d->conn, sql.s);
	dm_buf_release(&sql);
	ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	return ok;
}

static void relisten(struct pg_db *d)
{
	for (int i = 0; i < d->nchannels; i++)
		if (!listen_cmd(d, d->channels[i]))
			dm_log(DM_LOG_WARN, "sqldrv", "%s: LISTEN %s again after reconnecting: %s",
			       d->base.uri, d->channels[i], PQerrorMessage(d->conn));
	if (d->nchannels)
		d->missed = 1;
}

/* Reconnect after a loss (outside a transaction). */
static enum dm_status reconnect(struct pg_db *d)
{
	static const long wait_ms[] = { 0, 100, 200, 400, 800, 1600, 3200 };
	char msg[700];

	for (size_t i = 0; i < DM_ARRAY_SIZE(wait_ms); i++) {
		if (wait_ms[i])
			sleep_ms(wait_ms[i]);
		PQreset(d->conn);
		if (PQstatus(d->conn) == CONNECTION_OK) {
			session_setup(d);
			relisten(d);
			dm_log(DM_LOG_INFO, "sqldrv", "reconnected to the catalog %s", d->base.uri);
			return DM_OK;
		}
	}
	one_line(PQerrorMessage(d->conn), msg, sizeof msg);
	return sqldrv_fail(&d->base, DM_EIO, "DatabaseException",
			   "cannot reconnect to the catalog '%s': %s", d->base.uri, msg);
}

/* Before using the connection: outside a transaction, a dead connection is
 * replaced; inside a lost one, nothing runs. */
static enum dm_status ready(struct pg_db *d);

static void stmt_clear_results(struct pg_stmt *s)
{
	for (int i = 0; i < s->nblobs; i++) {
		PQfreemem(s->blobs[i]);
		s->blobs[i] = NULL;
	}
	if (s->row && s->row_owned)
		PQclear(s->row);
	s->row = NULL;
	s->rowi = 0;
}

static void queue_push(struct pg_stmt *s, PGresult *r)
{
	if (s->qlen == s->qcap) {
		s->qcap = s->qcap ? s->qcap * 2 : 16;
		s->queue = dm_xrealloc(s->queue, s->qcap * sizeof *s->queue);
	}
	s->queue[s->qlen++] = r;
}

static void queue_clear(struct pg_stmt *s)
{
	while (s->qhead < s->qlen)
		PQclear(s->queue[s->qhead++]);
	s->qhead = s->qlen = 0;
	if (s->row && !s->row_owned)
		s->row = NULL; /* a row of buf */
	PQclear(s->buf);
	s->buf = NULL;
	s->bufpos = 0;
}

/* Keep a single-row result's row in the statement's buffer of drained rows
 * (a few dozen bytes a row, where a result of its own costs kilobytes);
 * 0, or -1 when it must be queued as it is. */
static int buffer_row(struct pg_stmt *s, PGresult *r)
{
	int t, nf = PQnfields(r);

	if (s->qlen || nf == 0)
		return -1; /* keep the order: rows after a queued result stay queued */
	if (!s->buf && !(s->buf = PQcopyResult(r, PG_COPYRES_ATTRS)))
		return -1;
	t = PQntuples(s->buf);
	for (int c = 0; c < nf; c++) {
		int null = PQgetisnull(r, 0, c);
		if (!PQsetvalue(s->buf, t, c, null ? NULL : PQgetvalue(r, 0, c),
				null ? -1 : PQgetlength(r, 0, c))) {
			/* out of memory, as dm_xmalloc() treats it (a partial row
			 * cannot be taken back) */
			fputs("didfs: out of memory\n", stderr);
			abort();
		}
	}
	PQclear(r);
	return 0;
}

/* Read what is left of the statement streaming on the connection into its
 * buffer of rows (then its queue), so the connection is free for another
 * command. */
static void drain_active(struct pg_db *d)
{
	struct pg_stmt *s = d->active;
	PGresult *r;

	if (!s)
		return;
	while ((r = PQgetResult(d->conn)))
		if (PQresultStatus(r) != PGRES_SINGLE_TUPLE || buffer_row(s, r))
			queue_push(s, r);
	s->state = ST_BUFFERED;
	d->active = NULL;
}

/* Throw away what the connection still has to say (a reset statement). */
static void discard_results(struct pg_db *d)
{
	PGresult *r;

	while ((r = PQgetResult(d->conn))) {
		if (PQresultStatus(r) == PGRES_COPY_IN)
			PQputCopyEnd(d->conn, "abandoned");
		PQclear(r);
		if (PQstatus(d->conn) == CONNECTION_BAD)
			break;
	}
}

static enum dm_status ready(struct pg_db *d)
{
	drain_active(d);
	if (d->base.depth > 0 && d->base.tx_failed)
		return sqldrv_fail(&d->base, DM_AGAIN, "DatabaseException",
				   "the connection to the catalog %s was lost inside this transaction;"
				   " redo it", d->base.uri);
	if (PQstatus(d->conn) != CONNECTION_OK) {
		if (d->base.depth > 0) {
			d->base.tx_failed = 1;
			return sqldrv_fail(&d->base, DM_AGAIN, "DatabaseException",
					   "the connection to the catalog %s was lost inside a"
					   " transaction; redo it", d->base.uri);
		}
		return reconnect(d);
	}
	return DM_OK;
}

/* PQexec, outside a transaction run once more on a new connection when the
 * old one was lost: retry 2 = always (BEGIN, a read), 1 = only when the
 * server said it terminated the session (the command did not run), 0 =
 * never.  Returns the result (caller clears) or NULL with the error set. */
static PGresult *exec_cmd(struct pg_db *d, const char *sql, const char *what, int retry)
{
	for (int attempt = 0;; attempt++) {
		PGresult *r;
		ExecStatusType t;

		if (ready(d))
			return NULL;
		r = PQexec(d->conn, sql);
		t = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
		if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK || t == PGRES_COPY_IN)
			return r;
		if (retry && attempt == 0 && d->base.depth == 0 && conn_lost(d, r) &&
		    (retry == 2 || lost_state(r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL))) {
			PQclear(r);
			if (reconnect(d))
				return NULL;
			continue;
		}
		pg_err(d, r, what);
		PQclear(r);
		return NULL;
	}
}

static void pg_close(struct sqldrv *db)
{
	struct pg_db *d = PG(db);

	for (int i = 0; i < d->ncache; i++) {
		struct pg_stmt *s = d->cache[i];
		stmt_clear_results(s);
		queue_clear(s);
		free(s->queue);
		free(s->blobs);
		free(s->bloblens);
		for (int j = 0; j < s->nparams; j++)
			free(s->vals[j]);
		free(s->vals);
		free(s->lens);
		free(s->fmts);
		free(s->btypes);
		free(s->types);
		free(s->sql);
		free(s->pgsql);
		free(s);
	}
	free(d->cache);
	for (int i = 0; i < d->nchannels; i++)
		free(d->channels[i]);
	free(d->channels);
	PQfinish(d->conn);
	free(d->base.uri);
	free(d);
}

static int leading_word(const char *sql, const char *w)
{
	while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '(')
		sql++;
	return strncasecmp(sql, w, strlen(w)) == 0;
}

static void note_changes(struct pg_db *d, PGresult *r)
{
	const char *cmd = PQcmdStatus(r);

	if (leading_word(cmd, "INSERT") || leading_word(cmd, "UPDATE") ||
	    leading_word(cmd, "DELETE") || leading_word(cmd, "MERGE") || leading_word(cmd, "COPY"))
		d->changes = strtoll(PQcmdTuples(r), NULL, 10);
}

static enum dm_status pg_exec(struct sqldrv *db, const char *sql)
{
	PGresult *r = exec_cmd(PG(db), sql, "running a statement", 1);

	if (!r)
		return db->err.code;
	note_changes(PG(db), r);
	PQclear(r);
	return DM_OK;
}

/* ---- statements ---- */

static uint64_t fnv64(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void stmt_free(struct pg_db *d, struct pg_stmt *s)
{
	if (s->prepared_gen == d->gen && PQstatus(d->conn) == CONNECTION_OK) {
		char sql[48];
		PGresult *r;
		drain_active(d);
		snprintf(sql, sizeof sql, "DEALLOCATE %s", s->name);
		r = PQexec(d->conn, sql);
		PQclear(r);
	}
	stmt_clear_results(s);
	queue_clear(s);
	free(s->queue);
	free(s->blobs);
	free(s->bloblens);
	for (int j = 0; j < s->nparams; j++)
		free(s->vals[j]);
	free(s->vals);
	free(s->lens);
	free(s->fmts);
	free(s->btypes);
	free(s->types);
	free(s->sql);
	free(s->pgsql);
	free(s);
}


static void pg_reset(struct sqldrv_stmt *st);
static void clear_bindings(struct pg_stmt *s);

static struct sqldrv_stmt *pg_prepare(struct sqldrv *db, const char *sql)
{
	struct pg_db *d = PG(db);
	uint64_t h = fnv64(sql);
	struct pg_stmt *s;
	int victim = -1;

	for (int i = 0; i < d->ncache; i++) {
		s = d->cache[i];
		if (s->hash == h && strcmp(s->sql, sql) == 0) {
			pg_reset(&s->base);
			clear_bindings(s);
			s->used = ++d->clock;
			return &s->base;
		}
	}
	s = dm_xcalloc(1, sizeof *s);
	s->base.db = db;
	s->sql = dm_xstrdup(sql);
	s->pgsql = sqldrv_pg_placeholders(sql, &s->nparams);
	s->hash = h;
	s->used = ++d->clock;
	snprintf(s->name, sizeof s->name, "sqldrv_%u", ++d->next_name);
	s->vals = dm_xcalloc((size_t)s->nparams + 1, sizeof *s->vals);
	s->lens = dm_xcalloc((size_t)s->nparams + 1, sizeof *s->lens);
	s->fmts = dm_xcalloc((size_t)s->nparams + 1, sizeof *s->fmts);
	s->btypes = dm_xcalloc((size_t)s->nparams + 1, sizeof *s->btypes);
	s->types = dm_xcalloc((size_t)s->nparams + 1, sizeof *s->types);
	s->insert = leading_word(sql, "INSERT");
	s->returning = s->insert && strcasestr(sql, "RETURNING") != NULL;
	s->readonly = leading_word(sql, "SELECT") || leading_word(sql, "VALUES");
	if (d->ncache >= PG_CACHE) {
		for (int i = 0; i < d->ncache; i++)
			if (d->cache[i]->state == ST_IDLE &&
			    (victim < 0 || d->cache[i]->used < d->cache[victim]->used))
				victim = i;
	}
	if (victim < 0) {
		/* room left, or every statement is stepping: the cache grows */
		if (d->ncache == d->capcache) {
			d->capcache = d->capcache ? 2 * d->capcache : PG_CACHE;
			d->cache = dm_xrealloc(d->cache, (size_t)d->capcache * sizeof *d->cache);
		}
		d->cache[d->ncache++] = s;
		return &s->base;
	}
	stmt_free(d, d->cache[victim]);
	d->cache[victim] = s;
	return &s->base;
}

static void pg_reset(struct sqldrv_stmt *st)
{
	struct pg_stmt *s = PGS(st);
	struct pg_db *d = PG(st->db);

	if (s->state == ST_STREAMING && d->active == s) {
		discard_results(d);
		d->active = NULL;
	}
	queue_clear(s);
	stmt_clear_results(s);
	s->state = ST_IDLE;
}

/* Bindings are kept by a reset (as SQLite's) and cleared by a prepare. */
static void clear_bindings(struct pg_stmt *s)
{
	for (int j = 0; j < s->nparams; j++) {
		free(s->vals[j]);
		s->vals[j] = NULL;
		s->lens[j] = 0;
		s->fmts[j] = 0;
		s->btypes[j] = 0;
	}
}

static enum dm_status bind_check(struct pg_stmt *s, int idx)
{
	if (idx < 1 || idx > s->nparams)
		return sqldrv_fail(s->base.db, DM_EINVAL, "DatabaseException",
				   "binding parameter %d of a statement with %d: out of range",
				   idx, s->nparams);
	if (s->state != ST_IDLE)
		pg_reset(&s->base);
	free(s->vals[idx - 1]);
	s->vals[idx - 1] = NULL;
	s->fmts[idx - 1] = 0;
	s->lens[idx - 1] = 0;
	s->btypes[idx - 1] = 0;
	return DM_OK;
}

static enum dm_status pg_bind_int64(struct sqldrv_stmt *st, int idx, int64_t v)
{
	struct pg_stmt *s = PGS(st);
	char buf[24];

	if (bind_check(s, idx))
		return st->db->err.code;
	snprintf(buf, sizeof buf, "%lld", (long long)v);
	s->vals[idx - 1] = dm_xstrdup(buf);
	s->btypes[idx - 1] = INT8OID;
	return DM_OK;
}

static enum dm_status pg_bind_double(struct sqldrv_stmt *st, int idx, double v)
{
	struct pg_stmt *s = PGS(st);
	char buf[40];

	if (bind_check(s, idx))
		return st->db->err.code;
	snprintf(buf, sizeof buf, "%.17g", v);
	s->vals[idx - 1] = dm_xstrdup(buf);
	s->btypes[idx - 1] = FLOAT8OID;
	return DM_OK;
}

static enum dm_status pg_bind_text(struct sqldrv_stmt *st, int idx, const char *p, size_t n)
{
	struct pg_stmt *s = PGS(st);

	if (bind_check(s, idx))
		return st->db->err.code;
	if (memchr(p, 0, n))
		return sqldrv_fail(st->db, DM_EINVAL, "DatabaseException",
				   "binding parameter %d: PostgreSQL text cannot hold a NUL byte", idx);
	s->vals[idx - 1] = dm_xmalloc(n + 1);
	memcpy(s->vals[idx - 1], p, n);
	s->vals[idx - 1][n] = 0;
	s->btypes[idx - 1] = TEXTOID;
	return DM_OK;
}

static enum dm_status pg_bind_blob(struct sqldrv_stmt *st, int idx, const void *p, size_t n)
{
	struct pg_stmt *s = PGS(st);

	if (bind_check(s, idx))
		return st->db->err.code;
	if (n > 0x7fffffff)
		return sqldrv_fail(st->db, DM_EINVAL, "DatabaseException",
				   "binding parameter %d: blob of %zu bytes is too large", idx, n);
	s->vals[idx - 1] = dm_xmalloc(n ? n : 1);
	if (n)
		memcpy(s->vals[idx - 1], p, n);
	s->lens[idx - 1] = (int)n;
	s->fmts[idx - 1] = 1;
	s->btypes[idx - 1] = BYTEAOID;
	return DM_OK;
}

static enum dm_status pg_bind_null(struct sqldrv_stmt *st, int idx)
{
	if (bind_check(PGS(st), idx))
		return st->db->err.code;
	return DM_OK;
}

/* The server could not type a parameter from the query alone
 * (`?1 IS NULL`, `SELECT ?1 UNION SELECT id ...`, an operator it cannot
 * choose): worth preparing again with the types of the values bound. */
static int typing_error(const PGresult *r)
{
	const char *ss = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	return sqlstate_is(ss, "42P18") || sqlstate_is(ss, "42P08") ||
	       sqlstate_is(ss, "42804") || sqlstate_is(ss, "42883") || sqlstate_is(ss, "42725");
}

static int cmd_ok(struct pg_db *d, const char *sql)
{
	PGresult *r = PQexec(d->conn, sql);
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;

	PQclear(r);
	return ok;
}

/* PREPARE, letting the server infer the parameters' types from the query;
 * where it cannot, again with the types of the values bound now (int8,
 * float8, text, bytea; NULL left to the server, then as text), which the
 * statement then keeps.
 * Inside a transaction the first attempt runs under a savepoint, so its
 * failure does not abort the caller's transaction. */
static PGresult *prepare_stmt(struct pg_db *d, struct pg_stmt *s)
{
	int sp = d->base.depth > 0;
	PGresult *r;

	if (sp && !cmd_ok(d, "SAVEPOINT sqldrv_prepare"))
		return PQprepare(d->conn, s->name, s->pgsql, s->nparams, s->typed ? s->types : NULL);
	r = PQprepare(d->conn, s->name, s->pgsql, s->nparams, s->typed ? s->types : NULL);
	if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
		if (sp)
			cmd_ok(d, "RELEASE SAVEPOINT sqldrv_prepare");
		return r;
	}
	if (conn_lost(d, r))
		return r;
	if (sp)
		cmd_ok(d, "ROLLBACK TO SAVEPOINT sqldrv_prepare; RELEASE SAVEPOINT sqldrv_prepare");
	if (s->typed || !typing_error(r))
		return r;
	PQclear(r);
	/* the values' types, NULLs left for the server to infer from the query
	 * (`coalesce(?5, lifetime)`: bigint); where it cannot, NULLs as text */
	for (int j = 0; j < s->nparams; j++)
		s->types[j] = s->btypes[j];
	s->typed = 1;
	if (sp && !cmd_ok(d, "SAVEPOINT sqldrv_prepare"))
		sp = 0;
	r = PQprepare(d->conn, s->name, s->pgsql, s->nparams, s->types);
	if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
		if (sp)
			cmd_ok(d, "RELEASE SAVEPOINT sqldrv_prepare");
		return r;
	}
	if (conn_lost(d, r))
		return r;
	if (sp)
		cmd_ok(d, "ROLLBACK TO SAVEPOINT sqldrv_prepare; RELEASE SAVEPOINT sqldrv_prepare");
	if (!typing_error(r))
		return r;
	PQclear(r);
	for (int j = 0; j < s->nparams; j++)
		s->types[j] = s->btypes[j] ? s->btypes[j] : TEXTOID;
	return PQprepare(d->conn, s->name, s->pgsql, s->nparams, s->types);
}

/* Send the statement: prepare it on this connection if needed, then run it
 * in single-row mode.  Returns 0, or -1 with the error set (and *lost when
 * the connection was lost). */
static int send_stmt(struct pg_stmt *s, int *lost)
{
	struct pg_db *d = PG(s->base.db);

	*lost = 0;
	if (s->prepared_gen != d->gen) {
		PGresult *r = prepare_stmt(d, s);
		if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
			*lost = conn_lost(d, r);
			if (!*lost || d->base.depth > 0)
				pg_err(d, r, "preparing a statement");
			PQclear(r);
			return -1;
		}
		PQclear(r);
		s->prepared_gen = d->gen;
	}
	if (!PQsendQueryPrepared(d->conn, s->name, s->nparams, (const char *const *)s->vals,
				 s->lens, s->fmts, 0)) {
		*lost = conn_lost(d, NULL);
		if (!*lost || d->base.depth > 0)
			pg_err(d, NULL, "running a statement");
		return -1;
	}
	PQsetSingleRowMode(d->conn);
	d->active = s;
	s->state = ST_STREAMING;
	s->rows = 0;
	if (s->insert)
		d->last_id_valid = 0;
	return 0;
}

static PGresult *next_result(struct pg_db *d, struct pg_stmt *s)
{
	if (s->state == ST_BUFFERED)
		return s->qhead < s->qlen ? s->queue[s->qhead++] : NULL;
	return PQgetResult(d->conn);
}

static void finish(struct pg_db *d, struct pg_stmt *s)
{
	if (s->state == ST_STREAMING && d->active == s) {
		discard_results(d);
		d->active = NULL;
	}
	queue_clear(s);
	s->state = ST_IDLE;
}


static int pg_step(struct sqldrv_stmt *st)
{
	struct pg_stmt *s = PGS(st);
	struct pg_db *d = PG(st->db);
	int retried = 0;

	stmt_clear_results(s);
	for (;;) {
		PGresult *r = NULL;
		ExecStatusType t = PGRES_COMMAND_OK;

		if (s->state == ST_IDLE) {
			int lost;
			if (ready(d))
				return SQLDRV_ERROR;
			if (send_stmt(s, &lost)) {
				if (lost && d->base.depth == 0 && !retried) {
					retried = 1;
					if (reconnect(d))
						return SQLDRV_ERROR;
					continue;
				}
				if (lost && d->base.depth == 0)
					pg_err(d, NULL, "running a statement");
				return SQLDRV_ERROR;
			}
		}
		if (s->state == ST_BUFFERED && s->buf && s->bufpos < PQntuples(s->buf)) {
			s->row = s->buf;
			s->rowi = s->bufpos++;
			s->row_owned = 0;
		} else {
			r = next_result(d, s);
			t = r ? PQresultStatus(r) : PGRES_COMMAND_OK;
			if (t == PGRES_SINGLE_TUPLE) {
				s->row = r;
				s->rowi = 0;
				s->row_owned = 1;
			}
		}
		if (s->row) {
			s->rows++;
			if (s->returning && PQnfields(s->row) > 0 &&
			    !PQgetisnull(s->row, s->rowi, 0)) {
				d->last_id = strtoll(PQgetvalue(s->row, s->rowi, 0), NULL, 10);
				d->last_id_valid = 1;
			}
			return SQLDRV_ROW;
		}
		if (t == PGRES_TUPLES_OK || t == PGRES_COMMAND_OK) {
			if (r)
				note_changes(d, r);
			PQclear(r);
			finish(d, s);
			return SQLDRV_DONE;
		}
		/* an error: outside a transaction, a lost connection before any
		 * row is worth one more try on a new connection - when the server
		 * said it was terminating the session (the statement did not run)
		 * or the statement only reads; a write whose reply was lost
		 * without that notice may have been committed */
		if (conn_lost(d, r) && d->base.depth == 0 && s->rows == 0 && !retried &&
		    (s->readonly || lost_state(r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL))) {
			PQclear(r);
			finish(d, s);
			retried = 1;
			if (reconnect(d))
				return SQLDRV_ERROR;
			continue;
		}
		if (conn_lost(d, r) && d->base.depth == 0 && !s->readonly && s->rows == 0) {
			char msg[600];
			one_line(PQerrorMessage(d->conn), msg, sizeof msg);
			sqldrv_fail(&d->base, DM_EIO, "DatabaseException",
				    "running a statement: the connection to the catalog %s was lost"
				    " before its reply (%s); whether it was applied is unknown",
				    d->base.uri, msg);
		} else {
			pg_err(d, r, "running a statement");
		}
		PQclear(r);
		finish(d, s);
		return SQLDRV_ERROR;
	}
}

static int pg_col_count(struct sqldrv_stmt *st)
{
	return PGS(st)->row ? PQnfields(PGS(st)->row) : 0;
}

static int pg_col_is_null(struct sqldrv_stmt *st, int col)
{
	PGresult *r = PGS(st)->row;

	return !r || col < 0 || col >= PQnfields(r) || PQgetisnull(r, PGS(st)->rowi, col);
}

static const char *pg_col_text(struct sqldrv_stmt *st, int col)
{
	if (pg_col_is_null(st, col))
		return NULL;
	return PQgetvalue(PGS(st)->row, PGS(st)->rowi, col);
}

static int64_t pg_col_int64(struct sqldrv_stmt *st, int col)
{
	const char *v = pg_col_text(st, col);
	char *end;
	long long n;

	if (!v)
		return 0;
	if (PQftype(PGS(st)->row, col) == BOOLOID)
		return *v == 't';
	n = strtoll(v, &end, 10);
	if (*end == '.' || *end == 'e' || *end == 'E')
		return (int64_t)strtod(v, NULL);
	return n;
}

static double pg_col_double(struct sqldrv_stmt *st, int col)
{
	const char *v = pg_col_text(st, col);

	if (!v)
		return 0;
	if (PQftype(PGS(st)->row, col) == BOOLOID)
		return *v == 't';
	return strtod(v, NULL);
}

static const void *pg_col_blob(struct sqldrv_stmt *st, int col, size_t *n)
{
	struct pg_stmt *s = PGS(st);
	const char *v = pg_col_text(st, col);
	size_t len = 0;

	*n = 0;
	if (!v)
		return NULL;
	if (PQftype(s->row, col) != BYTEAOID) {
		*n = (size_t)PQgetlength(s->row, s->rowi, col);
		return *n ? v : NULL;
	}
	if (s->nblobs < PQnfields(s->row)) {
		int nf = PQnfields(s->row);
		s->blobs = dm_xrealloc(s->blobs, (size_t)nf * sizeof *s->blobs);
		s->bloblens = dm_xrealloc(s->bloblens, (size_t)nf * sizeof *s->bloblens);
		for (int i = s->nblobs; i < nf; i++) {
			s->blobs[i] = NULL;
			s->bloblens[i] = 0;
		}
		s->nblobs = nf;
	}
	if (!s->blobs[col]) {
		s->blobs[col] = PQunescapeBytea((const unsigned char *)v, &len);
		if (!s->blobs[col])
			return NULL;
		s->bloblens[col] = len;
	}
	len = s->bloblens[col];
	*n = len;
	return len ? s->blobs[col] : NULL;
}

static int64_t pg_changes(struct sqldrv *db)
{
	return PG(db)->changes;
}

static enum dm_status pg_last_id(struct sqldrv *db, int64_t *id)
{
	struct pg_db *d = PG(db);
	PGresult *r;

	if (d->last_id_valid) {
		*id = d->last_id;
		return DM_OK;
	}
	r = exec_cmd(d, "SELECT lastval()", "reading the last inserted id", 0);
	if (!r)
		return db->err.code;
	*id = PQntuples(r) > 0 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	return DM_OK;
}

/* ---- transactions ---- */

static enum dm_status pg_tx_begin(struct sqldrv *db, int serializable)
{
	PGresult *r = exec_cmd(PG(db), serializable ? "BEGIN ISOLATION LEVEL SERIALIZABLE" : "BEGIN",
			       "starting a transaction", 2);

	if (!r)
		return db->err.code;
	PQclear(r);
	return DM_OK;
}

static enum dm_status pg_tx_commit(struct sqldrv *db)
{
	struct pg_db *d = PG(db);
	PGresult *r;
	const char *ss;
	enum dm_status rc;

	drain_active(d);
	if (PQstatus(d->conn) != CONNECTION_OK)
		return sqldrv_fail(db, DM_AGAIN, "DatabaseException",
				   "committing: the connection to the catalog %s was lost inside the"
				   " transaction; redo it", db->uri);
	if (PQtransactionStatus(d->conn) == PQTRANS_INERROR)
		return sqldrv_fail(db, db->err.code ? db->err.code : DM_EINTERNAL, NULL,
				   "committing: a statement of the transaction failed: %s",
				   db->err.msg);
	r = PQexec(d->conn, "COMMIT");
	if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		return DM_OK;
	}
	ss = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (conn_lost(d, r) && !lost_state(ss)) {
		PQclear(r);
		return sqldrv_fail(db, DM_EIO, "DatabaseException",
				   "committing: the connection to the catalog %s was lost while"
				   " committing; whether the transaction was committed is unknown",
				   db->uri);
	}
	rc = pg_err(d, r, "committing");
	PQclear(r);
	return rc;
}

static void pg_tx_rollback(struct sqldrv *db)
{
	struct pg_db *d = PG(db);

	drain_active(d);
	if (PQstatus(d->conn) != CONNECTION_OK)
		return; /* the server rolled it back; the next BEGIN reconnects */
	PQclear(PQexec(d->conn, "ROLLBACK"));
}

/* ---- bulk: COPY FROM STDIN, text format ---- */

struct pg_bulk {
	char *buf;
	size_t len, cap;
};

static void cb_reserve(struct pg_bulk *q, size_t n)
{
	if (q->len + n > q->cap) {
		while (q->len + n > q->cap)
			q->cap = q->cap ? q->cap * 2 : COPY_CHUNK + 4096;
		q->buf = dm_xrealloc(q->buf, q->cap);
	}
}

static enum dm_status pg_bulk_begin(struct sqldrv_bulk *b)
{
	struct pg_db *d = PG(b->db);
	struct dm_buf sql = DM_BUF_INIT;
	PGresult *r;

	dm_buf_addf(&sql, "COPY %s(", b->table);
	for (int i = 0; i < b->ncols; i++)
		dm_buf_addf(&sql, "%s%s", i ? "," : "", b->cols[i]);
	dm_buf_adds(&sql, ") FROM STDIN");
	r = exec_cmd(d, sql.s, "starting a bulk load", 0);
	dm_buf_release(&sql);
	if (!r)
		return b->db->err.code;
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		PQclear(r);
		return sqldrv_fail(b->db, DM_EINTERNAL, "DatabaseException",
				   "starting a bulk load into %s: the server did not start a COPY",
				   b->table);
	}
	PQclear(r);
	b->impl = dm_xcalloc(1, sizeof(struct pg_bulk));
	return DM_OK;
}

static void pg_bulk_value(struct sqldrv_bulk *b, int type, int64_t iv, double dv,
			  const void *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	struct pg_bulk *q = b->impl;
	const unsigned char *s = p;

	if (b->col > 0) {
		cb_reserve(q, 1);
		q->buf[q->len++] = '\t';
	}
	switch (type) {
	case SQLDRV_T_INT:
		cb_reserve(q, 24);
		q->len += (size_t)snprintf(q->buf + q->len, 24, "%lld", (long long)iv);
		break;
	case SQLDRV_T_DOUBLE:
		cb_reserve(q, 40);
		q->len += (size_t)snprintf(q->buf + q->len, 40, "%.17g", dv);
		break;
	case SQLDRV_T_TEXT:
		if (memchr(p, 0, n)) {
			b->rc = sqldrv_fail(b->db, DM_EINVAL, "DatabaseException",
					    "bulk load into %s: PostgreSQL text cannot hold a NUL byte",
					    b->table);
			return;
		}
		cb_reserve(q, 2 * n);
		for (size_t i = 0; i < n; i++) {
			unsigned char c = s[i];
			if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
				q->buf[q->len++] = '\\';
				c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
			}
			q->buf[q->len++] = (char)c;
		}
		break;
	case SQLDRV_T_BLOB:
		/* bytea's hex input \x..., with COPY's backslash doubled */
		cb_reserve(q, 3 + 2 * n);
		q->buf[q->len++] = '\\';
		q->buf[q->len++] = '\\';
		q->buf[q->len++] = 'x';
		for (size_t i = 0; i < n; i++) {
			q->buf[q->len++] = hex[s[i] >> 4];
			q->buf[q->len++] = hex[s[i] & 15];
		}
		break;
	default:
		cb_reserve(q, 2);
		q->buf[q->len++] = '\\';
		q->buf[q->len++] = 'N';
	}
}

static enum dm_status copy_flush(struct sqldrv_bulk *b)
{
	struct pg_db *d = PG(b->db);
	struct pg_bulk *q = b->impl;

	if (q->len && PQputCopyData(d->conn, q->buf, (int)q->len) != 1) {
		q->len = 0;
		return pg_err(d, NULL, "bulk load: sending rows");
	}
	q->len = 0;
	return DM_OK;
}

static enum dm_status pg_bulk_row(struct sqldrv_bulk *b)
{
	struct pg_bulk *q = b->impl;

	cb_reserve(q, 1);
	q->buf[q->len++] = '\n';
	if (q->len >= COPY_CHUNK)
		return copy_flush(b);
	return DM_OK;
}

static enum dm_status pg_bulk_end(struct sqldrv_bulk *b, enum dm_status rc)
{
	struct pg_db *d = PG(b->db);
	struct pg_bulk *q = b->impl;
	PGresult *r;

	if (!q)
		return rc;
	if (rc == DM_OK)
		rc = copy_flush(b);
	if (PQstatus(d->conn) == CONNECTION_OK) {
		if (PQputCopyEnd(d->conn, rc == DM_OK ? NULL : "bulk load abandoned") != 1 &&
		    rc == DM_OK)
			rc = pg_err(d, NULL, "bulk load: ending the COPY");
		while ((r = PQgetResult(d->conn))) {
			ExecStatusType t = PQresultStatus(r);
			if (t == PGRES_COMMAND_OK && rc == DM_OK) {
				note_changes(d, r);
			} else if (t != PGRES_COMMAND_OK && rc == DM_OK) {
				char what[160];
				snprintf(what, sizeof what, "bulk load into %s", b->table);
				rc = pg_err(d, r, what);
			}
			PQclear(r);
			if (PQstatus(d->conn) == CONNECTION_BAD)
				break;
		}
	}
	if (PQstatus(d->conn) != CONNECTION_OK && b->db->depth > 0) {
		b->db->tx_failed = 1;
		if (rc == DM_OK || rc == DM_EIO)
			rc = sqldrv_fail(b->db, DM_AGAIN, "DatabaseException",
					 "bulk load into %s: the connection to the catalog %s was lost;"
					 " nothing of the load was kept: redo it", b->table, b->db->uri);
	}
	free(q->buf);
	free(q);
	b->impl = NULL;
	return rc;
}

/* ---- notifications ---- */

static enum dm_status pg_listen(struct sqldrv *db, const char *channel)
{
	struct pg_db *d = PG(db);

	for (int i = 0; i < d->nchannels; i++)
		if (strcmp(d->channels[i], channel) == 0)
			return DM_OK;
	if (ready(d))
		return db->err.code;
	if (!listen_cmd(d, channel))
		return pg_err(d, NULL, "listening for notifications");
	d->channels = dm_xrealloc(d->channels, (size_t)(d->nchannels + 1) * sizeof *d->channels);
	d->channels[d->nchannels++] = dm_xstrdup(channel);
	return DM_OK;
}

static enum dm_status pg_notify(struct sqldrv *db, const char *channel, const char *payload)
{
	struct sqldrv_stmt *st = pg_prepare(db, "SELECT pg_notify(?1, ?2)");

	if (!st)
		return db->err.code;
	pg_bind_text(st, 1, channel, strlen(channel));
	pg_bind_text(st, 2, payload, strlen(payload));
	return sqldrv_run(st);
}

static int take_notify(struct pg_db *d, char *chan, size_t n)
{
	PGnotify *nt = PQnotifies(d->conn);

	if (!nt)
		return 0;
	if (n)
		dm_strlcpy(chan, nt->relname, n);
	PQfreemem(nt);
	return 1;
}

static int pg_wait(struct sqldrv *db, int timeout_ms, char *chan, size_t n)
{
	struct pg_db *d = PG(db);
	struct pollfd pfd;
	int r;

	if (n)
		chan[0] = 0;
	if (d->active) {
		sqldrv_fail(db, DM_EINVAL, "DatabaseException",
			    "waiting for notifications while a statement is still running");
		return -1;
	}
	if (PQstatus(d->conn) != CONNECTION_OK && db->depth == 0 && reconnect(d))
		return -1;
	if (d->missed) {
		d->missed = 0;
		return 1;
	}
	if (PQconsumeInput(d->conn) && take_notify(d, chan, n))
		return 1;
	pfd.fd = PQsocket(d->conn);
	pfd.events = POLLIN;
	pfd.revents = 0;
	do
		r = pfd.fd >= 0 ? poll(&pfd, 1, timeout_ms) : 0;
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return 0;
	if (!PQconsumeInput(d->conn)) {
		/* the connection broke while we waited: reconnect, and say work
		 * may have been missed */
		if (db->depth == 0 && reconnect(d) == DM_OK) {
			d->missed = 0;
			return 1;
		}
		pg_err(d, NULL, "waiting for notifications");
		return -1;
	}
	return take_notify(d, chan, n);
}

static const struct sqldrv_ops pg_ops = {
	.dialect = SQLDRV_POSTGRESQL,
	.close = pg_close,
	.exec = pg_exec,
	.prepare = pg_prepare,
	.reset = pg_reset,
	.bind_int64 = pg_bind_int64,
	.bind_double = pg_bind_double,
	.bind_text = pg_bind_text,
	.bind_blob = pg_bind_blob,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.col_count = pg_col_count,
	.col_is_null = pg_col_is_null,
	.col_int64 = pg_col_int64,
	.col_double = pg_col_double,
	.col_text = pg_col_text,
	.col_blob = pg_col_blob,
	.changes = pg_changes,
	.last_id = pg_last_id,
	.tx_begin = pg_tx_begin,
	.tx_commit = pg_tx_commit,
	.tx_rollback = pg_tx_rollback,
	.bulk_begin = pg_bulk_begin,
	.bulk_value = pg_bulk_value,
	.bulk_row = pg_bulk_row,
	.bulk_end = pg_bulk_end,
	.listen = pg_listen,
	.notify = pg_notify,
	.wait = pg_wait,
};
