/* SPDX-License-Identifier: Apache-2.0 */
/*
 * did.c - data identifiers: collections, attach/detach with Rucio's rules,
 * open/close, lifetimes, listings and key/value metadata.
 *
 * Rules enforced on attach (Rucio core/did.py): the parent must exist and be
 * open; a DATASET takes only FILEs, a CONTAINER only DATASETs and CONTAINERs;
 * a file's bytes/adler32 given with an attachment must agree with the
 * catalog (FileConsistencyMismatch); a child attached twice is
 * FileAlreadyExists (files) or DuplicateContent (collections) unless the
 * caller ignores duplicates; a container never becomes its own ancestor.
 * Each modified parent gets one updated_dids row ('A' attach, 'D' detach),
 * the queue the judge-evaluator reads.
 */
#include "catalog_i.h"
#include "dmcheck.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const did_type_names[] = { "FILE", "DATASET", "CONTAINER" };
static const char *const did_type_codes[] = { "F", "D", "C" };

const char *cat_did_type_name(enum cat_did_type t)
{
	return (unsigned)t < 3 ? did_type_names[t] : "?";
}

const char *cat_did_type_code(enum cat_did_type t)
{
	return (unsigned)t < 3 ? did_type_codes[t] : "?";
}

int cat_did_type_parse(const char *s, enum cat_did_type *t)
{
	for (unsigned i = 0; i < 3; i++) {
		if (s && (strcasecmp(s, did_type_names[i]) == 0 || strcasecmp(s, did_type_codes[i]) == 0)) {
			*t = (enum cat_did_type)i;
			return 0;
		}
	}
	return -1;
}

int cat_did_type_from_code(const char *code, enum cat_did_type *t)
{
	return cat_did_type_parse(code, t);
}

/* The column list every DID row query selects, in this order. */
#define DID_COLS "d.id, d.scope, d.name, d.account, d.did_type, d.is_open, d.monotonic," \
		 " d.bytes, d.length, d.adler32, d.md5, d.created_at, d.updated_at," \
		 " d.expired_at, d.closed_at, d.availability"

static void did_from_row(struct sqldrv_stmt *st, struct cat_did *d)
{
	const char *av;

	memset(d, 0, sizeof *d);
	d->id = sqldrv_col_int64(st, 0);
	d->scope = cat_col_text(st, 1);
	d->name = cat_col_text(st, 2);
	d->account = cat_col_text(st, 3);
	if (cat_did_type_from_code(cat_col_text(st, 4), &d->type))
		d->type = CAT_DID_FILE;
	d->is_open = (int)sqldrv_col_int64(st, 5);
	d->monotonic = (int)sqldrv_col_int64(st, 6);
	d->bytes = (uint64_t)sqldrv_col_int64(st, 7);
	d->length = (uint64_t)sqldrv_col_int64(st, 8);
	d->adler32 = cat_col_text(st, 9);
	d->md5 = cat_col_text(st, 10);
	d->created_at = sqldrv_col_int64(st, 11);
	d->updated_at = sqldrv_col_int64(st, 12);
	d->expired_at = sqldrv_col_int64(st, 13);
	d->closed_at = sqldrv_col_int64(st, 14);
	av = cat_col_text(st, 15);
	d->availability = !av ? "AVAILABLE" : *av == 'L' ? "LOST" : *av == 'D' ? "DELETED" : "AVAILABLE";
	if (d->type == CAT_DID_FILE)
		d->length = 1;
}

static enum dm_status did_rows(struct cat_db *db, struct sqldrv_stmt *st, cat_did_cb cb, void *ud,
			       const char *what)
{
	int r;
	struct cat_did d;

	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		did_from_row(st, &d);
		if (cb(ud, &d))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, what);
	return DM_OK;
}

enum dm_status cat_did_id(struct cat_db *db, const char *scope, const char *name, int64_t *id,
			  enum cat_did_type *type)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT id, did_type FROM dids WHERE scope=? AND name=?");
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, name, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		if (id)
			*id = sqldrv_col_int64(st, 0);
		if (type && cat_did_type_from_code(cat_col_text(st, 1), type))
			*type = CAT_DID_FILE;
	}
	sqldrv_reset(st);
	if (r == SQLDRV_ROW)
		return DM_OK;
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "looking up a DID");
	if (cat_scope_check(db, scope, NULL) != DM_OK)
		return db->err.code;
	return cat_fail(db, DM_ENOENT, "DataIdentifierNotFound", "Data identifier '%s:%s' not found",
			scope, name);
}

