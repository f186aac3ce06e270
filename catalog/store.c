/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.c - the SQLite store: opening, schema and its migrations, the
 * statement cache, transactions, errors, the issuer, validation, accounts,
 * identities and scopes.  DIDs live in did.c, RSEs and protocols in rse.c,
 * replicas, bulk registration and usage in replica.c.
 *
 * The database runs in WAL mode with synchronous=NORMAL: readers (the mount,
 * listings) never block the writer (the daemons, the CLI), and a crash loses
 * at most the last transactions, never consistency.  The schema version is
 * kept in PRAGMA user_version; opening applies the migrations it lacks in
 * one transaction.  cat_open() (open.c) reaches cat_sqlite_open() for a
 * path or sqlite:PATH; the store's operations table (sqlite_ops: close,
 * location, description, the file's owner for "who may act as whom") is
 * what open.c and the trust check call instead of assuming a file.
 */
#include "catalog_i.h"
#include "dmcheck.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
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
};

static enum dm_status migrate(struct cat_db *db)
{
	sqlite3_stmt *st;
	int version = 0, target = (int)DM_ARRAY_SIZE(migrations);
	enum dm_status rc;
	char sql[64];

	st = cat_stmt(db, "PRAGMA user_version");
	if (!st)
		return db->err.code;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
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
		rc = cat_exec(db, migrations[v]);
	if (rc == DM_OK) {
		snprintf(sql, sizeof sql, "PRAGMA user_version=%d", target);
		rc = cat_exec(db, sql);
	}
	return cat_tx_end(db, rc);
}

/* ------------------------------------------------------------------ */
/* handle, errors, statements, transactions                            */

