/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cache.c - the REST catalog's local catalog cache (cache.h): its own
 * SQLite schema in one file per server URL.
 *
 *   meta(key, value)            schema version and the server URL
 *   dids(id, scope, name, ...)  a DID's fields, negative (1: "not found"),
 *                               full (1: from GET /dids/<s>/<n>, 0: a
 *                               listing row), fill_at, used_at
 *   lists(pid, kind, fill_at, used_at, scope, name)   a complete listing of pid
 *   members(pid, kind, pos, cid)         its members in the server's order
 *   reps(fid, rse, state, pfn, ...)      a file's replicas (every state) with
 *                                        the server's best PFN per RSE
 *   rep_fill(did, is_file, fill_at)      whose replicas were listed when
 * A scope's roots have pid = cat_rest_did_id(scope, "").
 */
#include "cache.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CACHE_SCHEMA 1
#define LONG_TTL 86400.0

#define CACHE_STMTS 32
struct rest_cache {
	sqlite3 *db;
	struct { const char *sql; sqlite3_stmt *st; } stmts[CACHE_STMTS];
	int nstmts;
	char *path;
	uint64_t limit;
	double ttl;
	uint64_t hits, misses, fills;
	/* row strings of the last DID handed out */
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1], account[CAT_ACCOUNT_MAX + 1];
	char adler32[16], md5[40], availability[32];
};

struct rest_rep_fill {
	struct rest_cache *c;
	int64_t last;
	int failed;
};