static enum dm_status check_did_args(struct cat_db *db, const char *scope, const char *name)
{
	struct dm_err e;
	enum dm_status rc = cat_validate_scope(scope, &e);

	if (rc == DM_OK)
		rc = cat_validate_name(name, &e);
	if (rc)
		db->err = e;
	return rc;
}

/* Every lifetime from outside is 0..DM_DURATION_MAX seconds, and the expiry
 * is a saturating sum: a lifetime near INT64_MAX must not wrap to a past
 * expiry (the undertaker would delete the DID at once). */
static enum dm_status lifetime_range(struct cat_db *db, int64_t lifetime)
{
	return cat_fail(db, DM_EINVAL, "InvalidValueForKey",
			"lifetime must be from 0 to " DM_DURATION_MAX_STR " seconds (100 years), not %lld",
			(long long)lifetime);
}

enum dm_status cat_did_add(struct cat_db *db, const char *scope, const char *name,
			   enum cat_did_type type, int64_t lifetime)
{
	CAT_REMOTE(db, did_add, scope, name, type, lifetime);
	enum dm_status rc = check_did_args(db, scope, name);
	struct sqldrv_stmt *st;
	int64_t now = dm_now();

	if (rc)
		return rc;
	if (type == CAT_DID_FILE)
		return cat_fail(db, DM_ENOTSUP, "UnsupportedOperation",
				"Only collection (dataset/container) can be registered; files come with replicas (add-replicas, upload)");
	if (lifetime < 0 || lifetime > DM_DURATION_MAX)
		return lifetime_range(db, lifetime);
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_scope_owner(db, scope, "add data identifiers");
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO dids(scope, name, account, did_type, is_open, bytes, length,"
			  " expired_at, created_at, updated_at) VALUES (?,?,?,?,1,0,0,?,?,?)"
			  " ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, name, -1);
	sqldrv_bind_text(st, 3, db->issuer, -1);
	sqldrv_bind_text(st, 4, cat_did_type_code(type), -1);
	if (lifetime)
		sqldrv_bind_int64(st, 5, dm_time_add(now, lifetime));
	sqldrv_bind_int64(st, 6, now);
	sqldrv_bind_int64(st, 7, now);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "adding a DID");
	else if (sqldrv_changes(db->sql) == 0)
		rc = cat_fail(db, DM_EEXIST, "DataIdentifierAlreadyExists",
			      "Data Identifier '%s:%s' already exists", scope, name);
	else /* CREATE_DTS / CREATE_CNT (catalog/outbox.c) */
		rc = cat_outbox_did_created(db, scope, name, type, lifetime ? dm_time_add(now, lifetime) : 0);
out:
	return cat_tx_end(db, rc);
}

/* bytes and length of a collection computed from its content. */
static void collection_totals(struct cat_db *db, int64_t id, enum cat_did_type type,
			      uint64_t *bytes, uint64_t *length)
{
	struct sqldrv_stmt *st;

	st = cat_stmt(db, "SELECT count(*) FROM contents WHERE parent_id=?");
	if (st) {
		sqldrv_bind_int64(st, 1, id);
		if (sqldrv_step(st) == SQLDRV_ROW)
			*length = (uint64_t)sqldrv_col_int64(st, 0);
		sqldrv_reset(st);
	}
	if (type == CAT_DID_DATASET)
		st = cat_stmt(db, "SELECT coalesce(sum(d.bytes),0) FROM contents c JOIN dids d"
				  " ON d.id=c.child_id WHERE c.parent_id=?");
	else
		st = cat_stmt(db, "WITH RECURSIVE tree(id) AS (SELECT ?1 UNION SELECT c.child_id"
				  " FROM contents c JOIN tree t ON c.parent_id=t.id JOIN dids x"
				  " ON x.id=c.child_id AND x.did_type!='F')"
				  " SELECT coalesce(sum(d.bytes),0) FROM tree t JOIN contents c"
				  " ON c.parent_id=t.id JOIN dids d ON d.id=c.child_id AND d.did_type='F'");
	if (st) {
		sqldrv_bind_int64(st, 1, id);
		if (sqldrv_step(st) == SQLDRV_ROW)
			*bytes = (uint64_t)sqldrv_col_int64(st, 0);
		sqldrv_reset(st);
	}
}

