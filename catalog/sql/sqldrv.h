/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqldrv.h - a small SQL driver with one interface over SQLite and
 * PostgreSQL (libpq), prefix sqldrv_.  The catalog's queries are written
 * once against it; each dialect keeps its own schema (schema_pg.sql for
 * PostgreSQL, catalog/store.c's migrations for SQLite).
 *
 * Opening: sqldrv_open() takes a catalog URI: a file path or sqlite:PATH
 * (SQLite, WAL mode), or postgresql://... / postgres://... (a libpq URI;
 * PostgreSQL is compiled in when meson's `postgresql` feature found libpq,
 * else such a URI fails with DM_ENOTSUP).  Errors name the URI with any
 * password removed (sqldrv_uri()).
 *
 * Query text: placeholders are SQLite's `?` and `?N` (1-based; a bare `?`
 * takes the highest number so far plus one).  For PostgreSQL the driver
 * rewrites them to `$N` outside string literals, quoted identifiers and
 * comments.  Parameter types are inferred by the server from the query;
 * where they cannot be (`?1 IS NULL`, `SELECT ?1 UNION SELECT id ...`), the
 * statement is prepared again with the types of the values bound to it
 * (int64 -> bigint, double -> float8, text, blob -> bytea, NULL -> text).
 * SQLite's integers-as-booleans (`CASE WHEN ?1 THEN`) must be written as
 * comparisons (`?1 <> 0`) to run on both.
 *
 * Statements: sqldrv_prepare() returns a statement from the handle's cache
 * (keyed by the SQL text; PostgreSQL prepares it server-side once per
 * connection), reset and with its bindings cleared.  It stays valid until
 * the handle is closed; the cache evicts only statements not in use.
 * sqldrv_reset() ends an execution and keeps the bindings (as SQLite's
 * reset does): stepping again runs the statement again.  Bind,
 * then sqldrv_step() until SQLDRV_DONE; columns are 0-based and their
 * pointers valid until the next step or reset.  PostgreSQL rows stream
 * (single-row mode): memory does not grow with the result.  Running a
 * second statement while one is still streaming is allowed: the first one's
 * remaining rows are then fetched into memory.
 *
 * Transactions: sqldrv_begin() / sqldrv_commit() / sqldrv_rollback() nest:
 * the outermost level is BEGIN IMMEDIATE (SQLite) or BEGIN (PostgreSQL,
 * READ COMMITTED unless sqldrv_begin_serializable()), inner levels are
 * savepoints, so an inner rollback undoes only its own work.
 * sqldrv_end(db, rc) commits when rc == DM_OK, rolls back otherwise, and
 * returns the final status.  Note for queries: in PostgreSQL a failed
 * statement aborts the whole transaction (until rollback to a savepoint);
 * "try INSERT, on duplicate UPDATE" must be written as ON CONFLICT.
 *
 * Last id: write `INSERT ... RETURNING id` and read column 0 (both
 * dialects), or call sqldrv_last_id() after the insert (SQLite's rowid;
 * PostgreSQL: the RETURNING value if there was one, else lastval()).
 *
 * Retries: DM_AGAIN means "redo the whole transaction": busy past the busy
 * timeout ($DIDFS_BUSY_TIMEOUT seconds, default 30: SQLite's busy timeout,
 * PostgreSQL's lock_timeout), PostgreSQL serialization failure or deadlock,
 * or the connection lost inside a transaction.  A statement outside a transaction
 * whose connection was lost (the server restarted) is retried once after
 * reconnecting, transparently.  sqldrv_tx_run() runs a transaction body and
 * redoes it on DM_AGAIN as the retry hook (sqldrv_set_retry()) decides.
 *
 * Notifications: sqldrv_listen() / sqldrv_notify() / sqldrv_wait() wake
 * daemons when work arrives (PostgreSQL); polling stays the backstop.
 *
 * Bulk: sqldrv_bulk_begin() .. sqldrv_bulk_end() load rows into one table:
 * COPY FROM STDIN on PostgreSQL, a prepared INSERT loop in one transaction
 * on SQLite.
 *
 * A handle is used by one thread at a time.
 */
#ifndef SQLDRV_H
#define SQLDRV_H

#include "dm.h"

#include <stddef.h>
#include <stdint.h>

struct sqldrv;
struct sqldrv_stmt;
struct sqldrv_bulk;

enum sqldrv_dialect { SQLDRV_SQLITE, SQLDRV_POSTGRESQL };

enum sqldrv_open_flags {
	SQLDRV_OPEN_CREATE = 1,   /* SQLite: create the file if missing */
	SQLDRV_OPEN_READONLY = 2, /* SQLite: open read-only */
};

/* sqldrv_step() results; SQLDRV_ERROR leaves the reason in sqldrv_error(). */
enum { SQLDRV_ERROR = -1, SQLDRV_DONE = 0, SQLDRV_ROW = 1 };

/* Open by URI (see the header comment).  On failure *out is NULL, err is
 * filled (naming the URI without its password) and the status returned:
 * DM_ENOENT (no such file / database), DM_EPERM with class
 * "CannotAuthenticate" (wrong user or password), DM_EIO (cannot connect),
 * DM_ENOTSUP (unknown scheme, or PostgreSQL not compiled in). */
enum dm_status sqldrv_open(const char *uri, unsigned flags, struct sqldrv **out,
			   struct dm_err *err);
void sqldrv_close(struct sqldrv *db);
enum sqldrv_dialect sqldrv_dialect(const struct sqldrv *db);
/* The URI as opened, with any password replaced by "***". */
const char *sqldrv_uri(const struct sqldrv *db);
/* Write uri into out (size n) with its password removed (for messages). */
void sqldrv_redact_uri(const char *uri, char *out, size_t n);
/* The last failure on this handle (code, Rucio class, message). */
const struct dm_err *sqldrv_error(const struct sqldrv *db);
/* Record a failure on the handle (as sqldrv_error() reports it) and
 * return st; cls NULL = the default class for st. */
enum dm_status sqldrv_fail(struct sqldrv *db, enum dm_status st, const char *cls,
			   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* 1 once the database reported damaged storage (SQLite: a corrupt page or
 * not a database file). */
int sqldrv_damaged(const struct sqldrv *db);
/* 1 when PostgreSQL support is compiled in. */
int sqldrv_have_postgresql(void);

/* Run a script of one or more statements without parameters. */
enum dm_status sqldrv_exec(struct sqldrv *db, const char *sql);

/* ---- statements ---- */
struct sqldrv_stmt *sqldrv_prepare(struct sqldrv *db, const char *sql);
void sqldrv_reset(struct sqldrv_stmt *st);
/* Bind parameter idx (1-based).  text/blob are copied; len -1 = strlen. */
enum dm_status sqldrv_bind_int64(struct sqldrv_stmt *st, int idx, int64_t v);
enum dm_status sqldrv_bind_double(struct sqldrv_stmt *st, int idx, double v);
enum dm_status sqldrv_bind_text(struct sqldrv_stmt *st, int idx, const char *s, ptrdiff_t len);
enum dm_status sqldrv_bind_blob(struct sqldrv_stmt *st, int idx, const void *p, size_t n);
enum dm_status sqldrv_bind_null(struct sqldrv_stmt *st, int idx);
int sqldrv_step(struct sqldrv_stmt *st);
/* Step to the end: DM_OK when the statement completed. */
enum dm_status sqldrv_run(struct sqldrv_stmt *st);
int sqldrv_col_count(struct sqldrv_stmt *st);
int sqldrv_col_is_null(struct sqldrv_stmt *st, int col);
int64_t sqldrv_col_int64(struct sqldrv_stmt *st, int col);
double sqldrv_col_double(struct sqldrv_stmt *st, int col);
/* NULL for SQL NULL. */
const char *sqldrv_col_text(struct sqldrv_stmt *st, int col);
/* NULL (and *n = 0) for SQL NULL or an empty blob. */
const void *sqldrv_col_blob(struct sqldrv_stmt *st, int col, size_t *n);
struct sqldrv *sqldrv_stmt_db(struct sqldrv_stmt *st);

/* Rows changed by the last INSERT/UPDATE/DELETE (or bulk load). */
int64_t sqldrv_changes(struct sqldrv *db);
/* The id of the last row inserted on this handle (see the header). */
enum dm_status sqldrv_last_id(struct sqldrv *db, int64_t *id);

/* ---- transactions ---- */
enum dm_status sqldrv_begin(struct sqldrv *db);
enum dm_status sqldrv_begin_serializable(struct sqldrv *db);
enum dm_status sqldrv_commit(struct sqldrv *db);
enum dm_status sqldrv_rollback(struct sqldrv *db);
enum dm_status sqldrv_end(struct sqldrv *db, enum dm_status rc);
int sqldrv_tx_depth(const struct sqldrv *db);

/* The retry hook: called before attempt number `attempt` (2, 3, ...) of a
 * transaction that failed with DM_AGAIN (why); returns nonzero to retry.
 * The default sleeps 20 ms * 2^(attempt-2) (capped at 1 s) and allows 8
 * attempts. */
typedef int (*sqldrv_retry_fn)(void *ud, int attempt, const struct dm_err *why);
void sqldrv_set_retry(struct sqldrv *db, sqldrv_retry_fn fn, void *ud);
/* begin; body(db, ud); end - redone while it fails with DM_AGAIN and the
 * retry hook agrees.  body returns DM_OK to commit. */
typedef enum dm_status (*sqldrv_tx_body)(struct sqldrv *db, void *ud);
enum dm_status sqldrv_tx_run(struct sqldrv *db, sqldrv_tx_body body, void *ud);

/* ---- bulk load ----
 * b = sqldrv_bulk_begin(db, "t", cols, ncols); per row: one sqldrv_bulk_*
 * value per column in order, then sqldrv_bulk_row(b); sqldrv_bulk_end(b, rc)
 * finishes (rc == DM_OK) or abandons the load and frees b.  The load is one
 * transaction (or part of the caller's).  table and cols are trusted
 * identifiers (not user input). */
struct sqldrv_bulk *sqldrv_bulk_begin(struct sqldrv *db, const char *table,
				      const char *const *cols, int ncols);
void sqldrv_bulk_int64(struct sqldrv_bulk *b, int64_t v);
void sqldrv_bulk_double(struct sqldrv_bulk *b, double v);
void sqldrv_bulk_text(struct sqldrv_bulk *b, const char *s, ptrdiff_t len);
void sqldrv_bulk_blob(struct sqldrv_bulk *b, const void *p, size_t n);
void sqldrv_bulk_null(struct sqldrv_bulk *b);
enum dm_status sqldrv_bulk_row(struct sqldrv_bulk *b);
/* Returns the final status; the rows loaded are sqldrv_changes(db). */
enum dm_status sqldrv_bulk_end(struct sqldrv_bulk *b, enum dm_status rc);

/* ---- notifications ----
 * PostgreSQL: LISTEN/NOTIFY (a NOTIFY inside a transaction is delivered at
 * its commit).  The channels a handle listens to are listened to again after
 * a reconnection, and the first sqldrv_wait() after it returns 1 with an
 * empty channel: notifications may have been missed, look for work.
 * SQLite has none: listen and notify do nothing, wait sleeps its timeout and
 * returns 0, so the caller's polling is what finds the work.  Channels are
 * SQL identifiers (quoted by the driver). */
enum dm_status sqldrv_listen(struct sqldrv *db, const char *channel);
enum dm_status sqldrv_notify(struct sqldrv *db, const char *channel, const char *payload);
/* 1: a notification (its channel copied into chan, n bytes), 0: none within
 * timeout_ms, -1: error (sqldrv_error()).  Not while a statement streams. */
int sqldrv_wait(struct sqldrv *db, int timeout_ms, char *chan, size_t n);

/* PostgreSQL's placeholder form of SQLite-style query text: `?`/`?N` ->
 * `$N` outside literals and comments.  Returns a malloc'd string and the
 * number of parameters (highest N) in *nparams. */
char *sqldrv_pg_placeholders(const char *sql, int *nparams);

#endif
