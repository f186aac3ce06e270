/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replica.c - replicas, bulk registration, account limits and usage.
 *
 * Bulk registration (cat_bulk_*) is the path for registering millions of
 * files that already sit on storage: one transaction, statements prepared
 * once, per-row work limited to validation and three inserts (file DID,
 * replica, dataset attachment), counters aggregated in memory and queued
 * once at commit.  Memory stays constant however many rows go through.
 *
 * Usage counters follow Rucio: writers queue deltas (updated_rse_counters,
 * updated_account_counters) and cat_usage_refresh() (the abacus) folds them
 * into rse_usage / account_usage.  RSE usage counts replicas; account usage
 * counts locked bytes (written by the rule engine).
 */
#include "catalog_i.h"
#include "dmcheck.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* bulk registration                                                   */
/* SQLite: each row is inserted as it comes (prepared statements in one
 * transaction).  PostgreSQL: rows stream into a temporary table with COPY
 * and cat_bulk_commit() registers them with four set-based statements
 * (DIDs, the consistency check, replicas, contents) in the same
 * transaction: constant client memory, the server's speed.  Both check
 * each row as it is added (names, checksums, scope ownership, PFNs) and
 * refuse a file registered with another size or checksum. */

enum { B_DID, B_DID_GET, B_REPLICA, B_CONTENT, B_NSTMT };

struct cat_bulk {
	struct cat_db *db;
	struct sqldrv_stmt *st[B_NSTMT];
	int64_t rse_num;
	int deterministic;
	int64_t tombstone;    /* 0: NULL */
	int64_t ds_id;        /* 0: no dataset */
	char scope_ok[CAT_SCOPE_MAX + 1]; /* last scope that passed the checks */
	char rse[CAT_RSE_MAX + 1];
	char algo[64];
	int64_t now;
	uint64_t files_added, replicas_added, bytes_added, attached;
	int failed;
	int fk_off;
	/* write PFN prefixes that a given pfn may start with (deterministic RSEs) */
	struct cat_protocol *protos;
	char **proto_strs;
	size_t nprotos;
	struct dm_buf tmp;
	/* PostgreSQL: the COPY into bulk_in in progress (NULL: none), rows so far */
	int pg;
	struct sqldrv_bulk *copy;
	int64_t seq;
};

/* PostgreSQL: ANALYZE the tables after a registration of this many files */
#define BULK_ANALYZE_ROWS 50000

static const char *const bulk_in_cols[] = { "seq", "scope", "name", "bytes", "adler32", "md5",
					     "path", "state" };

static const char *const bulk_sql[B_NSTMT] = {
	[B_DID] = "INSERT INTO dids(scope, name, account, did_type, bytes, length, adler32, md5,"
		  " created_at, updated_at) VALUES (?,?,?,'F',?,1,?,?,?,?) ON CONFLICT DO NOTHING",
	[B_DID_GET] = "SELECT id, did_type, bytes, adler32, md5 FROM dids WHERE scope=? AND name=?",
	[B_REPLICA] = "INSERT INTO replicas(did_id, rse_num, bytes, path, state, tombstone,"
		      " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
	[B_CONTENT] = "INSERT INTO contents(parent_id, child_id, created_at) VALUES (?,?,?)"
		      " ON CONFLICT DO NOTHING",
};

static int keep_proto(void *ud, const struct cat_protocol *p)
{
	struct cat_bulk *b = ud;
	struct cat_protocol *c;

	if (p->prio[CAT_WAN][CAT_OP_WRITE] < 0 && p->prio[CAT_LAN][CAT_OP_WRITE] < 0 &&
	    p->prio[CAT_WAN][CAT_OP_READ] < 0)
		return 0;
	b->protos = dm_xrealloc(b->protos, (b->nprotos + 1) * sizeof *b->protos);
	b->proto_strs = dm_xrealloc(b->proto_strs, (b->nprotos + 1) * 3 * sizeof *b->proto_strs);
	c = &b->protos[b->nprotos];
	*c = *p;
	c->scheme = b->proto_strs[3 * b->nprotos] = dm_xstrdup(p->scheme);
	c->hostname = b->proto_strs[3 * b->nprotos + 1] = dm_xstrdup(p->hostname);
	c->prefix = b->proto_strs[3 * b->nprotos + 2] = dm_xstrdup(p->prefix);
	c->impl = NULL;
	c->extended_attributes = NULL;
	b->nprotos++;
	return 0;
}

static void bulk_restore_fk(struct cat_bulk *b)
{
	if (b->fk_off)
		sqldrv_exec(b->db->sql, "PRAGMA foreign_keys=ON; PRAGMA cache_size=-"
					DM_STR(CAT_CACHE_KIB));
	b->fk_off = 0;
}

static void bulk_free(struct cat_bulk *b)
{
	for (int i = 0; i < B_NSTMT; i++)
		if (b->st[i])
			sqldrv_reset(b->st[i]);
	for (size_t i = 0; i < 3 * b->nprotos; i++)
		free(b->proto_strs[i]);
	free(b->proto_strs);
	free(b->protos);
	dm_buf_release(&b->tmp);
	free(b);
}

