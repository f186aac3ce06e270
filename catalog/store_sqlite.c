/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_sqlite.c - the SQLite store: one catalog file, its schema and
 * migrations, opening it, and its operations table (sqlite_ops: close,
 * location, description, the file's owner for "who may act as whom").
 * cat_open() (open.c) reaches cat_sqlite_open() for a path or sqlite:PATH;
 * the queries are the SQL stores' shared ones (store.c and the rest of
 * catalog/), run through the SQL driver (catalog/sql/).
 *
 * The database runs in WAL mode with synchronous=NORMAL: readers (the mount,
 * listings) never block the writer (the daemons, the CLI), and a crash loses
 * at most the last transactions, never consistency.  The schema version is
 * kept in PRAGMA user_version; opening applies the migrations it lacks in
 * one transaction.  PostgreSQL's schema (catalog/sql/schema_pg.c) mirrors
 * these migrations one for one.
 */
#include "catalog_i.h"
#include "dmcheck.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* schema                                                              */

static const char *const migrations[] = {
	/* 1: the catalog core (issue: catalog on SQLite) */
	"CREATE TABLE accounts("
	"  account TEXT PRIMARY KEY, account_type TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'ACTIVE', email TEXT,"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	"  suspended_at INTEGER, deleted_at INTEGER) WITHOUT ROWID;"
	"CREATE TABLE account_attr_map("
	"  account TEXT NOT NULL REFERENCES accounts(account), key TEXT NOT NULL,"
	"  value TEXT, PRIMARY KEY(account, key)) WITHOUT ROWID;"
	"CREATE TABLE identities("
	"  identity TEXT NOT NULL, identity_type TEXT NOT NULL, username TEXT,"
	"  password TEXT, salt BLOB, email TEXT NOT NULL DEFAULT '',"
	"  created_at INTEGER NOT NULL, PRIMARY KEY(identity, identity_type));"
	"CREATE TABLE account_map("
	"  identity TEXT NOT NULL, identity_type TEXT NOT NULL,"
	"  account TEXT NOT NULL REFERENCES accounts(account), is_default INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY(identity, identity_type, account)) WITHOUT ROWID;"
	"CREATE TABLE scopes("
	"  scope TEXT PRIMARY KEY, account TEXT NOT NULL REFERENCES accounts(account),"
	"  is_default INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'OPEN',"
	"  created_at INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE dids("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL REFERENCES scopes(scope),"
	"  name TEXT NOT NULL, account TEXT NOT NULL, did_type TEXT NOT NULL,"
	"  is_open INTEGER, monotonic INTEGER NOT NULL DEFAULT 0,"
	"  bytes INTEGER, length INTEGER, adler32 TEXT, md5 TEXT,"
	"  availability TEXT NOT NULL DEFAULT 'A', expired_at INTEGER, closed_at INTEGER,"
	"  accessed_at INTEGER, purge_replicas INTEGER NOT NULL DEFAULT 1,"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	"  UNIQUE(scope, name));"
	"CREATE INDEX dids_expired_at_idx ON dids(expired_at) WHERE expired_at IS NOT NULL;"
	"CREATE TABLE did_meta("
	"  did_id INTEGER NOT NULL REFERENCES dids(id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL, value TEXT, PRIMARY KEY(did_id, key)) WITHOUT ROWID;"
	"CREATE TABLE contents("
	"  parent_id INTEGER NOT NULL, child_id INTEGER NOT NULL,"
	"  rule_evaluation INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL,"
	"  PRIMARY KEY(parent_id, child_id)) WITHOUT ROWID;"
	"CREATE INDEX contents_child_idx ON contents(child_id);"
	"CREATE TABLE updated_dids("
	"  id INTEGER PRIMARY KEY, did_id INTEGER NOT NULL,"
	"  rule_evaluation_action TEXT NOT NULL, created_at INTEGER NOT NULL);"
	"CREATE TABLE rses("
	"  num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, rse TEXT NOT NULL UNIQUE,"
	"  rse_type TEXT NOT NULL DEFAULT 'DISK', deterministic INTEGER NOT NULL DEFAULT 1,"
	"  volatile INTEGER NOT NULL DEFAULT 0, staging_area INTEGER NOT NULL DEFAULT 0,"
	"  city TEXT, region_code TEXT, country_name TEXT, continent TEXT, time_zone TEXT,"
	"  ISP TEXT, ASN TEXT, longitude REAL, latitude REAL, qos_class TEXT,"
	"  availability_read INTEGER NOT NULL DEFAULT 1,"
	"  availability_write INTEGER NOT NULL DEFAULT 1,"
	"  availability_delete INTEGER NOT NULL DEFAULT 1,"
	"  deleted INTEGER NOT NULL DEFAULT 0, deleted_at INTEGER,"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE TABLE rse_attr_map("
	"  rse_num INTEGER NOT NULL REFERENCES rses(num), key TEXT NOT NULL, value TEXT,"
	"  PRIMARY KEY(rse_num, key)) WITHOUT ROWID;"
	"CREATE INDEX rse_attr_map_kv_idx ON rse_attr_map(key, value);"
	"CREATE TABLE rse_protocols("
	"  rse_num INTEGER NOT NULL REFERENCES rses(num), scheme TEXT NOT NULL,"
	"  hostname TEXT NOT NULL DEFAULT '', port INTEGER NOT NULL DEFAULT 0,"
	"  prefix TEXT, impl TEXT NOT NULL,"
	"  read_lan INTEGER, write_lan INTEGER, delete_lan INTEGER,"
	"  read_wan INTEGER, write_wan INTEGER, delete_wan INTEGER,"
	"  third_party_copy_read INTEGER, third_party_copy_write INTEGER,"
	"  extended_attributes TEXT,"
	"  PRIMARY KEY(rse_num, scheme, hostname, port)) WITHOUT ROWID;"
	"CREATE TABLE replicas("
	"  did_id INTEGER NOT NULL REFERENCES dids(id), rse_num INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL, path TEXT, state TEXT NOT NULL DEFAULT 'A',"
	"  lock_cnt INTEGER NOT NULL DEFAULT 0, tombstone INTEGER,"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, accessed_at INTEGER,"
	"  PRIMARY KEY(did_id, rse_num)) WITHOUT ROWID;"
	"CREATE INDEX replicas_rse_tombstone_idx ON replicas(rse_num, tombstone);"
	"CREATE TABLE account_limits("
	"  account TEXT NOT NULL, rse_num INTEGER NOT NULL, bytes INTEGER NOT NULL,"
	"  PRIMARY KEY(account, rse_num)) WITHOUT ROWID;"
	"CREATE TABLE account_usage("
	"  account TEXT NOT NULL, rse_num INTEGER NOT NULL, files INTEGER NOT NULL DEFAULT 0,"
	"  bytes INTEGER NOT NULL DEFAULT 0, updated_at INTEGER,"
	"  PRIMARY KEY(account, rse_num)) WITHOUT ROWID;"
	"CREATE TABLE rse_usage("
	"  rse_num INTEGER NOT NULL, source TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0,"
	"  free INTEGER, files INTEGER NOT NULL DEFAULT 0, updated_at INTEGER,"
	"  PRIMARY KEY(rse_num, source)) WITHOUT ROWID;"
	"CREATE TABLE updated_account_counters("
	"  id INTEGER PRIMARY KEY, account TEXT NOT NULL, rse_num INTEGER NOT NULL,"
	"  files INTEGER NOT NULL, bytes INTEGER NOT NULL);"
	"CREATE TABLE updated_rse_counters("
	"  id INTEGER PRIMARY KEY, rse_num INTEGER NOT NULL,"
	"  files INTEGER NOT NULL, bytes INTEGER NOT NULL);",
	/* 2: the rule engine (issue: rules, locks, requests, daemons) */
	"CREATE TABLE rules("
	"  id TEXT PRIMARY KEY, did_id INTEGER NOT NULL REFERENCES dids(id),"
	"  account TEXT NOT NULL, state TEXT NOT NULL, error TEXT,"
	"  rse_expression TEXT NOT NULL, copies INTEGER NOT NULL, grouping TEXT NOT NULL,"
	"  weight TEXT, locked INTEGER NOT NULL DEFAULT 0, source_replica_expression TEXT,"
	"  activity TEXT NOT NULL, purge_replicas INTEGER NOT NULL DEFAULT 0,"
	"  ignore_availability INTEGER NOT NULL DEFAULT 0,"
	"  ignore_account_limit INTEGER NOT NULL DEFAULT 0, comments TEXT,"
	"  notification TEXT NOT NULL DEFAULT 'N', priority INTEGER NOT NULL DEFAULT 3,"
	"  locks_ok_cnt INTEGER NOT NULL DEFAULT 0, locks_replicating_cnt INTEGER NOT NULL DEFAULT 0,"
	"  locks_stuck_cnt INTEGER NOT NULL DEFAULT 0, expires_at INTEGER, stuck_at INTEGER,"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	"  UNIQUE(did_id, account, rse_expression, copies));"
	"CREATE INDEX rules_state_idx ON rules(state);"
	"CREATE INDEX rules_account_idx ON rules(account);"
	"CREATE INDEX rules_expires_idx ON rules(expires_at) WHERE expires_at IS NOT NULL;"
	"CREATE TABLE locks("
	"  rule_id TEXT NOT NULL, did_id INTEGER NOT NULL, rse_num INTEGER NOT NULL,"
	"  account TEXT NOT NULL, bytes INTEGER NOT NULL, state TEXT NOT NULL,"
	"  repair_cnt INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL, PRIMARY KEY(rule_id, did_id, rse_num)) WITHOUT ROWID;"
	"CREATE INDEX locks_did_rse_idx ON locks(did_id, rse_num);"
	"CREATE INDEX locks_rule_state_idx ON locks(rule_id, state);"
	"CREATE TABLE dataset_locks("
	"  rule_id TEXT NOT NULL, did_id INTEGER NOT NULL, rse_num INTEGER NOT NULL,"
	"  account TEXT NOT NULL, state TEXT NOT NULL, length INTEGER, bytes INTEGER,"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY(rule_id, did_id, rse_num)) WITHOUT ROWID;"
	"CREATE TABLE requests("
	"  id TEXT PRIMARY KEY, request_type TEXT NOT NULL DEFAULT 'T', did_id INTEGER NOT NULL,"
	"  dest_rse_num INTEGER NOT NULL, source_rse_num INTEGER, rule_id TEXT, activity TEXT,"
	"  state TEXT NOT NULL, retry_count INTEGER NOT NULL DEFAULT 0, err_msg TEXT,"
	"  bytes INTEGER, adler32 TEXT, md5 TEXT, account TEXT, priority INTEGER NOT NULL DEFAULT 3,"
	"  last_processed_by TEXT, requested_at INTEGER, submitted_at INTEGER,"
	"  transferred_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX requests_did_dest_idx ON requests(did_id, dest_rse_num);"
	"CREATE INDEX requests_state_idx ON requests(state, priority, requested_at);"
	"CREATE TABLE requests_history("
	"  id TEXT PRIMARY KEY, did_id INTEGER NOT NULL, dest_rse_num INTEGER NOT NULL,"
	"  source_rse_num INTEGER, rule_id TEXT, activity TEXT, state TEXT NOT NULL,"
	"  retry_count INTEGER NOT NULL, err_msg TEXT, bytes INTEGER, account TEXT,"
	"  last_processed_by TEXT, requested_at INTEGER, submitted_at INTEGER,"
	"  transferred_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE INDEX requests_history_rule_idx ON requests_history(rule_id);"
	"CREATE TABLE distances("
	"  src_rse_num INTEGER NOT NULL, dest_rse_num INTEGER NOT NULL, distance INTEGER NOT NULL,"
	"  PRIMARY KEY(src_rse_num, dest_rse_num)) WITHOUT ROWID;"
	"CREATE TABLE heartbeats("
	"  executable TEXT NOT NULL, hostname TEXT NOT NULL, pid INTEGER NOT NULL,"
	"  thread_id INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY(executable, hostname, pid, thread_id)) WITHOUT ROWID;"
	"CREATE TABLE bad_replicas("
	"  did_id INTEGER NOT NULL, rse_num INTEGER NOT NULL, reason TEXT, state TEXT NOT NULL,"
	"  account TEXT, created_at INTEGER NOT NULL);"
	"CREATE TABLE rse_limits("
	"  rse_num INTEGER NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,"
	"  PRIMARY KEY(rse_num, name)) WITHOUT ROWID;"
	"CREATE TABLE messages("
	"  id INTEGER PRIMARY KEY, event_type TEXT NOT NULL, payload TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);",
	/* 3: per-block checksum manifests (catalog/manifest.c) */
	"CREATE TABLE file_manifests("
	"  did_id INTEGER PRIMARY KEY REFERENCES dids(id) ON DELETE CASCADE,"
	"  chunk_size INTEGER NOT NULL, bytes INTEGER NOT NULL, sums BLOB NOT NULL,"
	"  created_at INTEGER NOT NULL);",
	/* 4: the web UI's bounded reads of finished transfers (catalog/overview.c):
	 * the transfer matrix of the last hour (a covering index: the window is
	 * read from the index alone), a stuck lock's last error */
	"CREATE INDEX requests_history_transferred_idx ON requests_history(transferred_at,"
	"  source_rse_num, dest_rse_num, state, bytes, retry_count, submitted_at);"
	"CREATE INDEX requests_history_did_idx ON requests_history(did_id, dest_rse_num, updated_at);",
	/* 5: the request id of the REST call that added a rule (catalog/stats.c) */
	"ALTER TABLE rules ADD COLUMN request_id TEXT;",
};