struct rest_fill {
	struct rest_cache *c;
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	int64_t pid;
	int kind;
	int64_t pos;
	int failed;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384;"
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
	"CREATE TABLE IF NOT EXISTS dids(id INTEGER PRIMARY KEY, scope TEXT NOT NULL,"
	" name TEXT NOT NULL, type INTEGER, account TEXT, is_open INTEGER, monotonic INTEGER,"
	" bytes INTEGER, length INTEGER, adler32 TEXT, md5 TEXT, created_at INTEGER,"
	" updated_at INTEGER, expired_at INTEGER, closed_at INTEGER, availability TEXT,"
	" negative INTEGER NOT NULL DEFAULT 0, full INTEGER NOT NULL DEFAULT 0,"
	" fill_at REAL NOT NULL, used_at REAL NOT NULL);"
	"CREATE INDEX IF NOT EXISTS dids_used ON dids(used_at);"
	"CREATE TABLE IF NOT EXISTS lists(pid INTEGER, kind INTEGER, fill_at REAL NOT NULL,"
	" used_at REAL NOT NULL, scope TEXT, name TEXT, PRIMARY KEY(pid, kind));"
	"CREATE TABLE IF NOT EXISTS members(pid INTEGER, kind INTEGER, pos INTEGER, cid INTEGER,"
	" PRIMARY KEY(pid, kind, pos));"
	"CREATE INDEX IF NOT EXISTS members_cid ON members(cid);"
	"CREATE TABLE IF NOT EXISTS reps(fid INTEGER, rse TEXT, state INTEGER, pfn TEXT,"
	" rse_id TEXT, bytes INTEGER, adler32 TEXT, md5 TEXT, scope TEXT, name TEXT,"
	" PRIMARY KEY(fid, rse));"
	"CREATE TABLE IF NOT EXISTS rep_fill(did INTEGER PRIMARY KEY, is_file INTEGER,"
	" fill_at REAL NOT NULL);";

static double now_f(void)
{
	return dm_now_f();
}

static int exec(struct rest_cache *c, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		dm_log(DM_LOG_WARN, "rest-cache", "%s: %s", c->path, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* A prepared statement for a static SQL string, kept for the handle's
 * life (static strings only: their address is the key); callers "finalize"
 * with done(), which resets it. */
static sqlite3_stmt *prep(struct rest_cache *c, const char *sql)
{
	sqlite3_stmt *st = NULL;

	for (int i = 0; i < c->nstmts; i++)
		if (c->stmts[i].sql == sql)
			return c->stmts[i].st;
	if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		dm_log(DM_LOG_WARN, "rest-cache", "%s: %s", c->path, sqlite3_errmsg(c->db));
		return NULL;
	}
	if (c->nstmts < CACHE_STMTS) {
		c->stmts[c->nstmts].sql = sql;
		c->stmts[c->nstmts].st = st;
		c->nstmts++;
	}
	return st;
}

/* A statement of its own, for loops that call back into the caller (who
 * may use the cache again); finalized by done(). */
static sqlite3_stmt *prep_own(struct rest_cache *c, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		dm_log(DM_LOG_WARN, "rest-cache", "%s: %s", c->path, sqlite3_errmsg(c->db));
		return NULL;
	}
	return st;
}

static void done(struct rest_cache *c, sqlite3_stmt *st)
{
	for (int i = 0; i < c->nstmts; i++)
		if (c->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	sqlite3_finalize(st);
}

enum dm_status rest_cache_open_at(const char *path, const char *url, uint64_t limit, double ttl,
				  struct rest_cache **out, struct dm_err *err)
{
	struct rest_cache *c = dm_xcalloc(1, sizeof *c);
	sqlite3_stmt *st;
	int version = 0;

	*out = NULL;
	c->path = dm_xstrdup(path);
	c->limit = limit;
	c->ttl = ttl;
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		dm_seterr(err, DM_EIO, "DatabaseException", "catalog cache %s: %s", path,
			  c->db ? sqlite3_errmsg(c->db) : "out of memory");
		rest_cache_close(c);
		return DM_EIO;
	}
	sqlite3_busy_timeout(c->db, 5000);
	chmod(path, 0600);
	if (exec(c, schema)) {
		dm_seterr(err, DM_EIO, "DatabaseException", "catalog cache %s: %s (remove the file"
			  " to start afresh)", path, sqlite3_errmsg(c->db));
		rest_cache_close(c);
		return DM_EIO;
	}
	if ((st = prep(c, "SELECT value FROM meta WHERE key='schema'"))) {
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		done(c, st);
	}
	if (version != 0 && version != CACHE_SCHEMA) {
		dm_seterr(err, DM_EIO, "DatabaseException",
			  "catalog cache %s has schema %d, this didfs writes %d (remove the file)",
			  path, version, CACHE_SCHEMA);
		rest_cache_close(c);
		return DM_EIO;
	}
	if ((st = prep(c, "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?1),"
			  " ('server', ?2)"))) {
		sqlite3_bind_int(st, 1, CACHE_SCHEMA);
		sqlite3_bind_text(st, 2, url, -1, SQLITE_TRANSIENT);
		sqlite3_step(st);
		done(c, st);
	}
	*out = c;
	return DM_OK;
}

int64_t cat_rest_did_id(const char *scope, const char *name)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = scope; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ ':') * 1099511628211ull;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h &= INT64_MAX;
	return h ? (int64_t)h : 1;
}

enum dm_status rest_cache_open(const char *url, struct rest_cache **out, struct dm_err *err)
{
	const char *e = getenv("DIDFS_REST_CACHE");
	struct dm_buf dir = DM_BUF_INIT, path = DM_BUF_INIT;
	uint64_t limit = 256ull << 20;
	double ttl = 5;
	char hash[33];
	enum dm_status rc;
	struct dm_err tmp;

