/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqldrv_i.h - what sqldrv.c (URI dispatch, transactions, retries, the bulk
 * front end) and the two backends (sqldrv_sqlite.c, sqldrv_pg.c) share: the
 * handle's common part and the table of operations each backend fills.
 */
#ifndef SQLDRV_I_H
#define SQLDRV_I_H

#include "sqldrv.h"

struct sqldrv_ops {
	enum sqldrv_dialect dialect;
	void (*close)(struct sqldrv *db);
	enum dm_status (*exec)(struct sqldrv *db, const char *sql);
	struct sqldrv_stmt *(*prepare)(struct sqldrv *db, const char *sql);
	void (*reset)(struct sqldrv_stmt *st);
	enum dm_status (*bind_int64)(struct sqldrv_stmt *st, int idx, int64_t v);
	enum dm_status (*bind_double)(struct sqldrv_stmt *st, int idx, double v);
	enum dm_status (*bind_text)(struct sqldrv_stmt *st, int idx, const char *s, size_t len);
	enum dm_status (*bind_blob)(struct sqldrv_stmt *st, int idx, const void *p, size_t n);
	enum dm_status (*bind_null)(struct sqldrv_stmt *st, int idx);
	int (*step)(struct sqldrv_stmt *st);
	int (*col_count)(struct sqldrv_stmt *st);
	int (*col_is_null)(struct sqldrv_stmt *st, int col);
	int64_t (*col_int64)(struct sqldrv_stmt *st, int col);
	double (*col_double)(struct sqldrv_stmt *st, int col);
	const char *(*col_text)(struct sqldrv_stmt *st, int col);
	const void *(*col_blob)(struct sqldrv_stmt *st, int col, size_t *n);
	int64_t (*changes)(struct sqldrv *db);
	enum dm_status (*last_id)(struct sqldrv *db, int64_t *id);
	/* Outermost transaction: begin (serializable or not), commit, rollback.
	 * Savepoints for inner levels go through exec. */
	enum dm_status (*tx_begin)(struct sqldrv *db, int serializable);
	enum dm_status (*tx_commit)(struct sqldrv *db);
	void (*tx_rollback)(struct sqldrv *db);
	/* Bulk load; the front end holds the transaction. */
	enum dm_status (*bulk_begin)(struct sqldrv_bulk *b);
	void (*bulk_value)(struct sqldrv_bulk *b, int type, int64_t i, double d,
			   const void *p, size_t n);
	enum dm_status (*bulk_row)(struct sqldrv_bulk *b);
	enum dm_status (*bulk_end)(struct sqldrv_bulk *b, enum dm_status rc);
	/* notifications; NULL = none (SQLite) */
	enum dm_status (*listen)(struct sqldrv *db, const char *channel);
	enum dm_status (*notify)(struct sqldrv *db, const char *channel, const char *payload);
	int (*wait)(struct sqldrv *db, int timeout_ms, char *chan, size_t n);
};

/* value types for bulk_value */
enum { SQLDRV_T_NULL, SQLDRV_T_INT, SQLDRV_T_DOUBLE, SQLDRV_T_TEXT, SQLDRV_T_BLOB };

/* The common part; each backend's handle starts with it. */
struct sqldrv {
	const struct sqldrv_ops *ops;
	char *uri;              /* redacted */
	struct dm_err err;
	int depth;              /* transaction nesting: 0 = none */
	int tx_failed;          /* the outermost transaction cannot commit */
	int damaged;            /* SQLite found damaged pages (sqldrv_damaged) */
	sqldrv_retry_fn retry;
	void *retry_ud;
};

/* Every backend statement starts with this. */
struct sqldrv_stmt {
	struct sqldrv *db;
};

struct sqldrv_bulk {
	struct sqldrv *db;
	char *table;
	char **cols;
	int ncols;
	int col;              /* values added to the current row */
	int64_t rows;
	enum dm_status rc;    /* first failure; later calls do nothing */
	void *impl;           /* the backend's state */
};

enum dm_status sqldrv_sqlite_open(const char *path, const char *shown, unsigned flags,
				  struct sqldrv **out, struct dm_err *err);
enum dm_status sqldrv_pg_open(const char *uri, const char *shown, unsigned flags,
			      struct sqldrv **out, struct dm_err *err);

#endif
