/* SPDX-License-Identifier: Apache-2.0 */
/*
 * catalog_i.h - internals shared by the files of catalog/ (not exported).
 *
 * The SQL stores (SQLite: store_sqlite.c; PostgreSQL: store_pg.c; their
 * shared core: store.c) run the same queries through the SQL driver
 * (catalog/sql/sqldrv.h): the handle's `sql` is the connection, cat_stmt()
 * a cached prepared statement of it.  They keep Rucio's tables with two
 * departures that do not show through the API: DIDs and RSEs have integer surrogate keys (dids.id,
 * rses.num) so that replicas and contents rows stay small and bulk inserts
 * fast, and timestamps are integer seconds since the epoch.
 *
 * Transactions: every public call that changes anything runs inside
 * cat_tx_begin()/cat_tx_end(); cat_tx_end() commits on DM_OK and rolls back
 * otherwise, so a failed call leaves the catalog untouched.  Calls nest: only
 * the outermost begin/end touches the database.
 */
#ifndef CAT_CATALOG_I_H
#define CAT_CATALOG_I_H

#include "sqldrv.h"

#include "catalog.h"

#define CAT_CACHE_KIB 4096       /* SQLite page cache per handle */
#define CAT_BULK_CACHE_KIB 16384 /* ... during bulk registration */
#define DM_STR_(x) #x
#define DM_STR(x) DM_STR_(x)

struct cat_db;
struct cat_remote_ops;
/* What differs between stores behind the opaque handle (open.c dispatches
 * on the URI's scheme to a store's open, which installs its table). */
struct cat_store_ops {
	const char *name;                               /* "sqlite" */
	void (*close)(struct cat_db *db);
	/* A URI that reopens this catalog from any directory (cat_location). */
	void (*location)(const struct cat_db *db, struct dm_buf *out);
	/* Store, where, schema version, for people (cat_describe). */
	void (*describe)(const struct cat_db *db, struct dm_buf *out);
	/* The schema version the store holds (cat_info); NULL: none (REST). */
	int (*schema_version)(struct cat_db *db);
	/* The OS user who owns the store and so may act as any account
	 * (store.c, "who may act as whom"); -1 if the store has none. */
	int (*os_owner)(const struct cat_db *db, unsigned *uid);
	/* Credentials to act with (cat_set_creds); NULL: only the account
	 * counts, through cat_set_issuer(). */
	enum dm_status (*set_creds)(struct cat_db *db, const struct cat_creds *c);
	/* What a cache holds (cat_cache_stats); NULL: no cache (all zeros). */
	enum dm_status (*cache_stats)(struct cat_db *db, struct cat_cache_stats *out);
	/* A store that is not SQL (the REST catalog): the client calls it
	 * serves itself (CAT_REMOTE below); NULL for the SQLite store. */
	const struct cat_remote_ops *remote;
};

/* The client calls a remote store serves (catalog/rest/store.c).  Each
 * public function that a REST catalog can serve starts with
 * CAT_REMOTE(db, field, args...), which hands the call over when the
 * handle's store has this table; a NULL entry is UnsupportedOperation
 * naming the call.  Any other call reaching SQL on a remote handle fails
 * the same way (cat_stmt / cat_exec / cat_tx_begin check db->db). */