enum dm_status cat_fail(struct cat_db *db, enum dm_status st, const char *cls,
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

/* A damaged file: say so, name the file, and refuse every write from now
 * on (cat_tx_begin), so nothing is built on top of damaged pages. */
static enum dm_status cat_corrupt(struct cat_db *db, const char *what, const char *why)
{
	db->corrupt = 1;
	return cat_fail(db, DM_EIO, "DatabaseException",
			"%s: the catalog file %s is damaged (%s); nothing more is written to it:"
			" run 'didfs check' and restore it from a backup",
			what, db->path ? db->path : "(unknown)", why);
}

int cat_is_corrupt(const struct cat_db *db)
{
	return db->corrupt;
}

enum dm_status cat_quick_check(struct cat_db *db)
{
	sqlite3_stmt *st = NULL;
	enum dm_status rc = DM_OK;
	int r;

	if (sqlite3_prepare_v2(db->db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK)
		return cat_dberr(db, "checking the catalog");
	r = sqlite3_step(st);
	if (r == SQLITE_ROW && strcmp(cat_col_text(st, 0) ? cat_col_text(st, 0) : "", "ok"))
		rc = cat_corrupt(db, "checking the catalog", cat_col_text(st, 0));
	else if (r != SQLITE_ROW)
		rc = cat_dberr(db, "checking the catalog");
	sqlite3_finalize(st);
	return rc;
}

enum dm_status cat_dberr(struct cat_db *db, const char *what)
{
	int code = sqlite3_errcode(db->db) & 0xff;

	if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
		return cat_corrupt(db, what, sqlite3_errmsg(db->db));
	if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
		return cat_fail(db, DM_AGAIN, "DatabaseException",
				"%s: the catalog is busy: another writer held it for more than %d s "
				"(the busy timeout: --busy-timeout or $DIDFS_BUSY_TIMEOUT); try again", what,
				db->busy_ms / 1000);
	return cat_fail(db, DM_EINTERNAL, "DatabaseException", "%s: %s", what,
			sqlite3_errmsg(db->db));
}

const struct dm_err *cat_error(const struct cat_db *db)
{
	return &db->err;
}

sqlite3_stmt *cat_stmt(struct cat_db *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int i;

	if (!db->db) { /* a remote store: no SQL behind this handle */
		cat_remote_unsupported(db, NULL);
		return NULL;
	}
	for (i = 0; i < db->ncache; i++) {
		if (db->cache[i].sql == sql) {
			st = db->cache[i].st;
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return st;
		}
	}
	if (sqlite3_prepare_v3(db->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		cat_dberr(db, "preparing a statement");
		return NULL;
	}
	if (db->ncache < CAT_STMT_CACHE) {
		db->cache[db->ncache].sql = sql;
		db->cache[db->ncache].st = st;
		db->ncache++;
	} else {
		/* evict the oldest entry; statements are cheap to prepare again */
		sqlite3_finalize(db->cache[0].st);
		memmove(&db->cache[0], &db->cache[1], sizeof(db->cache[0]) * (CAT_STMT_CACHE - 1));
		db->cache[CAT_STMT_CACHE - 1].sql = sql;
		db->cache[CAT_STMT_CACHE - 1].st = st;
	}
	return st;
}

enum dm_status cat_kv_rows(struct cat_db *db, sqlite3_stmt *st, cat_kv_cb cb, void *ud,
			   const char *what)
{
	int r;

	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		if (cb(ud, cat_col_text(st, 0), cat_col_text(st, 1)))
			break;
	sqlite3_reset(st);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return cat_dberr(db, what);
	return DM_OK;
}

enum dm_status cat_exec(struct cat_db *db, const char *sql)
{
	char *msg = NULL;

	if (!db->db)
		return cat_remote_unsupported(db, NULL);
	if (sqlite3_exec(db->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int code = sqlite3_errcode(db->db) & 0xff;
		enum dm_status rc = DM_EINTERNAL;

		if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
			rc = cat_corrupt(db, "running a statement", msg ? msg : "exec failed");
		else
			cat_fail(db, DM_EINTERNAL, "DatabaseException", "%s", msg ? msg : "exec failed");
		sqlite3_free(msg);
		return rc;
	}
	return DM_OK;
}

static enum dm_status os_refuse_readonly(struct cat_db *db);

enum dm_status cat_tx_begin(struct cat_db *db)
{
	if (!db->db)
		return cat_remote_unsupported(db, NULL);
	if (db->os_readonly)
		return os_refuse_readonly(db);
	if (db->corrupt)
		return cat_fail(db, DM_EIO, "DatabaseException",
				"the catalog file %s is damaged; refusing to write to it"
				" (run 'didfs check')", db->path ? db->path : "(unknown)");
	if (db->tx_depth++ > 0)
		return DM_OK;
	if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		db->tx_depth = 0;
		return cat_dberr(db, "starting a transaction");
	}
	return DM_OK;
}

enum dm_status cat_tx_end(struct cat_db *db, enum dm_status rc)
{
	if (db->tx_depth <= 0)
		DM_BUG("transaction end without begin");
	if (--db->tx_depth > 0)
		return rc;
	if (rc == DM_OK) {
		if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			rc = cat_dberr(db, "committing");
			sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
		}
	} else {
		struct dm_err keep = db->err;
		sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
		db->err = keep;
	}
	return rc;
}

/* didfs_hash(text): FNV-1a, for splitting work between daemon instances
 * (Rucio partitions on a hash of the id or name). */
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

/* ---- who may act as whom (the embedded mode's door) ----
 * The catalog file's owner and root may act as any account (they can write
 * the file anyway).  Any other OS user acts only as the accounts mapped to
 * its user name by a LOCAL identity (cat_identity_add_local), by default
 * the first of them; a user with no mapping may only read. */
static enum dm_status os_caller(struct cat_db *db)
{
	unsigned owner = 0;
	struct passwd pw, *pwp = NULL;
	char pwbuf[1024];
	uid_t uid = geteuid();
	sqlite3_stmt *st;
	int r;

	db->os_uid = (unsigned)uid;
	if (getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &pwp) == 0 && pwp)
		dm_strlcpy(db->os_user, pwp->pw_name, sizeof db->os_user);
	else
		snprintf(db->os_user, sizeof db->os_user, "%u", (unsigned)uid);
	if (uid == 0 || (db->ops->os_owner(db, &owner) == 0 && owner == (unsigned)uid)) {
		db->os_trusted = 1;
		return DM_OK;
	}
	st = cat_stmt(db, "SELECT account FROM account_map WHERE identity=? AND identity_type='LOCAL'"
			  " ORDER BY is_default DESC, account LIMIT 1");
	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, db->os_user, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		dm_strlcpy(db->issuer, cat_col_text(st, 0), sizeof db->issuer);
	} else {
		db->os_readonly = 1;
	}
	sqlite3_reset(st);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return cat_dberr(db, "looking up the caller's account");
	return DM_OK;
}

static enum dm_status os_refuse_readonly(struct cat_db *db)
{
	return cat_fail(db, DM_EPERM, "AccessDenied",
			"OS user %s (uid %u) may only read the catalog %s: it neither owns the file"
			" nor is mapped to an account (the owner maps it with 'didfs add-identity"
			" ACCOUNT --type local --identity %s')",
			db->os_user, db->os_uid, db->path, db->os_user);
}

/* A WAL catalog can be read without write access only while its -wal and
 * -shm files exist, or where they can be created.  Where neither holds (a
 * reader of another user's catalog in a directory it cannot write, with no
 * writer running: the -wal file is removed by the last connection, so there
 * is nothing uncheckpointed), open it immutable: SQLite reads the file
 * as it is, without the shared-memory index. */