enum dm_status cat_bulk_begin(struct cat_db *db, const char *rse, const char *ds_scope,
			      const char *ds_name, unsigned flags, struct cat_bulk **out)
{
	struct cat_bulk *b;
	enum dm_status rc;
	struct sqldrv_stmt *st;
	int avail_write = 1, is_volatile = 0;
	char delay[32];

	*out = NULL;
	b = dm_xcalloc(1, sizeof *b);
	b->db = db;
	b->now = dm_now();
	dm_buf_init(&b->tmp, 0);
	/* Every reference a bulk row makes is checked or created by this code
	 * (scope checked per distinct scope, DID ids taken from the insert, the
	 * RSE and dataset looked up once), so SQLite's per-row foreign-key
	 * lookups are switched off for the outermost bulk transaction (SQLite;
	 * PostgreSQL keeps its foreign keys). */
	if (db->tx_depth == 0 && db->sql && sqldrv_dialect(db->sql) == SQLDRV_SQLITE) {
		sqldrv_exec(db->sql, "PRAGMA foreign_keys=OFF; PRAGMA cache_size=-"
				     DM_STR(CAT_BULK_CACHE_KIB));
		b->fk_off = 1;
	}
	rc = cat_tx_begin(db);
	if (rc) {
		bulk_restore_fk(b);
		bulk_free(b);
		return rc;
	}
	rc = cat_rse_num(db, rse, &b->rse_num);
	if (rc)
		goto fail;
	dm_strlcpy(b->rse, rse, sizeof b->rse);
	st = cat_stmt(db, "SELECT deterministic, availability_write, volatile FROM rses WHERE num=?");
	if (!st) {
		rc = db->err.code;
		goto fail;
	}
	sqldrv_bind_int64(st, 1, b->rse_num);
	if (sqldrv_step(st) == SQLDRV_ROW) {
		b->deterministic = (int)sqldrv_col_int64(st, 0);
		avail_write = (int)sqldrv_col_int64(st, 1);
		is_volatile = (int)sqldrv_col_int64(st, 2);
	}
	sqldrv_reset(st);
	if (is_volatile) {
		rc = cat_fail(db, DM_ENOTSUP, "UnsupportedOperation",
			      "RSE '%s' is volatile: replicas cannot be registered on it", rse);
		goto fail;
	}
	if (!avail_write && !(flags & CAT_REPLICA_IGNORE_AVAILABILITY)) {
		rc = cat_fail(db, DM_AGAIN, "ResourceTemporaryUnavailable",
			      "RSE '%s' is not available for writing", rse);
		goto fail;
	}
	if (cat_rse_attr_get(db, rse, "lfn2pfn_algorithm", b->algo, sizeof b->algo) != DM_OK)
		dm_strlcpy(b->algo, "hash", sizeof b->algo);
	if (cat_rse_attr_get(db, rse, "tombstone_delay", delay, sizeof delay) == DM_OK) {
		int64_t d;
		if (dm_parse_i64(delay, &d) == 0)
			b->tombstone = d < 0 ? 1 : dm_time_add(b->now, d);
	}
	rc = cat_protocol_list(db, rse, keep_proto, b);
	if (rc)
		goto fail;
	if (cat_is_pg(db)) {
		b->pg = 1;
		rc = cat_exec(db, "CREATE TEMPORARY TABLE IF NOT EXISTS bulk_in(seq BIGINT, scope TEXT,"
				  " name TEXT, bytes BIGINT, adler32 TEXT, md5 TEXT, path TEXT, state TEXT)"
				  " ON COMMIT DELETE ROWS");
		/* an earlier bulk of the same transaction (ingest runs one per
		 * dataset) leaves its rows until the commit */
		if (rc == DM_OK)
			rc = cat_exec(db, "DELETE FROM bulk_in");
		if (rc)
			goto fail;
	}
	if (ds_scope && ds_name) {
		enum cat_did_type t;
		rc = cat_did_id(db, ds_scope, ds_name, &b->ds_id, &t);
		if (rc)
			goto fail;
		if (t != CAT_DID_DATASET) {
			rc = cat_fail(db, DM_ENOTSUP, "UnsupportedOperation",
				      "'%s:%s' is a %s: files can only be attached to a dataset",
				      ds_scope, ds_name, cat_did_type_name(t));
			goto fail;
		}
		rc = cat_require_scope_owner(db, ds_scope, "attach data identifiers");
		if (rc)
			goto fail;
		st = cat_stmt(db, "SELECT is_open FROM dids WHERE id=?");
		if (!st) {
			rc = db->err.code;
			goto fail;
		}
		sqldrv_bind_int64(st, 1, b->ds_id);
		if (sqldrv_step(st) == SQLDRV_ROW && !(int)sqldrv_col_int64(st, 0)) {
			sqldrv_reset(st);
			rc = cat_fail(db, DM_ECONFLICT, "UnsupportedOperation",
				      "Data identifier '%s:%s' is closed: cannot attach to it",
				      ds_scope, ds_name);
			goto fail;
		}
		sqldrv_reset(st);
	}
	for (int i = 0; i < B_NSTMT && !b->pg; i++) {
		if (!(b->st[i] = cat_stmt(db, bulk_sql[i]))) {
			rc = cat_dberr(db, "preparing bulk registration");
			goto fail;
		}
	}
	*out = b;
	return DM_OK;
fail:
	cat_tx_end(db, rc);
	bulk_restore_fk(b);
	bulk_free(b);
	return rc;
}