	*out = NULL;
	if (e && !strcmp(e, "off"))
		return DM_OK;
	if (getenv("DIDFS_REST_CACHE_SIZE") && *getenv("DIDFS_REST_CACHE_SIZE") &&
	    dm_parse_size(getenv("DIDFS_REST_CACHE_SIZE"), &limit))
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "$DIDFS_REST_CACHE_SIZE '%s' is not a size (e.g. 256M, 2G)",
				 getenv("DIDFS_REST_CACHE_SIZE"));
	if (getenv("DIDFS_REST_TTL") && *getenv("DIDFS_REST_TTL")) {
		char *end;
		ttl = strtod(getenv("DIDFS_REST_TTL"), &end);
		if (*end || !(ttl >= 0 && ttl <= 86400 * 365))
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "$DIDFS_REST_TTL '%s' is not a number of seconds",
					 getenv("DIDFS_REST_TTL"));
	}
	dm_md5_hex(url, strlen(url), hash);
	hash[16] = 0;
	if (e && *e) {
		dm_buf_adds(&path, e);
	} else {
		if ((e = getenv("DIDFS_CACHE_DIR")) && *e)
			dm_buf_adds(&dir, e);
		else if ((e = getenv("XDG_CACHE_HOME")) && *e)
			dm_buf_addf(&dir, "%s/didfs", e);
		else if ((e = getenv("HOME")) && *e)
			dm_buf_addf(&dir, "%s/.cache/didfs", e);
		else {
			dm_log(DM_LOG_WARN, "rest-cache", "no $HOME or cache directory: no catalog cache");
			return DM_OK;
		}
		if (dm_mkdir_p(dir.s, 0700)) {
			dm_log(DM_LOG_WARN, "rest-cache", "cannot create %s: %s; no catalog cache",
			       dir.s, strerror(errno));
			dm_buf_release(&dir);
			return DM_OK;
		}
		dm_buf_addf(&path, "%s/catalog-%s.db", dir.s, hash);
	}
	rc = rest_cache_open_at(path.s, url, limit, ttl, out, &tmp);
	if (rc)
		dm_log(DM_LOG_WARN, "rest-cache", "%s; working without a catalog cache", tmp.msg);
	dm_buf_release(&dir);
	dm_buf_release(&path);
	return DM_OK;
}

void rest_cache_close(struct rest_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nstmts; i++)
		sqlite3_finalize(c->stmts[i].st);
	sqlite3_close(c->db);
	free(c->path);
	free(c);
}

const char *rest_cache_path(const struct rest_cache *c)
{
	return c->path;
}

static double ttl_of(const struct rest_cache *c, int type, int is_open, int negative)
{
	if (negative || type != CAT_DID_FILE) {
		if (negative || is_open)
			return c->ttl;
	}
	return LONG_TTL;
}

#define DID_COLS "id, scope, name, type, account, is_open, monotonic, bytes, length, adler32," \
	" md5, created_at, updated_at, expired_at, closed_at, availability, negative, full," \
	" fill_at, used_at"

static void copy_col(sqlite3_stmt *st, int i, char *out, size_t n, const char **p)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	if (s) {
		dm_strlcpy(out, s, n);
		*p = out;
	} else {
		*p = NULL;
	}
}

static void row_did(struct rest_cache *c, sqlite3_stmt *st, struct cat_did *d)
{
	memset(d, 0, sizeof *d);
	d->id = sqlite3_column_int64(st, 0);
	copy_col(st, 1, c->scope, sizeof c->scope, &d->scope);
	copy_col(st, 2, c->name, sizeof c->name, &d->name);
	d->type = (enum cat_did_type)sqlite3_column_int(st, 3);
	copy_col(st, 4, c->account, sizeof c->account, &d->account);
	d->is_open = sqlite3_column_int(st, 5);
	d->monotonic = sqlite3_column_int(st, 6);
	d->bytes = (uint64_t)sqlite3_column_int64(st, 7);
	d->length = (uint64_t)sqlite3_column_int64(st, 8);
	copy_col(st, 9, c->adler32, sizeof c->adler32, &d->adler32);
	copy_col(st, 10, c->md5, sizeof c->md5, &d->md5);
	d->created_at = sqlite3_column_int64(st, 11);
	d->updated_at = sqlite3_column_int64(st, 12);
	d->expired_at = sqlite3_column_int64(st, 13);
	d->closed_at = sqlite3_column_int64(st, 14);
	copy_col(st, 15, c->availability, sizeof c->availability, &d->availability);
}

static void touch(struct rest_cache *c, const char *table, int64_t id, double used_at)
{
	static const char dids_sql[] = "UPDATE dids SET used_at=?1 WHERE id=?2";
	static const char lists_sql[] = "UPDATE lists SET used_at=?1 WHERE pid=?2";
	double now = now_f();
	sqlite3_stmt *st;

	if (now - used_at < 60)
		return;
	if ((st = prep(c, !strcmp(table, "dids") ? dids_sql : lists_sql))) {
		sqlite3_bind_double(st, 1, now);
		sqlite3_bind_int64(st, 2, id);
		sqlite3_step(st);
		done(c, st);
	}
}