static void readonly_fallback(struct cat_db *db)
{
	static const char hex[] = "0123456789ABCDEF";
	struct dm_buf uri = DM_BUF_INIT;
	sqlite3 *alt = NULL;
	int rc = sqlite3_exec(db->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);

	if (rc == SQLITE_OK || ((rc & 0xff) != SQLITE_READONLY && (rc & 0xff) != SQLITE_CANTOPEN))
		return;
	dm_buf_adds(&uri, "file:");
	for (const unsigned char *p = (const unsigned char *)db->path; *p; p++) {
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
		sqlite3_close(db->db);
		db->db = alt;
	} else {
		sqlite3_close(alt);
	}
	dm_buf_release(&uri);
}

/* ---- the SQLite store's operations (catalog_i.h, struct cat_store_ops) ---- */

static void sqlite_close(struct cat_db *db)
{
	for (int i = 0; i < db->ncache; i++)
		sqlite3_finalize(db->cache[i].st);
	sqlite3_close(db->db);
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
		    (int)DM_ARRAY_SIZE(migrations));
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
	.os_owner = sqlite_os_owner,
};

enum dm_status cat_sqlite_open(const char *path, unsigned flags, struct cat_db **out,
			       struct dm_err *err)
{
	char abs[PATH_MAX];

	struct cat_db *db;
	int oflags = SQLITE_OPEN_NOMUTEX;
	enum dm_status rc;

	*out = NULL;
	pthread_once(&sqlite_once, sqlite_setup);
	/* A catalog this process may read but not write is opened read-only
	 * (no WAL set-up, no migrations): listings work, writes are refused. */
	if (!(flags & CAT_OPEN_CREATE) && eaccess(path, F_OK) == 0 && eaccess(path, W_OK) != 0)
		flags |= CAT_OPEN_READONLY;
	if (flags & CAT_OPEN_READONLY)
		oflags |= SQLITE_OPEN_READONLY;
	else
		oflags |= SQLITE_OPEN_READWRITE | ((flags & CAT_OPEN_CREATE) ? SQLITE_OPEN_CREATE : 0);
	db = dm_xcalloc(1, sizeof *db);
	db->ops = &sqlite_ops;
	db->path = dm_xstrdup(path);
	db->issuer_admin = -1;
	dm_strlcpy(db->issuer, "root", sizeof db->issuer);
	if (sqlite3_open_v2(path, &db->db, oflags, NULL) != SQLITE_OK) {
		dm_seterr(err, DM_ENOENT, "DatabaseException", "cannot open catalog '%s': %s%s",
			  path, db->db ? sqlite3_errmsg(db->db) : "out of memory",
			  (flags & CAT_OPEN_CREATE) ? "" : " (run 'didfs init' first)");
		sqlite3_close(db->db);
		free(db->path);
		free(db->abs_path);
		free(db);
		return DM_ENOENT;
	}
	if (realpath(path, abs))
		db->abs_path = dm_xstrdup(abs);
	if (flags & CAT_OPEN_READONLY)
		readonly_fallback(db);
	/* Writers wait for each other with SQLite's back-off (sleeps growing
	 * from 1 ms to 100 ms) up to the busy timeout, then fail with a clear
	 * "catalog is busy" (DM_AGAIN).  No command holds a write transaction
	 * across storage I/O or hashing, so waits are short. */
	db->busy_ms = dm_busy_timeout_s() * 1000;
	sqlite3_busy_timeout(db->db, db->busy_ms);
	sqlite3_create_function(db->db, "didfs_hash", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				sql_hash, NULL, NULL);
	sqlite3_extended_result_codes(db->db, 0);
	/* A small page cache per handle (a daemon holds one per thread, the
	 * mount one per worker) and temporary b-trees (sorts, GROUP BY over
	 * a million replicas) on disk, so memory does not grow with the
	 * catalog; bulk registration raises the cache for its transaction. */
	rc = cat_exec(db, "PRAGMA foreign_keys=ON; PRAGMA cache_size=-" DM_STR(CAT_CACHE_KIB) ";"
			  "PRAGMA temp_store=FILE");
	if (rc == DM_OK && !(flags & CAT_OPEN_READONLY))
		rc = cat_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
	if (rc == DM_OK && !(flags & CAT_OPEN_READONLY)) {
		/* A file that is not a catalog at all is refused, not overwritten. */
		sqlite3_stmt *st = cat_stmt(db, "SELECT count(*) FROM sqlite_master");
		int foreign = 0, version = 0;
		if (!st) {
			rc = db->err.code;
		} else {
			if (sqlite3_step(st) == SQLITE_ROW)
				foreign = sqlite3_column_int(st, 0);
			sqlite3_reset(st);
			st = cat_stmt(db, "PRAGMA user_version");
			if (st && sqlite3_step(st) == SQLITE_ROW)
				version = sqlite3_column_int(st, 0);
			if (st)
				sqlite3_reset(st);
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
		rc = os_caller(db);
	if (rc) {
		if (err)
			*err = db->err;
		cat_close(db);
		return rc;
	}
	*out = db;
	return DM_OK;
}

/* ------------------------------------------------------------------ */
/* validation                                                          */

static int match_set(const char *s, const char *extra, int lower, int upper, int digits)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((lower && islower(c)) || (upper && isupper(c)) || (digits && isdigit(c)) ||
		    (c && strchr(extra, c)))
			continue;
		return 0;
	}
	return 1;
}