enum dm_status cat_did_get(struct cat_db *db, const char *scope, const char *name,
			   cat_did_cb cb, void *ud)
{
	CAT_REMOTE(db, did_get, scope, name, cb, ud);
	enum dm_status rc = check_did_args(db, scope, name);
	struct sqldrv_stmt *st;
	struct cat_did d;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT " DID_COLS " FROM dids d WHERE d.scope=? AND d.name=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, name, -1);
	r = sqldrv_step(st);
	if (r != SQLDRV_ROW) {
		sqldrv_reset(st);
		if (r != SQLDRV_DONE)
			return cat_dberr(db, "reading a DID");
		return cat_did_id(db, scope, name, NULL, NULL);
	}
	did_from_row(st, &d);
	/* Copy the row's strings: the totals queries below reuse the handle. */
	{
		char *s_scope = dm_xstrdup(d.scope), *s_name = dm_xstrdup(d.name);
		char *s_acc = dm_xstrdup(d.account), *s_ad = d.adler32 ? dm_xstrdup(d.adler32) : NULL;
		char *s_md5 = d.md5 ? dm_xstrdup(d.md5) : NULL;
		d.scope = s_scope;
		d.name = s_name;
		d.account = s_acc;
		d.adler32 = s_ad;
		d.md5 = s_md5;
		sqldrv_reset(st);
		if (d.type != CAT_DID_FILE && (d.is_open || d.closed_at == 0))
			collection_totals(db, d.id, d.type, &d.bytes, &d.length);
		cb(ud, &d);
		free(s_scope);
		free(s_name);
		free(s_acc);
		free(s_ad);
		free(s_md5);
	}
	return DM_OK;
}

/* Is `anc` an ancestor of (or equal to) `id`? */
static int is_ancestor(struct cat_db *db, int64_t anc, int64_t id)
{
	struct sqldrv_stmt *st;
	int found = 0;

	if (anc == id)
		return 1;
	st = cat_stmt(db, "WITH RECURSIVE up(id) AS (SELECT ?1 UNION SELECT c.parent_id"
			  " FROM contents c JOIN up u ON c.child_id=u.id)"
			  " SELECT 1 FROM up WHERE id=?2 LIMIT 1");
	if (!st)
		return 1;
	sqldrv_bind_int64(st, 1, id);
	sqldrv_bind_int64(st, 2, anc);
	found = sqldrv_step(st) == SQLDRV_ROW;
	sqldrv_reset(st);
	return found;
}

struct parent_info {
	int64_t id;
	enum cat_did_type type;
	int is_open;
};

static enum dm_status load_parent(struct cat_db *db, const char *scope, const char *name,
				  struct parent_info *p, const char *what)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = cat_did_id(db, scope, name, &p->id, &p->type);

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT is_open FROM dids WHERE id=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, p->id);
	p->is_open = sqldrv_step(st) == SQLDRV_ROW ? (int)sqldrv_col_int64(st, 0) : 0;
	sqldrv_reset(st);
	if (p->type == CAT_DID_FILE)
		return cat_fail(db, DM_ENOTSUP, "UnsupportedOperation",
				"Cannot %s '%s:%s': it is a file, not a dataset or container",
				what, scope, name);
	return DM_OK;
}

enum dm_status cat_queue_updated_did(struct cat_db *db, int64_t id, const char *action)
{
	struct sqldrv_stmt *st = cat_stmt(db, "INSERT INTO updated_dids(did_id, rule_evaluation_action,"
				       " created_at) VALUES (?,?,?)");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, id);
	sqldrv_bind_text(st, 2, action, -1);
	sqldrv_bind_int64(st, 3, dm_now());
	if (sqldrv_step(st) != SQLDRV_DONE)
		return cat_dberr(db, "queueing a DID for rule evaluation");
	return DM_OK;
}