/* Later migrations, one function each (numbered after the strings above). */

/* 6: subscriptions (catalog/subscription.c): the table, rules.subscription_id
 * and dids.is_new (1 for every DID inserted from now on, whatever inserts
 * it; the DIDs already there are not new). */
static enum dm_status migration_subscriptions(struct cat_db *db)
{
	return cat_exec(db,
		"ALTER TABLE dids ADD COLUMN is_new INTEGER NOT NULL DEFAULT 1;"
		"UPDATE dids SET is_new=0;"
		"CREATE INDEX dids_is_new_idx ON dids(id) WHERE is_new=1;"
		"ALTER TABLE rules ADD COLUMN subscription_id TEXT;"
		"CREATE INDEX rules_subscription_idx ON rules(subscription_id)"
		"  WHERE subscription_id IS NOT NULL;"
		"CREATE TABLE subscriptions("
		"  id TEXT PRIMARY KEY, name TEXT NOT NULL, account TEXT NOT NULL,"
		"  filter TEXT NOT NULL, replication_rules TEXT NOT NULL,"
		"  policyid INTEGER NOT NULL DEFAULT 3, state TEXT NOT NULL DEFAULT 'A',"
		"  last_processed INTEGER, lifetime INTEGER, retroactive INTEGER NOT NULL DEFAULT 0,"
		"  comments TEXT, expired_at INTEGER, created_at INTEGER NOT NULL,"
		"  updated_at INTEGER NOT NULL, UNIQUE(name, account));");
}