enum dm_status cat_validate_scope(const char *s, struct dm_err *err)
{
	if (!s || !*s || strlen(s) > CAT_SCOPE_MAX || !match_set(s, "_-.", 1, 1, 1))
		return dm_seterr(err, DM_EINVAL, "InvalidObject",
				 "invalid scope '%s': must match ^[a-zA-Z_\\-.0-9]+$ and be at most %d characters",
				 s ? s : "", CAT_SCOPE_MAX);
	return DM_OK;
}

enum dm_status cat_validate_name(const char *s, struct dm_err *err)
{
	if (!s || !*s || strlen(s) > CAT_NAME_MAX || !match_set(s, "/.-_", 1, 1, 1) ||
	    *s == '.' || *s == '-' || *s == '_')
		return dm_seterr(err, DM_EINVAL, "InvalidObject",
				 "invalid name '%s': must match ^[/A-Za-z0-9][/A-Za-z0-9\\.\\-_]*$ and be at most %d characters",
				 s ? s : "", CAT_NAME_MAX);
	return DM_OK;
}

enum dm_status cat_validate_account(const char *s, struct dm_err *err)
{
	if (!s || !*s || strlen(s) > CAT_ACCOUNT_MAX || !match_set(s, "-_", 1, 0, 1))
		return dm_seterr(err, DM_EINVAL, "InvalidObject",
				 "invalid account '%s': must match ^[a-z0-9-_]+$ and be at most %d characters",
				 s ? s : "", CAT_ACCOUNT_MAX);
	return DM_OK;
}

enum dm_status cat_validate_rse(const char *s, struct dm_err *err)
{
	/* ^([A-Z0-9]+([_-][A-Z0-9]+)*)$ */
	const char *p = s;
	int in_word = 0;

	if (!s || !*s || strlen(s) > CAT_RSE_MAX)
		goto bad;
	for (; *p; p++) {
		if (isupper((unsigned char)*p) || isdigit((unsigned char)*p)) {
			in_word = 1;
		} else if ((*p == '_' || *p == '-') && in_word) {
			in_word = 0;
		} else {
			goto bad;
		}
	}
	if (in_word)
		return DM_OK;
bad:
	return dm_seterr(err, DM_EINVAL, "InvalidObject",
			 "invalid RSE name '%s': must match ^([A-Z0-9]+([_-][A-Z0-9]+)*)$ (upper case)",
			 s ? s : "");
}

enum dm_status cat_validate_adler32(const char *s, struct dm_err *err)
{
	if (!s || strlen(s) != 8 || !dm_is_hex(s, 8))
		return dm_seterr(err, DM_EINVAL, "InvalidObject",
				 "invalid adler32 '%s': must be 8 hexadecimal digits", s ? s : "");
	return DM_OK;
}

enum dm_status cat_validate_md5(const char *s, struct dm_err *err)
{
	if (!s || strlen(s) != 32 || !dm_is_hex(s, 32))
		return dm_seterr(err, DM_EINVAL, "InvalidObject",
				 "invalid md5 '%s': must be 32 hexadecimal digits", s ? s : "");
	return DM_OK;
}

enum dm_status cat_parse_did(const char *did, char *scope, char *name, struct dm_err *err)
{
	const char *colon = did ? strchr(did, ':') : NULL;
	size_t sl;
	enum dm_status rc;