enum dm_status cat_did_attach(struct cat_db *db, const char *scope, const char *name,
			      const struct cat_did_ref *children, size_t n, unsigned flags)
{
	CAT_REMOTE(db, did_attach, scope, name, children, n, flags);
	enum dm_status rc = check_did_args(db, scope, name);
	struct parent_info p;
	struct sqldrv_stmt *st;
	size_t i, added = 0;
	int64_t now = dm_now();

	if (rc)
		return rc;
	if (n == 0)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "nothing to attach to '%s:%s'", scope, name);
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = load_parent(db, scope, name, &p, "attach to");
	if (rc == DM_OK)
		rc = cat_require_scope_owner(db, scope, "attach data identifiers");
	if (rc)
		goto out;
	if (!p.is_open) {
		rc = cat_fail(db, DM_ECONFLICT, "UnsupportedOperation",
			      "Data identifier '%s:%s' is closed: cannot attach to it", scope, name);
		goto out;
	}
	for (i = 0; i < n; i++) {
		int64_t cid;
		enum cat_did_type ct;

		rc = check_did_args(db, children[i].scope, children[i].name);
		if (rc == DM_OK)
			rc = cat_did_id(db, children[i].scope, children[i].name, &cid, &ct);
		if (rc)
			goto out;
		if (p.type == CAT_DID_DATASET && ct != CAT_DID_FILE) {
			rc = cat_fail(db, DM_ENOTSUP, "UnsupportedOperation",
				      "Cannot attach %s '%s:%s' to dataset '%s:%s': a dataset holds only files",
				      cat_did_type_name(ct), children[i].scope, children[i].name, scope, name);
			goto out;
		}
		if (p.type == CAT_DID_CONTAINER && ct == CAT_DID_FILE) {
			rc = cat_fail(db, DM_ENOTSUP, "UnsupportedOperation",
				      "Cannot attach file '%s:%s' to container '%s:%s': a container holds datasets and containers",
				      children[i].scope, children[i].name, scope, name);
			goto out;
		}
		if (ct == CAT_DID_CONTAINER && is_ancestor(db, cid, p.id)) {
			rc = cat_fail(db, DM_ENOTSUP, "UnsupportedOperation",
				      "Cannot attach '%s:%s' to '%s:%s': it would create a cycle",
				      children[i].scope, children[i].name, scope, name);
			goto out;
		}
		st = cat_stmt(db, "INSERT INTO contents(parent_id, child_id, created_at) VALUES (?,?,?)"
				  " ON CONFLICT DO NOTHING");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_int64(st, 1, p.id);
		sqldrv_bind_int64(st, 2, cid);
		sqldrv_bind_int64(st, 3, now);
		if (sqldrv_step(st) != SQLDRV_DONE) {
			rc = cat_dberr(db, "attaching");
			goto out;
		}
		if (sqldrv_changes(db->sql) == 0) {
			if (flags & CAT_IGNORE_DUPLICATE)
				continue;
			rc = cat_fail(db, DM_EEXIST,
				      ct == CAT_DID_FILE ? "FileAlreadyExists" : "DuplicateContent",
				      "'%s:%s' is already attached to '%s:%s'", children[i].scope,
				      children[i].name, scope, name);
			goto out;
		}
		added++;
	}
	if (added) {
		st = cat_stmt(db, "UPDATE dids SET updated_at=? WHERE id=?");
		if (st) {
			sqldrv_bind_int64(st, 1, now);
			sqldrv_bind_int64(st, 2, p.id);
			sqldrv_step(st);
		}
		rc = cat_queue_updated_did(db, p.id, "A");
	}
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_did_detach(struct cat_db *db, const char *scope, const char *name,
			      const struct cat_did_ref *children, size_t n)
{
	enum dm_status rc = check_did_args(db, scope, name);
	struct parent_info p;
	struct sqldrv_stmt *st;
	size_t i;

	if (rc)
		return rc;
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = load_parent(db, scope, name, &p, "detach from");
	if (rc == DM_OK)
		rc = cat_require_scope_owner(db, scope, "detach data identifiers");
	if (rc)
		goto out;
	if (!p.is_open && !cat_issuer_is_admin(db)) {
		rc = cat_fail(db, DM_ECONFLICT, "UnsupportedOperation",
			      "Data identifier '%s:%s' is closed: cannot detach from it", scope, name);
		goto out;
	}
	for (i = 0; i < n; i++) {
		int64_t cid;

		rc = check_did_args(db, children[i].scope, children[i].name);
		if (rc == DM_OK)
			rc = cat_did_id(db, children[i].scope, children[i].name, &cid, NULL);
		if (rc)
			goto out;
		st = cat_stmt(db, "DELETE FROM contents WHERE parent_id=? AND child_id=?");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_int64(st, 1, p.id);
		sqldrv_bind_int64(st, 2, cid);
		if (sqldrv_step(st) != SQLDRV_DONE) {
			rc = cat_dberr(db, "detaching");
			goto out;
		}
		if (sqldrv_changes(db->sql) == 0) {
			rc = cat_fail(db, DM_ENOENT, "DataIdentifierNotFound",
				      "Data identifier '%s:%s' is not attached to '%s:%s'",
				      children[i].scope, children[i].name, scope, name);
			goto out;
		}
	}
	rc = cat_queue_updated_did(db, p.id, "D");
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_did_set_open(struct cat_db *db, const char *scope, const char *name, int open)
{
	CAT_REMOTE(db, did_set_open, scope, name, open);
	enum dm_status rc = check_did_args(db, scope, name);
	struct parent_info p;
	struct sqldrv_stmt *st;
	uint64_t bytes = 0, length = 0;
	int64_t now = dm_now();

	if (rc)
		return rc;
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = load_parent(db, scope, name, &p, "open or close");
	if (rc == DM_OK)
		rc = cat_require_scope_owner(db, scope, "change the status of data identifiers");
	if (rc)
		goto out;
	if (open && !p.is_open && !cat_issuer_is_admin(db)) {
		rc = cat_fail(db, DM_EPERM, "AccessDenied",
			      "Account %s can not reopen '%s:%s' (only admins can)", db->issuer, scope, name);
		goto out;
	}
	if (!open && !p.is_open) {
		rc = cat_fail(db, DM_ECONFLICT, "UnsupportedOperation",
			      "Data identifier '%s:%s' is already closed", scope, name);
		goto out;
	}
	if (open && p.is_open)
		goto out;
	if (!open)
		collection_totals(db, p.id, p.type, &bytes, &length);
	st = cat_stmt(db, "UPDATE dids SET is_open=?, bytes=?, length=?, closed_at=?, updated_at=?"
			  " WHERE id=?");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, open ? 1 : 0);
	sqldrv_bind_int64(st, 2, (int64_t)bytes);
	sqldrv_bind_int64(st, 3, (int64_t)length);
	if (!open)
		sqldrv_bind_int64(st, 4, now);
	sqldrv_bind_int64(st, 5, now);
	sqldrv_bind_int64(st, 6, p.id);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "changing the status");
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_did_set_lifetime(struct cat_db *db, const char *scope, const char *name,
				    int64_t lifetime)
{
	CAT_REMOTE(db, did_set_lifetime, scope, name, lifetime);
	enum dm_status rc = check_did_args(db, scope, name);
	struct sqldrv_stmt *st;
	int64_t id;

	if (rc)
		return rc;
	if (lifetime < 0 || lifetime > DM_DURATION_MAX)
		return lifetime_range(db, lifetime);
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_did_id(db, scope, name, &id, NULL);
	if (rc == DM_OK)
		rc = cat_require_scope_owner(db, scope, "set the lifetime of data identifiers");
	if (rc)
		goto out;
	st = cat_stmt(db, "UPDATE dids SET expired_at=?, updated_at=? WHERE id=?");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	if (lifetime)
		sqldrv_bind_int64(st, 1, dm_time_add(dm_now(), lifetime));
	sqldrv_bind_int64(st, 2, dm_now());
	sqldrv_bind_int64(st, 3, id);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "setting a lifetime");
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_did_list(struct cat_db *db, const char *scope, const char *pattern,
			    unsigned type_mask, cat_did_cb cb, void *ud)
{
	CAT_REMOTE(db, did_list, scope, pattern, type_mask, cb, ud);
	enum dm_status rc;
	struct sqldrv_stmt *st;
	char types[4] = "";
	int nt = 0;

	{
		struct dm_err e;
		rc = cat_validate_scope(scope, &e);
		if (rc) {
			db->err = e;
			return rc;
		}
	}
	rc = cat_scope_check(db, scope, NULL);
	if (rc)
		return rc;
	if (!type_mask)
		type_mask = 7;
	for (int t = 0; t < 3; t++)
		if (type_mask & (1u << t))
			types[nt++] = did_type_codes[t][0];
	types[nt] = 0;
	/* Names cannot hold '[' or ']', so a '*' / '?' pattern is a valid GLOB
	 * (SQLite reads a prefix of it off the index; PostgreSQL: glob(),
	 * schema_pg.c). */
	st = cat_stmt(db, cat_is_pg(db)
			  ? "SELECT " DID_COLS " FROM dids d WHERE d.scope=?1 AND glob(?2, d.name)"
			    " AND instr(?3, d.did_type) > 0 ORDER BY d.name"
			  : "SELECT " DID_COLS " FROM dids d WHERE d.scope=?1 AND d.name GLOB ?2"
			    " AND instr(?3, d.did_type) > 0 ORDER BY d.name");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, pattern && *pattern ? pattern : "*", -1);
	sqldrv_bind_text(st, 3, types, -1);
	return did_rows(db, st, cb, ud, "listing DIDs");
}