/* 7: the outbox's delivery bookkeeping (catalog/outbox.c, daemons/hermes.c):
 * which sink already has which message; messages.id becomes AUTOINCREMENT
 * (never reused once hermes deleted the newest: consumers tell messages
 * apart by it). */
static enum dm_status migration_message_deliveries(struct cat_db *db)
{
	return cat_exec(db,
		"CREATE TABLE messages_new("
		"  id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT NOT NULL, payload TEXT NOT NULL,"
		"  created_at INTEGER NOT NULL);"
		"INSERT INTO messages_new(id, event_type, payload, created_at)"
		"  SELECT id, event_type, payload, created_at FROM messages;"
		"DROP TABLE messages;"
		"ALTER TABLE messages_new RENAME TO messages;"
		"CREATE TABLE message_deliveries("
		"  message_id INTEGER NOT NULL, sink TEXT NOT NULL, delivered_at INTEGER NOT NULL,"
		"  PRIMARY KEY(sink, message_id)) WITHOUT ROWID;"
		"CREATE INDEX message_deliveries_msg_idx ON message_deliveries(message_id);");
}

/* 8: Rucio's rules.child_rule_id: a rule that waits for another one to be OK
 * before the judge-cleaner may remove it (subscription rules' release_after). */
static enum dm_status migration_child_rules(struct cat_db *db)
{
	return cat_exec(db,
		"ALTER TABLE rules ADD COLUMN child_rule_id TEXT;"
		"CREATE INDEX rules_child_rule_idx ON rules(child_rule_id) WHERE child_rule_id IS NOT NULL;");
}