int rest_cache_did_get(struct rest_cache *c, struct cat_db *db, const char *scope,
		       const char *name, cat_did_cb cb, void *ud, int stale_ok)
{
	sqlite3_stmt *st = prep(c, "SELECT " DID_COLS " FROM dids WHERE scope=?1 AND name=?2");
	int r = -1;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		int type = sqlite3_column_int(st, 3), neg = sqlite3_column_int(st, 16);
		int full = sqlite3_column_int(st, 17);
		double fill = sqlite3_column_double(st, 18), used = sqlite3_column_double(st, 19);
		int64_t id = sqlite3_column_int64(st, 0);
		int fresh = now_f() - fill < ttl_of(c, type, sqlite3_column_int(st, 5), neg);

		/* a collection needs its details (open, length); a file's listing row is enough */
		if ((fresh || stale_ok) && (neg || full || type == CAT_DID_FILE)) {
			if (neg) {
				r = 0;
			} else {
				struct cat_did d;
				row_did(c, st, &d);
				r = 1;
				done(c, st);
				st = NULL;
				touch(c, "dids", id, used);
				cb(ud, &d);
			}
		}
	}
	if (st)
		done(c, st);
	if (r >= 0)
		c->hits++;
	else
		c->misses++;
	return r;
}

static void put(struct rest_cache *c, const struct cat_did *d, int full, int negative)
{
	sqlite3_stmt *st;
	double now = now_f();

	/* a listing row does not overwrite a full entry's details */
	st = prep(c, "INSERT INTO dids(" DID_COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,"
		     "?13,?14,?15,?16,?17,?18,?19,?19) ON CONFLICT(id) DO UPDATE SET"
		     " scope=excluded.scope, name=excluded.name, type=excluded.type,"
		     " bytes=excluded.bytes, adler32=coalesce(excluded.adler32, adler32),"
		     " md5=coalesce(excluded.md5, md5), negative=excluded.negative,"
		     " fill_at=excluded.fill_at, used_at=excluded.used_at,"
		     " account=CASE WHEN excluded.full THEN excluded.account ELSE account END,"
		     " is_open=CASE WHEN excluded.full THEN excluded.is_open ELSE is_open END,"
		     " monotonic=CASE WHEN excluded.full THEN excluded.monotonic ELSE monotonic END,"
		     " length=CASE WHEN excluded.full THEN excluded.length ELSE length END,"
		     " created_at=CASE WHEN excluded.full THEN excluded.created_at ELSE created_at END,"
		     " updated_at=CASE WHEN excluded.full THEN excluded.updated_at ELSE updated_at END,"
		     " expired_at=CASE WHEN excluded.full THEN excluded.expired_at ELSE expired_at END,"
		     " closed_at=CASE WHEN excluded.full THEN excluded.closed_at ELSE closed_at END,"
		     " availability=CASE WHEN excluded.full THEN excluded.availability ELSE availability END,"
		     " full=CASE WHEN excluded.negative THEN 0 ELSE max(full, excluded.full) END");
	if (!st)
		return;
	sqlite3_bind_int64(st, 1, cat_rest_did_id(d->scope, d->name));
	sqlite3_bind_text(st, 2, d->scope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)d->type);
	sqlite3_bind_text(st, 5, d->account, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, d->is_open);
	sqlite3_bind_int(st, 7, d->monotonic);
	sqlite3_bind_int64(st, 8, (int64_t)d->bytes);
	sqlite3_bind_int64(st, 9, (int64_t)d->length);
	sqlite3_bind_text(st, 10, d->adler32, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, d->md5, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 12, d->created_at);
	sqlite3_bind_int64(st, 13, d->updated_at);
	sqlite3_bind_int64(st, 14, d->expired_at);
	sqlite3_bind_int64(st, 15, d->closed_at);
	sqlite3_bind_text(st, 16, d->availability, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 17, negative);
	sqlite3_bind_int(st, 18, full);
	sqlite3_bind_double(st, 19, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		dm_log(DM_LOG_WARN, "rest-cache", "%s: %s", c->path, sqlite3_errmsg(c->db));
	done(c, st);
}