struct cat_remote_ops {
	enum dm_status (*set_issuer)(struct cat_db *, const char *);
	enum dm_status (*account_get)(struct cat_db *, const char *, cat_account_cb, void *);
	enum dm_status (*scope_list)(struct cat_db *, const char *, cat_scope_cb, void *);
	enum dm_status (*did_add)(struct cat_db *, const char *, const char *, enum cat_did_type,
				  int64_t);
	enum dm_status (*did_get)(struct cat_db *, const char *, const char *, cat_did_cb, void *);
	enum dm_status (*did_attach)(struct cat_db *, const char *, const char *,
				     const struct cat_did_ref *, size_t, unsigned);
	enum dm_status (*did_set_open)(struct cat_db *, const char *, const char *, int);
	enum dm_status (*did_set_lifetime)(struct cat_db *, const char *, const char *, int64_t);
	enum dm_status (*did_list)(struct cat_db *, const char *, const char *, unsigned,
				   cat_did_cb, void *);
	enum dm_status (*did_list_roots)(struct cat_db *, const char *, cat_did_cb, void *);
	enum dm_status (*did_list_content)(struct cat_db *, const char *, const char *,
					   cat_did_cb, void *);
	enum dm_status (*did_list_content_from)(struct cat_db *, int64_t, int64_t, cat_did_cb,
						void *);
	enum dm_status (*did_list_files)(struct cat_db *, const char *, const char *, cat_did_cb,
					 void *);
	enum dm_status (*did_list_parents)(struct cat_db *, const char *, const char *,
					   cat_did_cb, void *);
	enum dm_status (*did_meta_set)(struct cat_db *, const char *, const char *, const char *,
				       const char *);
	enum dm_status (*did_meta_del)(struct cat_db *, const char *, const char *, const char *);
	enum dm_status (*did_meta_list)(struct cat_db *, const char *, const char *, cat_kv_cb,
					void *);
	enum dm_status (*rse_get)(struct cat_db *, const char *, cat_rse_cb, void *);
	enum dm_status (*rse_list)(struct cat_db *, cat_rse_cb, void *);
	enum dm_status (*rse_attr_list)(struct cat_db *, const char *, cat_kv_cb, void *);
	enum dm_status (*rse_attr_get)(struct cat_db *, const char *, const char *, char *, size_t);
	enum dm_status (*rse_expr_list)(struct cat_db *, const char *, cat_rse_cb, void *);
	enum dm_status (*protocol_list)(struct cat_db *, const char *, cat_protocol_cb, void *);
	enum dm_status (*lfn2pfn)(struct cat_db *, const char *, const char *, const char *,
				  const char *, enum cat_proto_op, struct dm_buf *);
	enum dm_status (*replica_list)(struct cat_db *, const char *, const char *, const char *,
				       unsigned, cat_replica_cb, void *);
	enum dm_status (*account_usage_list)(struct cat_db *, const char *, cat_usage_cb, void *);
	enum dm_status (*usage_refresh)(struct cat_db *);
	enum dm_status (*rule_add)(struct cat_db *, const char *, const char *,
				   const struct cat_rule_opts *, char *);
	enum dm_status (*rule_get)(struct cat_db *, const char *, cat_rule_cb, void *);
	enum dm_status (*rule_list)(struct cat_db *, const char *, const char *, const char *,
				    cat_rule_cb, void *);
	enum dm_status (*rule_list_for_file)(struct cat_db *, const char *, const char *,
					     cat_rule_cb, void *);
	enum dm_status (*rule_delete)(struct cat_db *, const char *, int, int64_t);
	enum dm_status (*rule_delete_now)(struct cat_db *, const char *);
	enum dm_status (*rule_update)(struct cat_db *, const char *, const char *, const char *);
	enum dm_status (*rule_lock_counts)(struct cat_db *, const char *, cat_lock_count_cb, void *);
	enum dm_status (*rule_list_locks)(struct cat_db *, const char *, cat_lock_cb, void *);
	enum dm_status (*replicas_add)(struct cat_db *, const char *, const struct cat_file_in *,
				       size_t, const char *, const char *, unsigned);
	enum dm_status (*replica_set_state)(struct cat_db *, const char *, const char *,
					    const char *, enum cat_replica_state);
	enum dm_status (*replica_del)(struct cat_db *, const char *, const char *, const char *);
};
enum dm_status cat_remote_unsupported(struct cat_db *db, const char *call);
#define CAT_REMOTE(db, fn, ...) do { \
	if ((db)->ops->remote) \
		return (db)->ops->remote->fn ? (db)->ops->remote->fn((db), __VA_ARGS__) \
					     : cat_remote_unsupported((db), __func__); \
} while (0)
#define CAT_REMOTE0(db, fn) do { \
	if ((db)->ops->remote) \
		return (db)->ops->remote->fn ? (db)->ops->remote->fn(db) \
					     : cat_remote_unsupported((db), __func__); \
} while (0)