	if (!colon)
		return dm_seterr(err, DM_EINVAL, "InvalidObject",
				 "invalid DID '%s': expected scope:name", did ? did : "");
	sl = (size_t)(colon - did);
	if (sl == 0 || sl > CAT_SCOPE_MAX)
		return dm_seterr(err, DM_EINVAL, "InvalidObject",
				 "invalid DID '%s': the scope must be 1 to %d characters",
				 did, CAT_SCOPE_MAX);
	memcpy(scope, did, sl);
	scope[sl] = 0;
	rc = cat_validate_scope(scope, err);
	if (rc)
		return rc;
	rc = cat_validate_name(colon + 1, err);
	if (rc)
		return rc;
	dm_strlcpy(name, colon + 1, CAT_NAME_MAX + 1);
	return DM_OK;
}

/* ------------------------------------------------------------------ */
/* issuer and permissions                                              */

enum dm_status cat_set_issuer(struct cat_db *db, const char *account)
{
	CAT_REMOTE(db, set_issuer, account);
	enum dm_status rc;
	struct dm_err e;

	rc = cat_validate_account(account, &e);
	if (rc) {
		db->err = e;
		return rc;
	}
	rc = cat_account_check(db, account);
	if (rc)
		return rc;
	if (!db->os_trusted && !db->os_readonly) {
		sqlite3_stmt *st = cat_stmt(db, "SELECT 1 FROM account_map WHERE identity=?"
					    " AND identity_type='LOCAL' AND account=?");
		int r;

		if (!st)
			return db->err.code;
		sqlite3_bind_text(st, 1, db->os_user, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
		r = sqlite3_step(st);
		sqlite3_reset(st);
		if (r != SQLITE_ROW && r != SQLITE_DONE)
			return cat_dberr(db, "checking the caller's accounts");
		if (r != SQLITE_ROW)
			return cat_fail(db, DM_EPERM, "AccessDenied",
					"OS user %s (uid %u) may not act as account %s: only the"
					" catalog file's owner and root act as any account, others as"
					" the accounts mapped to them", db->os_user, db->os_uid, account);
	} else if (db->os_readonly && strcmp(account, db->issuer)) {
		/* an unmapped reader keeps the default issuer; asking for
		 * another account is asking to act as it */
		return os_refuse_readonly(db);
	}
	dm_strlcpy(db->issuer, account, sizeof db->issuer);
	db->issuer_admin = -1;
	return DM_OK;
}

const char *cat_issuer(const struct cat_db *db)
{
	return db->issuer;
}

int cat_issuer_is_admin(struct cat_db *db)
{
	if (db->issuer_admin < 0) {
		int r = cat_account_has_attr(db, db->issuer, "admin");
		if (r < 0)
			return 0;
		db->issuer_admin = r || strcmp(db->issuer, "root") == 0;
	}
	return db->issuer_admin;
}

enum dm_status cat_require_admin(struct cat_db *db, const char *what)
{
	if (cat_issuer_is_admin(db))
		return DM_OK;
	return cat_fail(db, DM_EPERM, "AccessDenied", "Account %s can not %s (needs the admin attribute)",
			db->issuer, what);
}

enum dm_status cat_require_scope_owner(struct cat_db *db, const char *scope, const char *what)
{
	char owner[CAT_ACCOUNT_MAX + 1];
	enum dm_status rc = cat_scope_check(db, scope, owner);

	if (rc)
		return rc;
	if (strcmp(owner, db->issuer) == 0 || cat_issuer_is_admin(db))
		return DM_OK;
	return cat_fail(db, DM_EPERM, "AccessDenied",
			"Account %s can not %s in scope %s (owned by %s)", db->issuer, what, scope,
			owner);
}

/* ------------------------------------------------------------------ */
/* accounts                                                            */

static const char *const account_type_names[] = { "USER", "GROUP", "SERVICE" };

const char *cat_account_type_name(enum cat_account_type t)
{
	return (unsigned)t < DM_ARRAY_SIZE(account_type_names) ? account_type_names[t] : "?";
}

int cat_account_type_parse(const char *s, enum cat_account_type *t)
{
	for (unsigned i = 0; i < DM_ARRAY_SIZE(account_type_names); i++) {
		if (s && strcasecmp(s, account_type_names[i]) == 0) {
			*t = (enum cat_account_type)i;
			return 0;
		}
	}
	return -1;
}

enum dm_status cat_account_check(struct cat_db *db, const char *account)
{
	sqlite3_stmt *st = cat_stmt(db, "SELECT status FROM accounts WHERE account=?");
	int r;

	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		int deleted = strcmp(cat_col_text(st, 0), "DELETED") == 0;
		sqlite3_reset(st);
		if (!deleted)
			return DM_OK;
	} else {
		sqlite3_reset(st);
		if (r != SQLITE_DONE)
			return cat_dberr(db, "looking up an account");
	}
	return cat_fail(db, DM_ENOENT, "AccountNotFound", "Account '%s' does not exist", account);
}