enum dm_status cat_did_list_roots(struct cat_db *db, const char *scope, cat_did_cb cb, void *ud)
{
	CAT_REMOTE(db, did_list_roots, scope, cb, ud);
	enum dm_status rc = cat_scope_check(db, scope, NULL);
	struct sqldrv_stmt *st;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT " DID_COLS " FROM dids d WHERE d.scope=? AND NOT EXISTS"
			  " (SELECT 1 FROM contents c WHERE c.child_id=d.id) ORDER BY d.name");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	return did_rows(db, st, cb, ud, "listing the top of a scope");
}

enum dm_status cat_did_list_content_from(struct cat_db *db, int64_t parent_id, int64_t after_id,
					 cat_did_cb cb, void *ud)
{
	CAT_REMOTE(db, did_list_content_from, parent_id, after_id, cb, ud);
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT " DID_COLS " FROM contents c JOIN dids d"
				       " ON d.id=c.child_id WHERE c.parent_id=? AND c.child_id>?"
				       " ORDER BY c.child_id");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, parent_id);
	sqldrv_bind_int64(st, 2, after_id);
	return did_rows(db, st, cb, ud, "listing content");
}

enum dm_status cat_did_list_content(struct cat_db *db, const char *scope, const char *name,
				    cat_did_cb cb, void *ud)
{
	CAT_REMOTE(db, did_list_content, scope, name, cb, ud);
	enum dm_status rc = check_did_args(db, scope, name);
	struct parent_info p;

	if (rc)
		return rc;
	rc = load_parent(db, scope, name, &p, "list the content of");
	if (rc)
		return rc;
	return cat_did_list_content_from(db, p.id, 0, cb, ud);
}