static enum dm_status bulk_fail(struct cat_bulk *b, enum dm_status rc)
{
	b->failed = 1;
	return rc;
}

/* Check a given PFN against the deterministic path; fill the path to store
 * for non-deterministic RSEs into b->tmp. */
static enum dm_status check_pfn(struct cat_bulk *b, const struct cat_file_in *f, const char **path)
{
	struct cat_db *db = b->db;
	struct dm_err e;

	*path = NULL;
	if (b->deterministic) {
		if (!f->pfn)
			return DM_OK;
		for (size_t i = 0; i < b->nprotos; i++) {
			dm_buf_reset(&b->tmp);
			struct dm_buf p = DM_BUF_INIT;
			if (cat_lfn2path(b->algo, f->scope, f->name, &p, &e) != DM_OK) {
				dm_buf_release(&p);
				db->err = e;
				return e.code;
			}
			cat_pfn_join(&b->protos[i], p.s, &b->tmp);
			dm_buf_release(&p);
			if (!strcmp(b->tmp.s, f->pfn))
				return DM_OK;
		}
		return cat_fail(db, DM_EINVAL, "InvalidPath",
				"PFN '%s' of '%s:%s' is not the deterministic path on RSE '%s'%s%s",
				f->pfn, f->scope, f->name, b->rse, b->tmp.len ? " (expected " : "",
				b->tmp.len ? b->tmp.s : "");
	}
	if (!f->pfn)
		return cat_fail(db, DM_EINVAL, "InvalidPath",
				"RSE '%s' is non-deterministic: '%s:%s' needs a PFN", b->rse, f->scope, f->name);
	/* Store the path after scheme://host[:port] + prefix of a known protocol. */
	for (size_t i = 0; i < b->nprotos; i++) {
		dm_buf_reset(&b->tmp);
		cat_pfn_join(&b->protos[i], "", &b->tmp);
		if (!strncmp(f->pfn, b->tmp.s, b->tmp.len)) {
			*path = f->pfn + b->tmp.len;
			return DM_OK;
		}
	}
	return cat_fail(db, DM_EINVAL, "InvalidPath",
			"PFN '%s' does not match any protocol prefix of RSE '%s'", f->pfn, b->rse);
}

/* PostgreSQL: end the COPY in progress (its rows stay in bulk_in). */
static enum dm_status copy_flush(struct cat_bulk *b)
{
	enum dm_status rc = sqldrv_bulk_end(b->copy, DM_OK);

	b->copy = NULL;
	return rc ? cat_dberr(b->db, "loading files to register") : DM_OK;
}

static enum dm_status copy_row(struct cat_bulk *b, const struct cat_file_in *f, const char *path,
			       int state)
{
	struct sqldrv_bulk *q;

	if (!b->copy) {
		b->copy = sqldrv_bulk_begin(b->db->sql, "bulk_in", bulk_in_cols,
					    (int)DM_ARRAY_SIZE(bulk_in_cols));
		if (!b->copy)
			return bulk_fail(b, cat_dberr(b->db, "loading files to register"));
	}
	q = b->copy;
	sqldrv_bulk_int64(q, ++b->seq);
	sqldrv_bulk_text(q, f->scope, -1);
	sqldrv_bulk_text(q, f->name, -1);
	sqldrv_bulk_int64(q, (int64_t)f->bytes);
	sqldrv_bulk_text(q, f->adler32, 8);
	if (f->md5 && *f->md5)
		sqldrv_bulk_text(q, f->md5, 32);
	else
		sqldrv_bulk_null(q);
	if (path)
		sqldrv_bulk_text(q, path, -1);
	else
		sqldrv_bulk_null(q);
	sqldrv_bulk_text(q, cat_replica_state_code(state), 1);
	if (sqldrv_bulk_row(q) != DM_OK) {
		b->copy = NULL;
		sqldrv_bulk_end(q, DM_EINVAL);
		return bulk_fail(b, cat_dberr(b->db, "loading files to register"));
	}
	return DM_OK;
}

/* PostgreSQL: register what bulk_in holds, as cat_bulk_add does row by row
 * on SQLite (the first row of a name wins; a name registered with another
 * size or checksum, or that is not a file, fails the whole call). */
static enum dm_status copy_register(struct cat_bulk *b)
{
	struct cat_db *db = b->db;
	struct sqldrv_stmt *st;
	enum dm_status rc;
	int r;