static enum dm_status (*const migration_fns[])(struct cat_db *db) = {
	migration_subscriptions,
	migration_message_deliveries,
	migration_child_rules,
};

static enum dm_status migrate(struct cat_db *db)
{
	struct sqldrv_stmt *st;
	int nstr = (int)DM_ARRAY_SIZE(migrations);
	int version = 0, target = nstr + (int)DM_ARRAY_SIZE(migration_fns);
	enum dm_status rc;
	char sql[64];

	st = cat_stmt(db, "PRAGMA user_version");
	if (!st)
		return db->err.code;
	if (sqldrv_step(st) == SQLDRV_ROW)
		version = (int)sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	if (version > target)
		return cat_fail(db, DM_ENOTSUP, "DatabaseException",
				"catalog schema version %d is newer than this didfs (%d)",
				version, target);
	if (version == target)
		return DM_OK;
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	for (int v = version; v < target && rc == DM_OK; v++)
		rc = v < nstr ? cat_exec(db, migrations[v]) : migration_fns[v - nstr](db);
	if (rc == DM_OK) {
		snprintf(sql, sizeof sql, "PRAGMA user_version=%d", target);
		rc = cat_exec(db, sql);
	}
	return cat_tx_end(db, rc);
}

enum dm_status cat_quick_check(struct cat_db *db)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = DM_OK;
	int r;

	if (!db->sql || sqldrv_dialect(db->sql) != SQLDRV_SQLITE)
		return DM_OK; /* the server checks its own pages */
	if (!(st = sqldrv_prepare(db->sql, "PRAGMA quick_check(1)")))
		return cat_dberr(db, "checking the catalog");
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW && strcmp(cat_col_text(st, 0) ? cat_col_text(st, 0) : "", "ok")) {
		db->corrupt = 1;
		rc = cat_fail(db, DM_EIO, "DatabaseException",
			      "checking the catalog: the catalog file %s is damaged (%s); nothing more"
			      " is written to it: run 'didfs check' and restore it from a backup",
			      db->path ? db->path : "(unknown)", cat_col_text(st, 0));
	} else if (r != SQLDRV_ROW) {
		rc = cat_dberr(db, "checking the catalog");
	}
	sqldrv_reset(st);
	return rc;
}