static enum dm_status account_add_locked(struct cat_db *db, const char *account,
					 enum cat_account_type type, const char *email)
{
	sqlite3_stmt *st;
	int64_t now = dm_now();

	st = cat_stmt(db, "INSERT INTO accounts(account, account_type, email, created_at, updated_at)"
			  " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING");
	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, cat_account_type_name(type), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, email ? email : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		return cat_dberr(db, "adding an account");
	if (sqlite3_changes(db->db) == 0)
		return cat_fail(db, DM_EEXIST, "Duplicate", "Account ID '%s' already exists", account);
	return DM_OK;
}

enum dm_status cat_account_add(struct cat_db *db, const char *account,
			       enum cat_account_type type, const char *email)
{
	enum dm_status rc;
	struct dm_err e;

	rc = cat_validate_account(account, &e);
	if (rc) {
		db->err = e;
		return rc;
	}
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "add accounts");
	if (rc == DM_OK)
		rc = account_add_locked(db, account, type, email);
	return cat_tx_end(db, rc);
}

static enum dm_status account_rows(struct cat_db *db, sqlite3_stmt *st, cat_account_cb cb,
				   void *ud, int *count)
{
	int r;

	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		struct cat_account a = { 0 };
		a.account = cat_col_text(st, 0);
		if (cat_account_type_parse(cat_col_text(st, 1), &a.type))
			a.type = CAT_ACCOUNT_USER;
		a.status = cat_col_text(st, 2);
		a.email = cat_col_text(st, 3);
		a.created_at = sqlite3_column_int64(st, 4);
		if (count)
			(*count)++;
		if (cb(ud, &a))
			break;
	}
	sqlite3_reset(st);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return cat_dberr(db, "listing accounts");
	return DM_OK;
}

enum dm_status cat_account_get(struct cat_db *db, const char *account, cat_account_cb cb,
			       void *ud)
{
	CAT_REMOTE(db, account_get, account, cb, ud);
	sqlite3_stmt *st = cat_stmt(db, "SELECT account, account_type, status, email, created_at"
				       " FROM accounts WHERE account=?");
	int n = 0;
	enum dm_status rc;

	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	rc = account_rows(db, st, cb, ud, &n);
	if (rc == DM_OK && n == 0)
		rc = cat_fail(db, DM_ENOENT, "AccountNotFound", "Account '%s' does not exist", account);
	return rc;
}

enum dm_status cat_account_list(struct cat_db *db, cat_account_cb cb, void *ud)
{
	sqlite3_stmt *st = cat_stmt(db, "SELECT account, account_type, status, email, created_at"
				       " FROM accounts WHERE status != 'DELETED' ORDER BY account");
	if (!st)
		return db->err.code;
	return account_rows(db, st, cb, ud, NULL);
}

static enum dm_status validate_attr_key(struct cat_db *db, const char *key)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 || n > 30 || !match_set(key, "-_/.", 1, 1, 1))
		return cat_fail(db, DM_EINVAL, "InvalidObject",
				"invalid attribute key '%s': must match ^[a-zA-Z0-9-_\\/\\.]{1,30}$",
				key ? key : "");
	return DM_OK;
}

enum dm_status cat_account_attr_set(struct cat_db *db, const char *account, const char *key,
				    const char *value)
{
	enum dm_status rc = validate_attr_key(db, key);
	sqlite3_stmt *st;

	if (rc)
		return rc;
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "set account attributes");
	if (rc == DM_OK)
		rc = cat_account_check(db, account);
	if (rc == DM_OK) {
		st = cat_stmt(db, "INSERT INTO account_attr_map(account, key, value) VALUES (?,?,?)"
				  " ON CONFLICT DO NOTHING");
		if (!st) {
			rc = db->err.code;
		} else {
			sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, value ? value : "", -1, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = cat_dberr(db, "setting an account attribute");
			else if (sqlite3_changes(db->db) == 0)
				rc = cat_fail(db, DM_EEXIST, "Duplicate",
					      "Attribute '%s' of account '%s' already exists", key, account);
		}
	}
	db->issuer_admin = -1;
	return cat_tx_end(db, rc);
}

enum dm_status cat_account_attr_del(struct cat_db *db, const char *account, const char *key)
{
	enum dm_status rc = cat_tx_begin(db);
	sqlite3_stmt *st;

	if (rc)
		return rc;
	rc = cat_require_admin(db, "delete account attributes");
	if (rc == DM_OK && (st = cat_stmt(db, "DELETE FROM account_attr_map WHERE account=? AND key=?"))) {
		sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = cat_dberr(db, "deleting an account attribute");
		else if (sqlite3_changes(db->db) == 0)
			rc = cat_fail(db, DM_ENOENT, "AccountNotFound",
				      "Attribute '%s' of account '%s' does not exist", key, account);
	} else if (rc == DM_OK) {
		rc = db->err.code;
	}
	db->issuer_admin = -1;
	return cat_tx_end(db, rc);
}