	if (b->copy && (rc = copy_flush(b)))
		return rc;
	if (b->seq == 0)
		return DM_OK;
	st = cat_stmt(db, "INSERT INTO dids(scope, name, account, did_type, bytes, length, adler32,"
			  " md5, created_at, updated_at) SELECT DISTINCT ON (scope, name) scope, name,"
			  " ?1, 'F', bytes, 1, adler32, md5, ?2, ?2 FROM bulk_in ORDER BY scope, name, seq"
			  " ON CONFLICT DO NOTHING");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, db->issuer, -1);
	sqldrv_bind_int64(st, 2, b->now);
	if (sqldrv_run(st) != DM_OK)
		return cat_dberr(db, "registering files");
	b->files_added = (uint64_t)sqldrv_changes(db->sql);
	st = cat_stmt(db, "SELECT i.scope, i.name, d.did_type, d.bytes, d.adler32, i.bytes, i.adler32"
			  " FROM bulk_in i JOIN dids d ON d.scope=i.scope AND d.name=i.name"
			  " WHERE d.did_type<>'F' OR d.bytes<>i.bytes OR lower(d.adler32)<>lower(i.adler32)"
			  " OR (d.md5 IS NOT NULL AND i.md5 IS NOT NULL AND lower(d.md5)<>lower(i.md5))"
			  " ORDER BY i.seq LIMIT 1");
	if (!st)
		return db->err.code;
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		if (strcmp(cat_col_text(st, 2), "F") != 0)
			rc = cat_fail(db, DM_ECONFLICT, "UnsupportedOperation",
				      "'%s:%s' exists and is not a file", cat_col_text(st, 0),
				      cat_col_text(st, 1));
		else
			rc = cat_fail(db, DM_ECONFLICT, "FileConsistencyMismatch",
				      "'%s:%s' is registered with %lld bytes, adler32 %s; the new replica has %llu bytes, adler32 %s",
				      cat_col_text(st, 0), cat_col_text(st, 1),
				      (long long)sqldrv_col_int64(st, 3),
				      cat_col_text(st, 4) ? cat_col_text(st, 4) : "?",
				      (unsigned long long)sqldrv_col_int64(st, 5), cat_col_text(st, 6));
		sqldrv_reset(st);
		return rc;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "checking files to register");
	st = cat_stmt(db, "WITH ins AS (INSERT INTO replicas(did_id, rse_num, bytes, path, state,"
			  " tombstone, created_at, updated_at) SELECT DISTINCT ON (d.id) d.id, ?1,"
			  " i.bytes, i.path, i.state, ?2, ?3, ?3 FROM bulk_in i JOIN dids d"
			  " ON d.scope=i.scope AND d.name=i.name ORDER BY d.id, i.seq"
			  " ON CONFLICT DO NOTHING RETURNING bytes)"
			  " SELECT count(*), coalesce(sum(bytes), 0) FROM ins");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, b->rse_num);
	if (b->tombstone)
		sqldrv_bind_int64(st, 2, b->tombstone);
	else
		sqldrv_bind_null(st, 2);
	sqldrv_bind_int64(st, 3, b->now);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		b->replicas_added = (uint64_t)sqldrv_col_int64(st, 0);
		b->bytes_added = (uint64_t)sqldrv_col_int64(st, 1);
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW)
		return cat_dberr(db, "registering replicas");
	if (b->ds_id) {
		st = cat_stmt(db, "INSERT INTO contents(parent_id, child_id, created_at)"
				  " SELECT DISTINCT ?1::bigint, d.id, ?2::bigint FROM bulk_in i JOIN dids d"
				  " ON d.scope=i.scope AND d.name=i.name ON CONFLICT DO NOTHING");
		if (!st)
			return db->err.code;
		sqldrv_bind_int64(st, 1, b->ds_id);
		sqldrv_bind_int64(st, 2, b->now);
		if (sqldrv_run(st) != DM_OK)
			return cat_dberr(db, "attaching files");
		b->attached = (uint64_t)sqldrv_changes(db->sql);
	}
	return DM_OK;
}

enum dm_status cat_bulk_add(struct cat_bulk *b, const struct cat_file_in *f)
{
	struct cat_db *db = b->db;
	struct dm_err e;
	enum dm_status rc;
	struct sqldrv_stmt *st;
	int64_t id;
	const char *path = NULL;
	int state = f->state < 0 ? CAT_REPLICA_AVAILABLE : f->state;

	if (b->failed)
		return cat_fail(db, DM_EINVAL, "RucioException", "bulk registration already failed");
	if ((rc = cat_validate_scope(f->scope, &e)) || (rc = cat_validate_name(f->name, &e)) ||
	    (rc = cat_validate_adler32(f->adler32, &e)) ||
	    (f->md5 && *f->md5 && (rc = cat_validate_md5(f->md5, &e)))) {
		db->err = e;
		return bulk_fail(b, rc);
	}
	if (*cat_replica_state_code(state) == '?')
		return bulk_fail(b, cat_fail(db, DM_EINVAL, "InvalidObject", "invalid replica state %d", state));
	if (f->bytes > (uint64_t)INT64_MAX)
		return bulk_fail(b, cat_fail(db, DM_EINVAL, "InvalidObject", "bytes out of range for '%s:%s'",
					     f->scope, f->name));
	if (strcmp(b->scope_ok, f->scope) != 0) {
		/* no query runs on the connection while a COPY is open */
		if (b->copy && (rc = copy_flush(b)))
			return bulk_fail(b, rc);
		rc = cat_require_scope_owner(db, f->scope, "add replicas");
		if (rc)
			return bulk_fail(b, rc);
		dm_strlcpy(b->scope_ok, f->scope, sizeof b->scope_ok);
	}
	rc = check_pfn(b, f, &path);
	if (rc)
		return bulk_fail(b, rc);
	if (b->pg)
		return copy_row(b, f, path, state);