/* ---- the SQLite store's operations (catalog_i.h, struct cat_store_ops) ---- */

static void sqlite_close(struct cat_db *db)
{
	sqldrv_close(db->sql);
	free(db->path);
	free(db->abs_path);
	free(db);
}

/* The absolute path: a plain path is itself a catalog URI. */
static void sqlite_location(const struct cat_db *db, struct dm_buf *out)
{
	dm_buf_adds(out, db->abs_path ? db->abs_path : db->path);
}

static void sqlite_describe(const struct cat_db *db, struct dm_buf *out)
{
	dm_buf_addf(out, "sqlite:%s (schema version %d)", db->abs_path ? db->abs_path : db->path,
		    (int)(DM_ARRAY_SIZE(migrations) + DM_ARRAY_SIZE(migration_fns)));
}

static int sqlite_schema_version(struct cat_db *db)
{
	struct sqldrv_stmt *st = cat_stmt(db, "PRAGMA user_version");
	int v = -1;

	if (st && sqldrv_step(st) == SQLDRV_ROW)
		v = (int)sqldrv_col_int64(st, 0);
	if (st)
		sqldrv_reset(st);
	return v;
}

/* The OS user who owns the file: it may act as any account. */
static int sqlite_os_owner(const struct cat_db *db, unsigned *uid)
{
	struct stat stbuf;

	if (stat(db->path, &stbuf) != 0)
		return -1;
	*uid = (unsigned)stbuf.st_uid;
	return 0;
}