/* The REST store's open (catalog/rest/store.c), reached through cat_open(). */
enum dm_status cat_rest_open(const char *uri, unsigned flags, struct cat_db **out,
			     struct dm_err *err);

/* The SQLite store's open (store_sqlite.c), reached through cat_open(). */
enum dm_status cat_sqlite_open(const char *path, unsigned flags, struct cat_db **out,
			       struct dm_err *err);

/* The PostgreSQL store's open (store_pg.c), reached through cat_open(). */
enum dm_status cat_pg_open(const char *uri, unsigned flags, struct cat_db **out,
			   struct dm_err *err);

/* Who the process acts as (store.c, "who may act as whom"): called by a
 * SQL store's open once the schema is there. */
enum dm_status cat_os_caller(struct cat_db *db);

struct cat_db {
	const struct cat_store_ops *ops;
	struct sqldrv *sql; /* the SQL connection; NULL for a remote store */
	char *path;       /* as given */
	char *abs_path;   /* realpath once opened, or NULL */
	struct dm_err err;
	char issuer[CAT_ACCOUNT_MAX + 1];
	int issuer_admin; /* -1 unknown, 0, 1 */
	int busy_ms;      /* how long a writer waits for the lock ($DIDFS_BUSY_TIMEOUT) */
	int tx_depth;
	int corrupt;      /* SQLite saw damaged pages: no more writes */
	/* The embedded trust model (store.c, "who may act as whom"): */
	int os_trusted;   /* the process is root or owns the catalog file */
	int os_readonly;  /* neither trusted nor mapped: reads only */
	unsigned os_uid;
	char os_user[64]; /* the process's OS user name (or its uid) */
};

/* Store the thread's request id (dm_log_request_id) with a new rule
 * (stats.c); nothing without one. */
enum dm_status cat_rule_note_request(struct cat_db *db, const char *rule_id);

/* Record an error on the handle and return st. */
enum dm_status cat_fail(struct cat_db *db, enum dm_status st, const char *cls,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Record the SQL driver's last error of the handle (its status and class:
 * DM_AGAIN "the catalog is busy", DM_EEXIST Duplicate, ...; a damaged file
 * marks the handle corrupt). */
enum dm_status cat_dberr(struct cat_db *db, const char *what);

/* A cached prepared statement (sqldrv_prepare), reset and with bindings
 * cleared.  NULL on error (recorded on the handle). */
struct sqldrv_stmt *cat_stmt(struct cat_db *db, const char *sql);
enum dm_status cat_exec(struct cat_db *db, const char *sql);

enum dm_status cat_tx_begin(struct cat_db *db);
enum dm_status cat_tx_end(struct cat_db *db, enum dm_status rc);
/* Whether to run a whole public call again: it failed with DM_AGAIN as the
 * outermost transaction on PostgreSQL (a deadlock with a daemon, a
 * serialization failure, a connection lost mid-transaction: all rolled
 * back).  Sleeps a back-off first; at most CAT_REDO_MAX runs.  SQLite's
 * DM_AGAIN (busy past the busy timeout) is not redone: it waited already. */
#define CAT_REDO_MAX 6
int cat_redo(struct cat_db *db, enum dm_status rc, int *attempt);

/* Look-ups of surrogate keys; DM_ENOENT recorded with Rucio's class names
 * (ScopeNotFound, DataIdentifierNotFound, RSENotFound, AccountNotFound). */
enum dm_status cat_scope_check(struct cat_db *db, const char *scope, char *owner);
enum dm_status cat_account_check(struct cat_db *db, const char *account);
enum dm_status cat_did_id(struct cat_db *db, const char *scope, const char *name,
			  int64_t *id, enum cat_did_type *type);
enum dm_status cat_rse_num(struct cat_db *db, const char *rse, int64_t *num);
/* Issuer must be admin, or own the scope (when scope != NULL). */
enum dm_status cat_require_admin(struct cat_db *db, const char *what);
enum dm_status cat_require_scope_owner(struct cat_db *db, const char *scope, const char *what);