	st = b->st[B_DID];
	sqldrv_bind_text(st, 1, f->scope, -1);
	sqldrv_bind_text(st, 2, f->name, -1);
	sqldrv_bind_text(st, 3, db->issuer, -1);
	sqldrv_bind_int64(st, 4, (int64_t)f->bytes);
	sqldrv_bind_text(st, 5, f->adler32, 8);
	if (f->md5 && *f->md5)
		sqldrv_bind_text(st, 6, f->md5, 32);
	else
		sqldrv_bind_null(st, 6);
	sqldrv_bind_int64(st, 7, b->now);
	sqldrv_bind_int64(st, 8, b->now);
	if (sqldrv_step(st) != SQLDRV_DONE) {
		sqldrv_reset(st);
		return bulk_fail(b, cat_dberr(db, "registering a file"));
	}
	sqldrv_reset(st);
	if (sqldrv_changes(db->sql)) {
		if (sqldrv_last_id(db->sql, &id) != DM_OK)
			return bulk_fail(b, cat_dberr(db, "registering a file"));
		b->files_added++;
	} else {
		/* The file exists: it must be a file with the same size and checksum. */
		const char *ad, *md;
		int64_t by;
		st = b->st[B_DID_GET];
		sqldrv_bind_text(st, 1, f->scope, -1);
		sqldrv_bind_text(st, 2, f->name, -1);
		if (sqldrv_step(st) != SQLDRV_ROW) {
			sqldrv_reset(st);
			return bulk_fail(b, cat_dberr(db, "reading a file"));
		}
		id = sqldrv_col_int64(st, 0);
		if (strcmp(cat_col_text(st, 1), "F") != 0) {
			rc = cat_fail(db, DM_ECONFLICT, "UnsupportedOperation",
				      "'%s:%s' exists and is not a file", f->scope, f->name);
			sqldrv_reset(st);
			return bulk_fail(b, rc);
		}
		by = sqldrv_col_int64(st, 2);
		ad = cat_col_text(st, 3);
		md = cat_col_text(st, 4);
		if (by != (int64_t)f->bytes || (ad && strcasecmp(ad, f->adler32)) ||
		    (md && f->md5 && *f->md5 && strcasecmp(md, f->md5))) {
			rc = cat_fail(db, DM_ECONFLICT, "FileConsistencyMismatch",
				      "'%s:%s' is registered with %lld bytes, adler32 %s; the new replica has %llu bytes, adler32 %s",
				      f->scope, f->name, (long long)by, ad ? ad : "?",
				      (unsigned long long)f->bytes, f->adler32);
			sqldrv_reset(st);
			return bulk_fail(b, rc);
		}
		sqldrv_reset(st);
	}

	st = b->st[B_REPLICA];
	sqldrv_bind_int64(st, 1, id);
	sqldrv_bind_int64(st, 2, b->rse_num);
	sqldrv_bind_int64(st, 3, (int64_t)f->bytes);
	if (path)
		sqldrv_bind_text(st, 4, path, -1);
	else
		sqldrv_bind_null(st, 4);
	sqldrv_bind_text(st, 5, cat_replica_state_code(state), 1);
	if (b->tombstone)
		sqldrv_bind_int64(st, 6, b->tombstone);
	else
		sqldrv_bind_null(st, 6);
	sqldrv_bind_int64(st, 7, b->now);
	sqldrv_bind_int64(st, 8, b->now);
	if (sqldrv_step(st) != SQLDRV_DONE) {
		sqldrv_reset(st);
		return bulk_fail(b, cat_dberr(db, "registering a replica"));
	}
	sqldrv_reset(st);
	if (sqldrv_changes(db->sql)) {
		b->replicas_added++;
		b->bytes_added += f->bytes;
	}

	if (b->ds_id) {
		st = b->st[B_CONTENT];
		sqldrv_bind_int64(st, 1, b->ds_id);
		sqldrv_bind_int64(st, 2, id);
		sqldrv_bind_int64(st, 3, b->now);
		if (sqldrv_step(st) != SQLDRV_DONE) {
			sqldrv_reset(st);
			return bulk_fail(b, cat_dberr(db, "attaching a file"));
		}
		sqldrv_reset(st);
		b->attached += (uint64_t)sqldrv_changes(db->sql);
	}
	return DM_OK;
}

enum dm_status cat_bulk_commit(struct cat_bulk *b, uint64_t *files_added)
{
	struct cat_db *db = b->db;
	enum dm_status rc = DM_OK;