enum dm_status cat_account_attr_list(struct cat_db *db, const char *account, cat_kv_cb cb,
				     void *ud)
{
	enum dm_status rc = cat_account_check(db, account);
	sqlite3_stmt *st;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT key, value FROM account_attr_map WHERE account=? ORDER BY key");
	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	return cat_kv_rows(db, st, cb, ud, "listing account attributes");
}

int cat_account_has_attr(struct cat_db *db, const char *account, const char *key)
{
	sqlite3_stmt *st = cat_stmt(db, "SELECT 1 FROM account_attr_map WHERE account=? AND key=?");
	int r;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return 1;
	return r == SQLITE_DONE ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* identities                                                          */

static enum dm_status identity_add_locked(struct cat_db *db, const char *account,
					  const char *username, const char *password,
					  const char *email)
{
	unsigned char salt[255];
	char salthex[511], hash[65];
	sqlite3_stmt *st;

	if (dm_random_bytes(salt, sizeof salt))
		return cat_fail(db, DM_EINTERNAL, "RucioException", "no random bytes for the salt");
	/* Rucio hashes sha256(salt || password) where salt is the stored value;
	 * we store the salt as hex text and hash over that text, which keeps the
	 * row portable between SQLite and PostgreSQL. */
	for (size_t i = 0; i < sizeof salt; i++)
		snprintf(salthex + 2 * i, 3, "%02x", salt[i]);
	dm_sha256_hex2(salthex, strlen(salthex), password, strlen(password), hash);
	st = cat_stmt(db, "INSERT INTO identities(identity, identity_type, username, password, salt,"
			  " email, created_at) VALUES (?, 'USERPASS', ?, ?, ?, ?, ?)"
			  " ON CONFLICT DO NOTHING");
	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, username, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, salthex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, email ? email : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, dm_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		return cat_dberr(db, "adding an identity");
	if (sqlite3_changes(db->db) == 0)
		return cat_fail(db, DM_EEXIST, "Duplicate", "Identity '%s' of type USERPASS already exists",
				username);
	st = cat_stmt(db, "INSERT INTO account_map(identity, identity_type, account, is_default)"
			  " VALUES (?, 'USERPASS', ?, 1)");
	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return cat_dberr(db, "mapping an identity");
	return DM_OK;
}

enum dm_status cat_identity_add_userpass(struct cat_db *db, const char *account,
					 const char *username, const char *password,
					 const char *email)
{
	enum dm_status rc;

	if (!username || !*username || !password || !*password)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "username and password must not be empty");
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "add identities");
	if (rc == DM_OK)
		rc = cat_account_check(db, account);
	if (rc == DM_OK)
		rc = identity_add_locked(db, account, username, password, email);
	return cat_tx_end(db, rc);
}

enum dm_status cat_identity_check_userpass(struct cat_db *db, const char *username,
					   const char *password, char *account)
{
	sqlite3_stmt *st = cat_stmt(db, "SELECT i.password, i.salt, m.account FROM identities i"
				       " JOIN account_map m ON m.identity=i.identity AND"
				       " m.identity_type=i.identity_type"
				       " WHERE i.identity=? AND i.identity_type='USERPASS'"
				       " ORDER BY m.is_default DESC LIMIT 1");
	enum dm_status rc = DM_OK;
	char hash[65];

	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = cat_fail(db, DM_EPERM, "CannotAuthenticate", "Cannot authenticate with given credentials");
		goto out;
	}
	dm_sha256_hex2(cat_col_text(st, 1), (size_t)sqlite3_column_bytes(st, 1), password,
		       strlen(password), hash);
	if (strcmp(hash, cat_col_text(st, 0)) != 0) {
		rc = cat_fail(db, DM_EPERM, "CannotAuthenticate", "Cannot authenticate with given credentials");
		goto out;
	}
	dm_strlcpy(account, cat_col_text(st, 2), CAT_ACCOUNT_MAX + 1);
out:
	sqlite3_reset(st);
	return rc;
}