static void evict(struct rest_cache *c)
{
	sqlite3_stmt *st = prep(c, "SELECT page_count * page_size FROM pragma_page_count(),"
				   " pragma_page_size()");
	int64_t bytes = 0, n = 0;

	if (!st)
		return;
	if (sqlite3_step(st) == SQLITE_ROW)
		bytes = sqlite3_column_int64(st, 0);
	done(c, st);
	if (!c->limit || (uint64_t)bytes <= c->limit)
		return;
	/* drop the least recently used quarter of DIDs and listings, then their members */
	if ((st = prep(c, "SELECT count(*) FROM dids"))) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		done(c, st);
	}
	if ((st = prep(c, "DELETE FROM dids WHERE id IN (SELECT id FROM dids ORDER BY used_at"
			  " LIMIT ?1)"))) {
		sqlite3_bind_int64(st, 1, n / 4 + 1);
		sqlite3_step(st);
		done(c, st);
	}
	exec(c, "DELETE FROM lists WHERE rowid IN (SELECT rowid FROM lists ORDER BY used_at LIMIT"
		" (SELECT count(*) / 4 + 1 FROM lists));"
		"DELETE FROM members WHERE NOT EXISTS (SELECT 1 FROM lists l WHERE"
		" l.pid=members.pid AND l.kind=members.kind);"
		"DELETE FROM lists WHERE EXISTS (SELECT 1 FROM members m WHERE m.pid=lists.pid AND"
		" m.kind=lists.kind AND NOT EXISTS (SELECT 1 FROM dids d WHERE d.id=m.cid));"
		"DELETE FROM members WHERE NOT EXISTS (SELECT 1 FROM lists l WHERE"
		" l.pid=members.pid AND l.kind=members.kind);");
	exec(c, "DELETE FROM reps WHERE NOT EXISTS (SELECT 1 FROM dids d WHERE d.id=reps.fid);"
		"DELETE FROM rep_fill WHERE NOT EXISTS (SELECT 1 FROM dids d WHERE d.id=rep_fill.did);");
	/* give the pages back so the file stays within its bound */
	exec(c, "PRAGMA wal_checkpoint(TRUNCATE); VACUUM;");
}

void rest_cache_put_did(struct rest_cache *c, const struct cat_did *d)
{
	put(c, d, 1, 0);
	evict(c);
}

void rest_cache_negative(struct rest_cache *c, const char *scope, const char *name)
{
	struct cat_did d = { .scope = scope, .name = name };
	put(c, &d, 0, 1);
}

void rest_cache_invalidate(struct rest_cache *c, const char *scope, const char *name, int unused)
{
	sqlite3_stmt *st;
	int64_t id = cat_rest_did_id(scope, name), roots = cat_rest_did_id(scope, "");

	(void)unused;
	if (!(st = prep(c, "DELETE FROM lists WHERE pid=?1 OR pid=?2 OR pid IN"
			   " (SELECT pid FROM members WHERE cid=?1)")))
		return;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, roots);
	sqlite3_step(st);
	done(c, st);
	if ((st = prep(c, "DELETE FROM dids WHERE id=?1"))) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_step(st);
		done(c, st);
	}
	if ((st = prep(c, "DELETE FROM rep_fill WHERE did=?1"))) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_step(st);
		done(c, st);
	}
}

int rest_cache_list(struct rest_cache *c, const char *scope, const char *name, int kind,
		    int stale_ok, cat_did_cb cb, void *ud)
{
	return rest_cache_list_after(c, scope, name, kind, stale_ok, 0, cb, ud);
}