enum dm_status cat_did_list_files(struct cat_db *db, const char *scope, const char *name,
				  cat_did_cb cb, void *ud)
{
	CAT_REMOTE(db, did_list_files, scope, name, cb, ud);
	enum dm_status rc = check_did_args(db, scope, name);
	enum cat_did_type type;
	int64_t id;
	struct sqldrv_stmt *st;

	if (rc)
		return rc;
	rc = cat_did_id(db, scope, name, &id, &type);
	if (rc)
		return rc;
	if (type == CAT_DID_FILE)
		st = cat_stmt(db, "SELECT " DID_COLS " FROM dids d WHERE d.id=?");
	else if (type == CAT_DID_DATASET)
		st = cat_stmt(db, "SELECT " DID_COLS " FROM contents c JOIN dids d ON d.id=c.child_id"
				  " WHERE c.parent_id=? ORDER BY c.child_id");
	else
		st = cat_stmt(db, "WITH RECURSIVE tree(id) AS (SELECT ?1 UNION SELECT c.child_id"
				  " FROM contents c JOIN tree t ON c.parent_id=t.id JOIN dids x"
				  " ON x.id=c.child_id AND x.did_type!='F')"
				  " SELECT " DID_COLS " FROM tree t JOIN contents c ON c.parent_id=t.id"
				  " JOIN dids d ON d.id=c.child_id AND d.did_type='F'");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, id);
	return did_rows(db, st, cb, ud, "listing files");
}

enum dm_status cat_did_list_parents(struct cat_db *db, const char *scope, const char *name,
				    cat_did_cb cb, void *ud)
{
	CAT_REMOTE(db, did_list_parents, scope, name, cb, ud);
	enum dm_status rc = check_did_args(db, scope, name);
	struct sqldrv_stmt *st;
	int64_t id;

	if (rc)
		return rc;
	rc = cat_did_id(db, scope, name, &id, NULL);
	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT " DID_COLS " FROM contents c JOIN dids d ON d.id=c.parent_id"
			  " WHERE c.child_id=? ORDER BY d.scope, d.name");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, id);
	return did_rows(db, st, cb, ud, "listing parents");
}

/* ---- metadata ---- */

/* Keys that are DID columns (Rucio's DID_COLUMN plugin) and may not be set
 * as free metadata. */