/* 1 on a PostgreSQL store: for the few queries whose best form differs
 * between the dialects (the rest are written once; schema_pg.c gives
 * PostgreSQL the SQLite functions they use). */
static inline int cat_is_pg(const struct cat_db *db)
{
	return db->sql && sqldrv_dialect(db->sql) == SQLDRV_POSTGRESQL;
}

/* Text column or NULL. */
static inline const char *cat_col_text(struct sqldrv_stmt *st, int i)
{
	return sqldrv_col_text(st, i);
}

const char *cat_did_type_code(enum cat_did_type t);
int cat_did_type_from_code(const char *code, enum cat_did_type *t);
const char *cat_replica_state_code(enum cat_replica_state s);
int cat_replica_state_from_code(const char *code, enum cat_replica_state *s);

/* Queue account/RSE usage deltas (applied by cat_usage_refresh). */
enum dm_status cat_counter_rse(struct cat_db *db, int64_t rse_num, int64_t files, int64_t bytes);
enum dm_status cat_counter_account(struct cat_db *db, const char *account, int64_t rse_num,
				   int64_t files, int64_t bytes);

/* Queue a collection for the judge-evaluator ('A' attach, 'D' detach). */
enum dm_status cat_queue_updated_did(struct cat_db *db, int64_t id, const char *action);
/* Evaluate an RSE expression over the catalog: nums[i]/match[i] per RSE. */
enum dm_status cat_rse_expr_match(struct cat_db *db, const char *expression, int allow_empty,
				  int64_t **nums, uint8_t **match, size_t *n, size_t *count);
/* Remove one replica row, queue the RSE counter, and delete the file DID
 * when its last replica is gone (Rucio). */
enum dm_status cat_replica_remove_row(struct cat_db *db, int64_t did, int64_t num, int64_t bytes);
/* Set a replica BAD and record it in bad_replicas (state B, reason, the
 * issuer, at now), in the caller's transaction.  DM_ENOENT, with nothing
 * recorded in db->err, when there is no such replica (the caller names it). */
enum dm_status cat_replica_mark_bad(struct cat_db *db, int64_t did, int64_t num,
				    const char *reason, int64_t now);
/* Rucio's update_replicas_states: AVAILABLE turns the replica's locks OK,
 * UNAVAILABLE turns them STUCK (rule.c; the decision: policy.h). */
enum dm_status cat_locks_on_replica_state(struct cat_db *db, int64_t did, int64_t rse,
					  enum cat_replica_state state);
/* Add identity (of Rucio's type, "X509", "LOCAL", ...) if new and map it to
 * account, in one transaction, admin only; is_default 0/1, or -1: default
 * only as the identity's first account.  A mapping that exists: Duplicate. */
enum dm_status cat_identity_map(struct cat_db *db, const char *account, const char *identity,
				const char *type, const char *email, int is_default);
/* The outbox (outbox.c): an event written in the caller's transaction.
 * transfer: a request attempt (event "transfer-submitted", "-done",
 * "-failed", reason or NULL), read before the request is archived; rule:
 * its new state ('O' RULE_OK, 'S' RULE_STUCK, as the rule's notify says);
 * collections created (CREATE_DTS / CREATE_CNT); a replica deleted from
 * storage (reason NULL: deletion-done, else deletion-failed). */
enum dm_status cat_outbox_add(struct cat_db *db, const char *event, const char *payload_json);
enum dm_status cat_outbox_transfer(struct cat_db *db, const char *request_id, const char *event,
				   const char *reason);
enum dm_status cat_outbox_rule_state(struct cat_db *db, const char *rule_id, char state);
enum dm_status cat_outbox_did_created(struct cat_db *db, const char *scope, const char *name,
				      enum cat_did_type type, int64_t expired_at);
enum dm_status cat_outbox_deletion(struct cat_db *db, const char *rse, const char *scope,
				   const char *name, int64_t bytes, const char *reason);
/* Step a (key, value) query to the end, row by row into cb. */
enum dm_status cat_kv_rows(struct cat_db *db, struct sqldrv_stmt *st, cat_kv_cb cb, void *ud,
			   const char *what);

#endif