int rest_cache_list_after(struct rest_cache *c, const char *scope, const char *name, int kind,
			  int stale_ok, int64_t after, cat_did_cb cb, void *ud)
{
	int64_t pid = cat_rest_did_id(scope, name);
	sqlite3_stmt *st = prep(c, "SELECT l.fill_at, l.used_at, d.type, d.is_open, d.full"
				   " FROM lists l LEFT JOIN dids d ON d.id=l.pid"
				   " WHERE l.pid=?1 AND l.kind=?2");
	double fill, used, ttl;
	int r = -1;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, pid);
	sqlite3_bind_int(st, 2, kind);
	if (sqlite3_step(st) != SQLITE_ROW) {
		done(c, st);
		c->misses++;
		return -1;
	}
	fill = sqlite3_column_double(st, 0);
	used = sqlite3_column_double(st, 1);
	/* roots and open (or unknown) collections: the short ttl */
	ttl = kind == REST_LIST_ROOTS || sqlite3_column_type(st, 2) == SQLITE_NULL ||
	      !sqlite3_column_int(st, 4) || sqlite3_column_int(st, 3) ? c->ttl : LONG_TTL;
	done(c, st);
	if (!stale_ok && now_f() - fill >= ttl) {
		c->misses++;
		return -1;
	}
	c->hits++;
	touch(c, "lists", pid, used);
	/* a cursor seeks to the member after `after` (members_cid finds its
	 * position), so a readdir in batches reads each member once */
	if (!(st = after ? prep_own(c, "SELECT " DID_COLS " FROM members m JOIN dids d ON d.id=m.cid"
				    " WHERE m.pid=?1 AND m.kind=?2 AND m.pos > (SELECT pos FROM members"
				    " WHERE pid=?1 AND kind=?2 AND cid=?3) ORDER BY m.pos")
			 : prep_own(c, "SELECT " DID_COLS " FROM members m JOIN dids d ON d.id=m.cid"
				    " WHERE m.pid=?1 AND m.kind=?2 ORDER BY m.pos")))
		return -1;
	sqlite3_bind_int64(st, 1, pid);
	sqlite3_bind_int(st, 2, kind);
	if (after)
		sqlite3_bind_int64(st, 3, after);
	r = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct cat_did d;
		row_did(c, st, &d);
		if (cb(ud, &d))
			break;
	}
	done(c, st);
	return r;
}

int rest_cache_did_by_id(struct rest_cache *c, int64_t id, char *scope, char *name)
{
	sqlite3_stmt *st = prep(c, "SELECT scope, name FROM dids WHERE id=?1 AND negative=0");
	int r = -1;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		dm_strlcpy(scope, (const char *)sqlite3_column_text(st, 0), CAT_SCOPE_MAX + 1);
		dm_strlcpy(name, (const char *)sqlite3_column_text(st, 1), CAT_NAME_MAX + 1);
		r = 0;
	}
	done(c, st);
	return r;
}

struct rest_fill *rest_fill_begin(struct rest_cache *c, const char *scope, const char *name,
				  int kind)
{
	struct rest_fill *f;
	sqlite3_stmt *st;

	if (!c || exec(c, "BEGIN IMMEDIATE"))
		return NULL;
	f = dm_xcalloc(1, sizeof *f);
	f->c = c;
	f->pid = cat_rest_did_id(scope, name);
	f->kind = kind;
	dm_strlcpy(f->scope, scope, sizeof f->scope);
	dm_strlcpy(f->name, name, sizeof f->name);
	if ((st = prep(c, "DELETE FROM members WHERE pid=?1 AND kind=?2"))) {
		sqlite3_bind_int64(st, 1, f->pid);
		sqlite3_bind_int(st, 2, kind);
		if (sqlite3_step(st) != SQLITE_DONE)
			f->failed = 1;
		done(c, st);
	}
	return f;
}

void rest_fill_did(struct rest_fill *f, const struct cat_did *d)
{
	sqlite3_stmt *st;

	if (!f || f->failed)
		return;
	put(f->c, d, 0, 0);
	if ((st = prep(f->c, "INSERT OR REPLACE INTO members(pid, kind, pos, cid) VALUES (?1,?2,?3,?4)"))) {
		sqlite3_bind_int64(st, 1, f->pid);
		sqlite3_bind_int(st, 2, f->kind);
		sqlite3_bind_int64(st, 3, f->pos++);
		sqlite3_bind_int64(st, 4, cat_rest_did_id(d->scope, d->name));
		if (sqlite3_step(st) != SQLITE_DONE)
			f->failed = 1;
		done(f->c, st);
	}
}