enum dm_status cat_identity_map(struct cat_db *db, const char *account, const char *identity,
				const char *type, const char *email, int is_default)
{
	enum dm_status rc = cat_tx_begin(db);
	sqlite3_stmt *st;

	if (rc)
		return rc;
	rc = cat_require_admin(db, "add identities");
	if (!rc)
		rc = cat_account_check(db, account);
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO identities(identity, identity_type, email, created_at)"
			  " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, email ? email : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, dm_now());
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = cat_dberr(db, "adding an identity");
		goto out;
	}
	/* is_default < 0: default only when it is the identity's first account */
	st = cat_stmt(db, "INSERT INTO account_map(identity, identity_type, account, is_default)"
			  " VALUES (?1, ?2, ?3, CASE WHEN ?4 >= 0 THEN ?4 ELSE NOT EXISTS (SELECT 1"
			  " FROM account_map WHERE identity=?1 AND identity_type=?2) END)"
			  " ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, account, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, is_default);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = cat_dberr(db, "mapping an identity");
	else if (sqlite3_changes(db->db) == 0)
		rc = cat_fail(db, DM_EEXIST, "Duplicate",
			      "Identity '%s' of type %s is already mapped to account %s", identity, type,
			      account);
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_identity_add_local(struct cat_db *db, const char *account,
				      const char *os_user)
{
	size_t n = os_user ? strlen(os_user) : 0;

	if (n == 0 || n >= sizeof db->os_user || strpbrk(os_user, ":/ \t\n"))
		return cat_fail(db, DM_EINVAL, "InputValidationError",
				"'%s' is not an OS user name", os_user ? os_user : "");
	return cat_identity_map(db, account, os_user, "LOCAL", NULL, -1);
}

/* ------------------------------------------------------------------ */
/* bootstrap                                                           */

enum dm_status cat_bootstrap(struct cat_db *db, const char *root_user, const char *root_password)
{
	enum dm_status rc = cat_tx_begin(db);
	sqlite3_stmt *st;

	if (rc)
		return rc;
	if (cat_account_check(db, "root") == DM_OK) {
		rc = cat_fail(db, DM_EEXIST, "Duplicate", "the catalog is already bootstrapped (account root exists)");
		goto out;
	}
	rc = account_add_locked(db, "root", CAT_ACCOUNT_SERVICE, "root@localhost");
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO account_attr_map(account, key, value) VALUES ('root','admin','true')");
	if (!st || sqlite3_step(st) != SQLITE_DONE) {
		rc = st ? cat_dberr(db, "bootstrap") : db->err.code;
		goto out;
	}
	/* No fixed default password: without one, root gets no userpass
	 * identity (the CLI's init generates a password when none is given). */
	if (root_password)
		rc = identity_add_locked(db, "root", root_user ? root_user : "ddmlab",
					 root_password, "root@localhost");
out:
	return cat_tx_end(db, rc);
}

/* ------------------------------------------------------------------ */
/* scopes                                                              */

enum dm_status cat_scope_check(struct cat_db *db, const char *scope, char *owner)
{
	sqlite3_stmt *st = cat_stmt(db, "SELECT account FROM scopes WHERE scope=? AND status!='DELETED'");
	int r;

	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW && owner)
		dm_strlcpy(owner, cat_col_text(st, 0), CAT_ACCOUNT_MAX + 1);
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return DM_OK;
	if (r != SQLITE_DONE)
		return cat_dberr(db, "looking up a scope");
	return cat_fail(db, DM_ENOENT, "ScopeNotFound", "Scope '%s' does not exist", scope);
}

enum dm_status cat_scope_add(struct cat_db *db, const char *scope, const char *account)
{
	struct dm_err e;
	enum dm_status rc = cat_validate_scope(scope, &e);
	sqlite3_stmt *st;

	if (rc) {
		db->err = e;
		return rc;
	}
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "add scopes");
	if (rc == DM_OK)
		rc = cat_account_check(db, account);
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO scopes(scope, account, created_at) VALUES (?,?,?)"
			  " ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, dm_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = cat_dberr(db, "adding a scope");
	else if (sqlite3_changes(db->db) == 0)
		rc = cat_fail(db, DM_EEXIST, "Duplicate", "Scope '%s' already exists", scope);
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_scope_list(struct cat_db *db, const char *account, cat_scope_cb cb, void *ud)
{
	CAT_REMOTE(db, scope_list, account, cb, ud);
	sqlite3_stmt *st;

	if (account) {
		enum dm_status rc = cat_account_check(db, account);
		if (rc)
			return rc;
		st = cat_stmt(db, "SELECT scope, account FROM scopes WHERE status!='DELETED'"
				  " AND account=? ORDER BY scope");
	} else {
		st = cat_stmt(db, "SELECT scope, account FROM scopes WHERE status!='DELETED'"
				  " ORDER BY scope");
	}
	if (!st)
		return db->err.code;
	if (account)
		sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	return cat_kv_rows(db, st, cb, ud, "listing scopes");
}