	if (b->failed)
		rc = db->err.code ? db->err.code : DM_EINVAL;
	if (rc == DM_OK && b->pg)
		rc = copy_register(b);
	if (rc == DM_OK)
		rc = cat_counter_rse(db, b->rse_num, (int64_t)b->replicas_added, (int64_t)b->bytes_added);
	if (rc == DM_OK && b->attached)
		rc = cat_queue_updated_did(db, b->ds_id, "A");
	if (b->copy) { /* the call failed before copy_register ended it */
		sqldrv_bulk_end(b->copy, DM_EINVAL);
		b->copy = NULL;
	}
	if (files_added)
		*files_added = rc == DM_OK ? b->replicas_added : 0;
	for (int i = 0; i < B_NSTMT; i++) {
		if (b->st[i])
			sqldrv_reset(b->st[i]);
		b->st[i] = NULL;
	}
	rc = cat_tx_end(db, rc);
	/* PostgreSQL plans by its statistics: after a big registration a
	 * dataset's listing would scan every DID until autovacuum got to it */
	if (rc == DM_OK && b->pg && db->tx_depth == 0 && b->replicas_added >= BULK_ANALYZE_ROWS &&
	    cat_exec(db, "ANALYZE dids; ANALYZE contents; ANALYZE replicas") != DM_OK)
		dm_log(DM_LOG_WARN, "catalog", "ANALYZE after a bulk registration failed: %s",
		       cat_error(db)->msg);
	bulk_restore_fk(b);
	bulk_free(b);
	return rc;
}

void cat_bulk_abort(struct cat_bulk *b)
{
	if (!b)
		return;
	if (b->copy)
		sqldrv_bulk_end(b->copy, DM_EINVAL);
	b->copy = NULL;
	for (int i = 0; i < B_NSTMT; i++) {
		if (b->st[i])
			sqldrv_reset(b->st[i]);
		b->st[i] = NULL;
	}
	cat_tx_end(b->db, DM_EINVAL);
	bulk_restore_fk(b);
	bulk_free(b);
}

enum dm_status cat_replicas_add(struct cat_db *db, const char *rse, const struct cat_file_in *f,
				size_t n, const char *ds_scope, const char *ds_name, unsigned flags)
{
	CAT_REMOTE(db, replicas_add, rse, f, n, ds_scope, ds_name, flags);
	struct cat_bulk *b;
	enum dm_status rc = cat_bulk_begin(db, rse, ds_scope, ds_name, flags, &b);

	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rc = cat_bulk_add(b, &f[i]);
		if (rc) {
			struct dm_err keep = db->err;
			cat_bulk_abort(b);
			db->err = keep;
			return rc;
		}
	}
	return cat_bulk_commit(b, NULL);
}

/* ------------------------------------------------------------------ */
/* single replicas                                                     */

static enum dm_status replica_key(struct cat_db *db, const char *rse, const char *scope,
				  const char *name, int64_t *did, int64_t *num)
{
	enum dm_status rc = cat_rse_num(db, rse, num);

	if (rc == DM_OK)
		rc = cat_did_id(db, scope, name, did, NULL);
	return rc;
}

enum dm_status cat_replica_set_state(struct cat_db *db, const char *rse, const char *scope,
				     const char *name, enum cat_replica_state state)
{
	CAT_REMOTE(db, replica_set_state, rse, scope, name, state);
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;
	int64_t did, num;

	if (rc)
		return rc;
	rc = replica_key(db, rse, scope, name, &did, &num);
	if (rc == DM_OK)
		rc = cat_require_scope_owner(db, scope, "update replicas");
	if (rc)
		goto out;
	if (*cat_replica_state_code(state) == '?') {
		rc = cat_fail(db, DM_EINVAL, "InvalidObject", "invalid replica state");
		goto out;
	}
	st = cat_stmt(db, "UPDATE replicas SET state=?, updated_at=? WHERE did_id=? AND rse_num=?");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_text(st, 1, cat_replica_state_code(state), 1);
	sqldrv_bind_int64(st, 2, dm_now());
	sqldrv_bind_int64(st, 3, did);
	sqldrv_bind_int64(st, 4, num);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "updating a replica");
	else if (sqldrv_changes(db->sql) == 0)
		rc = cat_fail(db, DM_ENOENT, "ReplicaNotFound", "No replica of '%s:%s' on RSE '%s'",
			      scope, name, rse);
	if (rc == DM_OK)
		rc = cat_locks_on_replica_state(db, did, num, state);
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_replica_del(struct cat_db *db, const char *rse, const char *scope,
			       const char *name)
{
	CAT_REMOTE(db, replica_del, rse, scope, name);
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;
	int64_t did, num, bytes = 0, locks = 0;
	int r;

	if (rc)
		return rc;
	rc = replica_key(db, rse, scope, name, &did, &num);
	if (rc == DM_OK)
		rc = cat_require_admin(db, "delete replicas");
	if (rc)
		goto out;
	st = cat_stmt(db, "SELECT bytes, lock_cnt FROM replicas WHERE did_id=? AND rse_num=?");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, num);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		bytes = sqldrv_col_int64(st, 0);
		locks = sqldrv_col_int64(st, 1);
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW) {
		rc = cat_fail(db, DM_ENOENT, "ReplicaNotFound", "No replica of '%s:%s' on RSE '%s'",
			      scope, name, rse);
		goto out;
	}
	if (locks > 0) {
		rc = cat_fail(db, DM_ECONFLICT, "ReplicaIsLocked",
			      "Replica of '%s:%s' on RSE '%s' is locked by %lld rule lock(s)",
			      scope, name, rse, (long long)locks);
		goto out;
	}
	rc = cat_replica_remove_row(db, did, num, bytes);