void rest_fill_commit(struct rest_fill *f)
{
	sqlite3_stmt *st;

	if (!f)
		return;
	if (!f->failed && (st = prep(f->c, "INSERT OR REPLACE INTO lists(pid, kind, fill_at, used_at,"
					   " scope, name) VALUES (?1, ?2, ?3, ?3, ?4, ?5)"))) {
		sqlite3_bind_int64(st, 1, f->pid);
		sqlite3_bind_int(st, 2, f->kind);
		sqlite3_bind_double(st, 3, now_f());
		sqlite3_bind_text(st, 4, f->scope, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, f->name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			f->failed = 1;
		done(f->c, st);
	}
	if (f->failed || exec(f->c, "COMMIT"))
		exec(f->c, "ROLLBACK");
	else
		f->c->fills++;
	if (f->pos > 10000) /* a big fill: fold the WAL in, readers stay fast */
		exec(f->c, "PRAGMA wal_checkpoint(TRUNCATE)");
	evict(f->c);
	free(f);
}

void rest_fill_abort(struct rest_fill *f)
{
	if (!f)
		return;
	exec(f->c, "ROLLBACK");
	free(f);
}

enum dm_status rest_cache_stats(struct rest_cache *c, struct cat_cache_stats *s)
{
	sqlite3_stmt *st = prep(c, "SELECT count(*), coalesce(sum(negative), 0),"
				   " coalesce(min(fill_at), 0), coalesce(max(fill_at), 0) FROM dids");

	if (st && sqlite3_step(st) == SQLITE_ROW) {
		s->entries = (uint64_t)sqlite3_column_int64(st, 0);
		s->negative = (uint64_t)sqlite3_column_int64(st, 1);
		s->oldest_fill = (int64_t)sqlite3_column_double(st, 2);
		s->newest_fill = (int64_t)sqlite3_column_double(st, 3);
	}
	done(c, st);
	if ((st = prep(c, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"))) {
		if (sqlite3_step(st) == SQLITE_ROW)
			s->bytes = (uint64_t)sqlite3_column_int64(st, 0);
		done(c, st);
	}
	if ((st = prep(c, "SELECT count(*) FROM reps"))) {
		if (sqlite3_step(st) == SQLITE_ROW)
			s->replicas = (uint64_t)sqlite3_column_int64(st, 0);
		done(c, st);
	}
	s->limit = c->limit;
	s->ttl = c->ttl;
	s->hits = c->hits;
	s->misses = c->misses;
	return DM_OK;
}

/* ---- replicas ---- */
struct rest_rep_fill *rest_rep_fill_begin(struct rest_cache *c)
{
	struct rest_rep_fill *f;

	if (!c || exec(c, "BEGIN IMMEDIATE"))
		return NULL;
	f = dm_xcalloc(1, sizeof *f);
	f->c = c;
	return f;
}

void rest_rep_fill_row(struct rest_rep_fill *f, const struct cat_replica *r)
{
	int64_t fid;
	sqlite3_stmt *st;

	if (!f || f->failed)
		return;
	fid = cat_rest_did_id(r->scope, r->name);
	if (fid != f->last) { /* a new file: its old rows go, it counts as listed */
		f->last = fid;
		if ((st = prep(f->c, "DELETE FROM reps WHERE fid=?1"))) {
			sqlite3_bind_int64(st, 1, fid);
			sqlite3_step(st);
			done(f->c, st);
		}
		if ((st = prep(f->c, "INSERT OR REPLACE INTO rep_fill(did, is_file, fill_at)"
				     " VALUES (?1, 1, ?2)"))) {
			sqlite3_bind_int64(st, 1, fid);
			sqlite3_bind_double(st, 2, now_f());
			if (sqlite3_step(st) != SQLITE_DONE)
				f->failed = 1;
			done(f->c, st);
		}
	}
	if (!r->rse)
		return; /* a file without replicas */
	if ((st = prep(f->c, "INSERT OR REPLACE INTO reps(fid, rse, state, pfn, rse_id, bytes,"
			     " adler32, md5, scope, name) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"))) {
		sqlite3_bind_int64(st, 1, fid);
		sqlite3_bind_text(st, 2, r->rse, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, (int)r->state);
		sqlite3_bind_text(st, 4, r->pfn, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, r->rse_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (int64_t)r->bytes);
		sqlite3_bind_text(st, 7, r->adler32, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, r->md5, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, r->scope, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 10, r->name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			f->failed = 1;
		done(f->c, st);
	}
}

void rest_rep_fill_commit(struct rest_rep_fill *f, const char *scope, const char *name)
{
	sqlite3_stmt *st;

	if (!f)
		return;
	if (!f->failed && (st = prep(f->c, "INSERT OR IGNORE INTO rep_fill(did, is_file, fill_at)"
					   " VALUES (?1, 0, ?2)"))) {
		sqlite3_bind_int64(st, 1, cat_rest_did_id(scope, name));
		sqlite3_bind_double(st, 2, now_f());
		sqlite3_step(st);
		done(f->c, st);
	}
	if (f->failed || exec(f->c, "COMMIT"))
		exec(f->c, "ROLLBACK");
	else
		f->c->fills++;
	free(f);
}

void rest_rep_fill_abort(struct rest_rep_fill *f)
{
	if (!f)
		return;
	exec(f->c, "ROLLBACK");
	free(f);
}

int rest_cache_replicas(struct rest_cache *c, const char *scope, const char *name, double ttl,
			int stale_ok, unsigned mask, const char *rse, cat_replica_cb cb, void *ud)
{
	int64_t fid = cat_rest_did_id(scope, name);
	sqlite3_stmt *st = prep(c, "SELECT fill_at FROM rep_fill WHERE did=?1 AND is_file=1");
	double fill = -1;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, fid);
	if (sqlite3_step(st) == SQLITE_ROW)
		fill = sqlite3_column_double(st, 0);
	done(c, st);
	if (fill < 0 || (!stale_ok && now_f() - fill >= ttl)) {
		c->misses++;
		return -1;
	}
	c->hits++;
	if (!(st = prep_own(c, "SELECT scope, name, rse, state, pfn, rse_id, bytes, adler32, md5"
			   " FROM reps WHERE fid=?1 ORDER BY rse")))
		return -1;
	sqlite3_bind_int64(st, 1, fid);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct cat_replica r;
		memset(&r, 0, sizeof r);
		r.scope = (const char *)sqlite3_column_text(st, 0);
		r.name = (const char *)sqlite3_column_text(st, 1);
		r.rse = (const char *)sqlite3_column_text(st, 2);
		r.state = (enum cat_replica_state)sqlite3_column_int(st, 3);
		r.pfn = (const char *)sqlite3_column_text(st, 4);
		r.rse_id = (const char *)sqlite3_column_text(st, 5);
		r.bytes = (uint64_t)sqlite3_column_int64(st, 6);
		r.adler32 = (const char *)sqlite3_column_text(st, 7);
		r.md5 = (const char *)sqlite3_column_text(st, 8);
		if (mask ? !(mask & (1u << r.state)) : r.state != CAT_REPLICA_AVAILABLE)
			continue;
		if (rse && strcmp(rse, r.rse))
			continue;
		if (cb(ud, &r))
			break;
	}
	done(c, st);
	return 0;
}

int rest_cache_parent_dataset(struct rest_cache *c, const char *scope, const char *name,
			      char *pscope, char *pname)
{
	/* a file listed as content: its parent holds files, so is a dataset */
	sqlite3_stmt *st = prep(c, "SELECT l.scope, l.name FROM members m JOIN lists l ON"
				   " l.pid=m.pid AND l.kind=m.kind JOIN dids d ON d.id=m.cid"
				   " WHERE m.cid=?1 AND m.kind=2 AND d.type=0 LIMIT 1");
	int r = -1;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, cat_rest_did_id(scope, name));
	if (sqlite3_step(st) == SQLITE_ROW) {
		dm_strlcpy(pscope, (const char *)sqlite3_column_text(st, 0), CAT_SCOPE_MAX + 1);
		dm_strlcpy(pname, (const char *)sqlite3_column_text(st, 1), CAT_NAME_MAX + 1);
		r = 0;
	}
	done(c, st);
	return r;
}