static const struct cat_store_ops sqlite_ops = {
	.name = "sqlite",
	.close = sqlite_close,
	.location = sqlite_location,
	.describe = sqlite_describe,
	.schema_version = sqlite_schema_version,
	.os_owner = sqlite_os_owner,
};

enum dm_status cat_sqlite_open(const char *path, unsigned flags, struct cat_db **out,
			       struct dm_err *err)
{
	char abs[PATH_MAX];
	struct dm_buf uri = DM_BUF_INIT;
	struct cat_db *db;
	unsigned sflags = 0;
	enum dm_status rc;

	*out = NULL;
	/* A catalog this process may read but not write is opened read-only
	 * (no WAL set-up, no migrations): listings work, writes are refused. */
	if (!(flags & CAT_OPEN_CREATE) && eaccess(path, F_OK) == 0 && eaccess(path, W_OK) != 0)
		flags |= CAT_OPEN_READONLY;
	if (flags & CAT_OPEN_READONLY)
		sflags |= SQLDRV_OPEN_READONLY;
	else if (flags & CAT_OPEN_CREATE)
		sflags |= SQLDRV_OPEN_CREATE;
	db = dm_xcalloc(1, sizeof *db);
	db->ops = &sqlite_ops;
	db->path = dm_xstrdup(path);
	db->issuer_admin = -1;
	dm_strlcpy(db->issuer, "root", sizeof db->issuer);
	/* the driver reads "sqlite:" and "://" itself: a file so named is
	 * given as sqlite:PATH */
	if (!strncmp(path, "sqlite:", 7) || strstr(path, "://"))
		dm_buf_adds(&uri, "sqlite:");
	dm_buf_adds(&uri, path);
	rc = sqldrv_open(uri.s, sflags, &db->sql, err);
	dm_buf_release(&uri);
	if (rc) {
		if (err && rc == DM_ENOENT && !(flags & CAT_OPEN_CREATE)) {
			size_t n = strlen(err->msg);
			snprintf(err->msg + n, sizeof err->msg - n, " (run 'didfs init' first)");
		}
		free(db->path);
		free(db);
		return DM_ENOENT;
	}
	if (realpath(path, abs))
		db->abs_path = dm_xstrdup(abs);
	/* Writers wait for each other with SQLite's back-off up to the busy
	 * timeout (the driver's), then fail with a clear "catalog is busy"
	 * (DM_AGAIN).  No command holds a write transaction across storage
	 * I/O or hashing, so waits are short. */
	db->busy_ms = dm_busy_timeout_s() * 1000;
	/* A small page cache per handle (a daemon holds one per thread, the
	 * mount one per worker) and temporary b-trees (sorts, GROUP BY over
	 * a million replicas) on disk, so memory does not grow with the
	 * catalog; bulk registration raises the cache for its transaction. */
	rc = cat_exec(db, "PRAGMA cache_size=-" DM_STR(CAT_CACHE_KIB) ";"
			  "PRAGMA temp_store=FILE");
	if (rc == DM_OK && !(flags & CAT_OPEN_READONLY)) {
		/* A file that is not a catalog at all is refused, not overwritten. */
		struct sqldrv_stmt *st = cat_stmt(db, "SELECT count(*) FROM sqlite_master");
		int foreign = 0, version = 0;
		if (!st) {
			rc = db->err.code;
		} else {
			if (sqldrv_step(st) == SQLDRV_ROW)
				foreign = (int)sqldrv_col_int64(st, 0);
			sqldrv_reset(st);
			st = cat_stmt(db, "PRAGMA user_version");
			if (st && sqldrv_step(st) == SQLDRV_ROW)
				version = (int)sqldrv_col_int64(st, 0);
			if (st)
				sqldrv_reset(st);
			if (version == 0 && foreign > 0)
				rc = cat_fail(db, DM_EINVAL, "DatabaseException",
					      "'%s' is an SQLite file but not a didfs catalog", path);
			else if (version == 0 && !(flags & CAT_OPEN_CREATE))
				rc = cat_fail(db, DM_ENOENT, "DatabaseException",
					      "'%s' is not an initialised catalog (run 'didfs init')",
					      path);
			else
				rc = migrate(db);
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