out:
	return cat_tx_end(db, rc);
}

#define REP_COLS "d.scope, d.name, r.rse, r.id, rp.bytes, d.adler32, d.md5, rp.path, rp.state," \
		 " rp.lock_cnt, rp.tombstone, rp.created_at, rp.accessed_at"

enum dm_status cat_replica_list(struct cat_db *db, const char *scope, const char *name,
				const char *rse, unsigned state_mask, cat_replica_cb cb, void *ud)
{
	CAT_REMOTE(db, replica_list, scope, name, rse, state_mask, cb, ud);
	enum cat_did_type type;
	int64_t id, num = 0;
	enum dm_status rc = cat_did_id(db, scope, name, &id, &type);
	struct sqldrv_stmt *st;
	char states[8] = "";
	int ns = 0, r;

	if (rc)
		return rc;
	if (rse && (rc = cat_rse_num(db, rse, &num)))
		return rc;
	if (!state_mask)
		state_mask = 1u << CAT_REPLICA_AVAILABLE;
	for (unsigned i = 0; *cat_replica_state_code((enum cat_replica_state)i) != '?'; i++)
		if (state_mask & (1u << i))
			states[ns++] = cat_replica_state_code((enum cat_replica_state)i)[0];
	states[ns] = 0;
#define REP_WHERE " JOIN replicas rp ON rp.did_id=d.id JOIN rses r ON r.num=rp.rse_num" \
		  " WHERE r.deleted=0 AND instr(?2, rp.state) > 0 AND (?3 = 0 OR rp.rse_num=?3)"
	if (type == CAT_DID_FILE)
		st = cat_stmt(db, "SELECT " REP_COLS " FROM dids d" REP_WHERE " AND d.id=?1"
				  " ORDER BY r.rse");
	else if (type == CAT_DID_DATASET)
		st = cat_stmt(db, "SELECT " REP_COLS " FROM contents c JOIN dids d ON d.id=c.child_id"
				  REP_WHERE " AND c.parent_id=?1 ORDER BY c.child_id, r.rse");
	else
		st = cat_stmt(db, "WITH RECURSIVE tree(id) AS (SELECT ?1 UNION SELECT c.child_id"
				  " FROM contents c JOIN tree t ON c.parent_id=t.id JOIN dids x"
				  " ON x.id=c.child_id AND x.did_type!='F')"
				  " SELECT " REP_COLS " FROM tree t JOIN contents c ON c.parent_id=t.id"
				  " JOIN dids d ON d.id=c.child_id AND d.did_type='F'" REP_WHERE
				  " ORDER BY d.scope, d.name, r.rse");
#undef REP_WHERE
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, id);
	sqldrv_bind_text(st, 2, states, -1);
	sqldrv_bind_int64(st, 3, num);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_replica x = { 0 };
		x.scope = cat_col_text(st, 0);
		x.name = cat_col_text(st, 1);
		x.rse = cat_col_text(st, 2);
		x.rse_id = cat_col_text(st, 3);
		x.bytes = (uint64_t)sqldrv_col_int64(st, 4);
		x.adler32 = cat_col_text(st, 5);
		x.md5 = cat_col_text(st, 6);
		x.path = cat_col_text(st, 7);
		if (cat_replica_state_parse(cat_col_text(st, 8), &x.state))
			x.state = CAT_REPLICA_UNAVAILABLE;
		x.lock_cnt = sqldrv_col_int64(st, 9);
		x.tombstone = sqldrv_col_int64(st, 10);
		x.created_at = sqldrv_col_int64(st, 11);
		x.accessed_at = sqldrv_col_int64(st, 12);
		if (cb(ud, &x))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing replicas");
	return DM_OK;
}

/* ------------------------------------------------------------------ */
/* limits and usage                                                    */