static const char *const column_keys[] = {
	"scope", "name", "account", "did_type", "type", "is_open", "monotonic", "bytes", "length",
	"adler32", "md5", "availability", "expired_at", "closed_at", "created_at", "updated_at",
};

static enum dm_status meta_key_ok(struct cat_db *db, const char *key)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 || n > 255)
		return cat_fail(db, DM_EINVAL, "InvalidMetadata", "metadata key must be 1 to 255 characters");
	if (!dm_utf8_valid(key, n))
		return cat_fail(db, DM_EINVAL, "InputValidationError",
				"metadata key is not valid UTF-8 text");
	for (const char *p = key; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.'))
			return cat_fail(db, DM_EINVAL, "InvalidMetadata",
					"invalid metadata key '%s': use letters, digits, '_', '-', '.'", key);
	for (unsigned i = 0; i < DM_ARRAY_SIZE(column_keys); i++)
		if (strcmp(key, column_keys[i]) == 0)
			return cat_fail(db, DM_EPERM, "UnsupportedKeyType",
					"metadata key '%s' is a catalog column and cannot be set", key);
	return DM_OK;
}

enum dm_status cat_did_meta_set(struct cat_db *db, const char *scope, const char *name,
				const char *key, const char *value)
{
	CAT_REMOTE(db, did_meta_set, scope, name, key, value);
	enum dm_status rc = check_did_args(db, scope, name);
	struct sqldrv_stmt *st;
	int64_t id;

	if (rc)
		return rc;
	if (key && strcmp(key, "lifetime") == 0) {
		int64_t lt;
		if (!value || dm_parse_int(value, 0, DM_DURATION_MAX, &lt))
			return cat_fail(db, DM_EINVAL, "InvalidValueForKey",
					"lifetime must be a number of seconds from 0 to " DM_DURATION_MAX_STR
					" (100 years), not '%s'", value ? value : "");
		return cat_did_set_lifetime(db, scope, name, lt);
	}
	rc = meta_key_ok(db, key);
	if (rc)
		return rc;
	if (!value || strlen(value) > 3999)
		return cat_fail(db, DM_EINVAL, "InvalidValueForKey",
				"metadata value for '%s' must be given and at most 3999 characters", key);
	/* Values are text: every door (setfattr, the CLI, REST) hands them to
	 * JSON printers, which must never emit invalid UTF-8. */
	if (!dm_utf8_valid(value, strlen(value)))
		return cat_fail(db, DM_EINVAL, "InputValidationError",
				"metadata value for '%s' is not valid UTF-8 text", key);
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_did_id(db, scope, name, &id, NULL);
	if (rc == DM_OK)
		rc = cat_require_scope_owner(db, scope, "set metadata");
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO did_meta(did_id, key, value) VALUES (?,?,?)"
			  " ON CONFLICT(did_id, key) DO UPDATE SET value=excluded.value");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, id);
	sqldrv_bind_text(st, 2, key, -1);
	sqldrv_bind_text(st, 3, value, -1);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "setting metadata");
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_did_meta_del(struct cat_db *db, const char *scope, const char *name,
				const char *key)
{
	CAT_REMOTE(db, did_meta_del, scope, name, key);
	enum dm_status rc = check_did_args(db, scope, name);
	struct sqldrv_stmt *st;
	int64_t id;

	if (rc)
		return rc;
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_did_id(db, scope, name, &id, NULL);
	if (rc == DM_OK)
		rc = cat_require_scope_owner(db, scope, "delete metadata");
	if (rc)
		goto out;
	st = cat_stmt(db, "DELETE FROM did_meta WHERE did_id=? AND key=?");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, id);
	sqldrv_bind_text(st, 2, key, -1);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "deleting metadata");
	else if (sqldrv_changes(db->sql) == 0)
		rc = cat_fail(db, DM_ENOENT, "KeyNotFound", "No metadata key '%s' on '%s:%s'", key,
			      scope, name);
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_did_meta_list(struct cat_db *db, const char *scope, const char *name,
				 cat_kv_cb cb, void *ud)
{
	CAT_REMOTE(db, did_meta_list, scope, name, cb, ud);
	enum dm_status rc = check_did_args(db, scope, name);
	struct sqldrv_stmt *st;
	int64_t id;

	if (rc)
		return rc;
	rc = cat_did_id(db, scope, name, &id, NULL);
	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT key, value FROM did_meta WHERE did_id=? ORDER BY key");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, id);
	return cat_kv_rows(db, st, cb, ud, "listing metadata");
}