enum dm_status cat_account_limit_set(struct cat_db *db, const char *account, const char *rse,
				     int64_t bytes)
{
	enum dm_status rc;
	struct sqldrv_stmt *st;
	int64_t num;

	if (bytes < -1)
		return cat_fail(db, DM_EINVAL, "InvalidObject",
				"account limit must be >= 0 bytes or -1 (unlimited), not %lld", (long long)bytes);
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "set account limits");
	if (rc == DM_OK)
		rc = cat_account_check(db, account);
	if (rc == DM_OK)
		rc = cat_rse_num(db, rse, &num);
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO account_limits(account, rse_num, bytes) VALUES (?,?,?)"
			  " ON CONFLICT(account, rse_num) DO UPDATE SET bytes=excluded.bytes");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_text(st, 1, account, -1);
	sqldrv_bind_int64(st, 2, num);
	sqldrv_bind_int64(st, 3, bytes);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "setting an account limit");
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_account_limit_get(struct cat_db *db, const char *account, const char *rse,
				     int64_t *bytes, int *is_set)
{
	enum dm_status rc = cat_account_check(db, account);
	struct sqldrv_stmt *st;
	int64_t num;
	int r;

	if (rc == DM_OK)
		rc = cat_rse_num(db, rse, &num);
	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT bytes FROM account_limits WHERE account=? AND rse_num=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, account, -1);
	sqldrv_bind_int64(st, 2, num);
	r = sqldrv_step(st);
	*is_set = r == SQLDRV_ROW;
	*bytes = r == SQLDRV_ROW ? sqldrv_col_int64(st, 0) : 0;
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "reading an account limit");
	return DM_OK;
}

enum dm_status cat_usage_refresh(struct cat_db *db)
{
	CAT_REMOTE0(db, usage_refresh);
	enum dm_status rc = cat_tx_begin(db);
	int64_t now = dm_now();
	struct sqldrv_stmt *st;

	if (rc)
		return rc;
	st = cat_stmt(db, "INSERT INTO rse_usage(rse_num, source, used, files, updated_at)"
			  " SELECT rse_num, 'rucio', sum(bytes), sum(files), ?1 FROM updated_rse_counters"
			  " WHERE true GROUP BY rse_num"
			  " ON CONFLICT(rse_num, source) DO UPDATE SET used=rse_usage.used+excluded.used,"
			  " files=rse_usage.files+excluded.files, updated_at=excluded.updated_at");
	if (!st || (sqldrv_bind_int64(st, 1, now), sqldrv_step(st)) != SQLDRV_DONE) {
		rc = st ? cat_dberr(db, "folding RSE counters") : db->err.code;
		goto out;
	}
	rc = cat_exec(db, "DELETE FROM updated_rse_counters");
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO account_usage(account, rse_num, files, bytes, updated_at)"
			  " SELECT account, rse_num, sum(files), sum(bytes), ?1 FROM updated_account_counters"
			  " WHERE true GROUP BY account, rse_num"
			  " ON CONFLICT(account, rse_num) DO UPDATE SET files=account_usage.files+excluded.files,"
			  " bytes=account_usage.bytes+excluded.bytes, updated_at=excluded.updated_at");
	if (!st || (sqldrv_bind_int64(st, 1, now), sqldrv_step(st)) != SQLDRV_DONE) {
		rc = st ? cat_dberr(db, "folding account counters") : db->err.code;
		goto out;
	}
	rc = cat_exec(db, "DELETE FROM updated_account_counters");
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_account_usage_list(struct cat_db *db, const char *account, cat_usage_cb cb,
				      void *ud)
{
	CAT_REMOTE(db, account_usage_list, account, cb, ud);
	enum dm_status rc = cat_account_check(db, account);
	struct sqldrv_stmt *st;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT r.rse, coalesce(u.files,0), coalesce(u.bytes,0), l.bytes"
			  " FROM rses r LEFT JOIN account_usage u ON u.rse_num=r.num AND u.account=?1"
			  " LEFT JOIN account_limits l ON l.rse_num=r.num AND l.account=?1"
			  " WHERE r.deleted=0 AND (u.account IS NOT NULL OR l.account IS NOT NULL)"
			  " ORDER BY r.rse");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, account, -1);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_usage u = { 0 };
		u.account = account;
		u.rse = cat_col_text(st, 0);
		u.files = (uint64_t)sqldrv_col_int64(st, 1);
		u.bytes = (uint64_t)sqldrv_col_int64(st, 2);
		u.limit_set = !sqldrv_col_is_null(st, 3);
		u.limit = u.limit_set ? sqldrv_col_int64(st, 3) : 0;
		if (cb(ud, &u))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing account usage");
	return DM_OK;
}

enum dm_status cat_rse_usage_list(struct cat_db *db, const char *rse, cat_usage_cb cb, void *ud)
{
	int64_t num = 0;
	enum dm_status rc = rse ? cat_rse_num(db, rse, &num) : DM_OK;
	struct sqldrv_stmt *st;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT r.rse, u.source, u.files, u.used FROM rse_usage u JOIN rses r"
			  " ON r.num=u.rse_num WHERE r.deleted=0 AND (?1=0 OR r.num=?1)"
			  " ORDER BY r.rse, u.source");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, num);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_usage u = { 0 };
		u.rse = cat_col_text(st, 0);
		u.account = cat_col_text(st, 1); /* the source, for RSE usage */
		u.files = (uint64_t)sqldrv_col_int64(st, 2);
		u.bytes = (uint64_t)sqldrv_col_int64(st, 3);
		u.limit = -1;
		if (cb(ud, &u))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing RSE usage");
	return DM_OK;
}
