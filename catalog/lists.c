/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lists.c - listings added for didfs serve (declared in the "serve
 * listings" section at the end of catalog.h): an account's identities and
 * dataset locks (Rucio's DatasetLock rows) by RSE or by DID.  Each streams
 * row by row through its callback.
 */
#include "catalog_i.h"

#include <string.h>

enum dm_status cat_identity_list(struct cat_db *db, const char *account, cat_identity_cb cb, void *ud)
{
	enum dm_status rc = cat_account_check(db, account);
	struct sqldrv_stmt *st;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT m.identity, m.identity_type, COALESCE(i.email, '') FROM account_map m"
			  " LEFT JOIN identities i ON i.identity=m.identity AND i.identity_type=m.identity_type"
			  " WHERE m.account=? ORDER BY m.identity_type, m.identity");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, account, -1);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW)
		if (cb(ud, cat_col_text(st, 0), cat_col_text(st, 1), cat_col_text(st, 2)))
			break;
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		rc = cat_dberr(db, "listing identities");
	sqldrv_reset(st);
	return rc;
}

static const char *lock_state(const char *code)
{
	if (code && code[0] == 'O')
		return "OK";
	if (code && code[0] == 'S')
		return "STUCK";
	return "REPLICATING";
}

enum dm_status cat_dataset_lock_list(struct cat_db *db, const char *rse, const char *scope,
				     const char *name, cat_dataset_lock_cb cb, void *ud)
{
	enum dm_status rc;
	struct sqldrv_stmt *st;
	int64_t key;
	int r;

	if (rse) {
		rc = cat_rse_num(db, rse, &key);
		if (rc)
			return rc;
		st = cat_stmt(db, "SELECT r.id, r.rse, d.scope, d.name, l.rule_id, l.account, l.state,"
				  " l.length, l.bytes FROM dataset_locks l JOIN dids d ON d.id=l.did_id"
				  " JOIN rses r ON r.num=l.rse_num WHERE l.rse_num=?"
				  " ORDER BY d.scope, d.name, l.rule_id");
	} else {
		enum cat_did_type t;

		rc = cat_did_id(db, scope, name, &key, &t);
		if (rc == DM_ENOENT)
			return DM_OK; /* Rucio lists nothing for an unknown DID */
		if (rc)
			return rc;
		st = cat_stmt(db, "SELECT r.id, r.rse, d.scope, d.name, l.rule_id, l.account, l.state,"
				  " l.length, l.bytes FROM dataset_locks l JOIN dids d ON d.id=l.did_id"
				  " JOIN rses r ON r.num=l.rse_num WHERE l.did_id=? ORDER BY r.rse, l.rule_id");
	}
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, key);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_dataset_lock l = {
			.rse_id = cat_col_text(st, 0), .rse = cat_col_text(st, 1),
			.scope = cat_col_text(st, 2), .name = cat_col_text(st, 3),
			.rule_id = cat_col_text(st, 4), .account = cat_col_text(st, 5),
			.state = lock_state(cat_col_text(st, 6)),
			.length = sqldrv_col_is_null(st, 7) ? -1 : sqldrv_col_int64(st, 7),
			.bytes = sqldrv_col_is_null(st, 8) ? -1 : sqldrv_col_int64(st, 8),
		};
		if (cb(ud, &l))
			break;
	}
	rc = DM_OK;
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		rc = cat_dberr(db, "listing dataset locks");
	sqldrv_reset(st);
	return rc;
}

/* The columns of a DID row (the same as did.c reads), plus its metadata. */
#define SEARCH_COLS "d.id, d.scope, d.name, d.account, d.did_type, d.is_open, d.monotonic," \
		    " d.bytes, d.length, d.adler32, d.md5, d.created_at, d.updated_at," \
		    " d.expired_at, d.closed_at, d.availability"

enum dm_status cat_did_search(struct cat_db *db, const char *scope, const char *pattern,
			      unsigned type_mask, int with_meta, cat_did_meta_cb cb, void *ud)
{
	static const char *const codes = "FDC";
	enum dm_status rc;
	struct sqldrv_stmt *st;
	char types[4] = "";
	int nt = 0, r;
	struct dm_err e;

	if ((rc = cat_validate_scope(scope, &e))) {
		db->err = e;
		return rc;
	}
	if ((rc = cat_scope_check(db, scope, NULL)))
		return rc;
	if (!type_mask)
		type_mask = 7;
	for (int t = 0; t < 3; t++)
		if (type_mask & (1u << t))
			types[nt++] = codes[t];
	types[nt] = 0;
	if (with_meta && cat_is_pg(db))
		st = cat_stmt(db, "SELECT " SEARCH_COLS ", (SELECT coalesce(json_object_agg(m.key,"
				  " m.value)::text, '{}') FROM did_meta m WHERE m.did_id=d.id) FROM dids d"
				  " WHERE d.scope=?1 AND glob(?2, d.name) AND instr(?3, d.did_type) > 0"
				  " ORDER BY d.name");
	else if (with_meta)
		st = cat_stmt(db, "SELECT " SEARCH_COLS ", (SELECT json_group_object(m.key, m.value)"
				  " FROM did_meta m WHERE m.did_id=d.id) FROM dids d WHERE d.scope=?1"
				  " AND d.name GLOB ?2 AND instr(?3, d.did_type) > 0 ORDER BY d.name");
	else if (cat_is_pg(db))
		st = cat_stmt(db, "SELECT " SEARCH_COLS ", NULL FROM dids d WHERE d.scope=?1"
				  " AND glob(?2, d.name) AND instr(?3, d.did_type) > 0 ORDER BY d.name");
	else
		st = cat_stmt(db, "SELECT " SEARCH_COLS ", NULL FROM dids d WHERE d.scope=?1"
				  " AND d.name GLOB ?2 AND instr(?3, d.did_type) > 0 ORDER BY d.name");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, pattern && *pattern ? pattern : "*", -1);
	sqldrv_bind_text(st, 3, types, -1);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_did d;
		const char *av = cat_col_text(st, 15);

		memset(&d, 0, sizeof(d));
		d.id = sqldrv_col_int64(st, 0);
		d.scope = cat_col_text(st, 1);
		d.name = cat_col_text(st, 2);
		d.account = cat_col_text(st, 3);
		if (cat_did_type_from_code(cat_col_text(st, 4), &d.type))
			d.type = CAT_DID_FILE;
		d.is_open = (int)sqldrv_col_int64(st, 5);
		d.monotonic = (int)sqldrv_col_int64(st, 6);
		d.bytes = (uint64_t)sqldrv_col_int64(st, 7);
		d.length = d.type == CAT_DID_FILE ? 1 : (uint64_t)sqldrv_col_int64(st, 8);
		d.adler32 = cat_col_text(st, 9);
		d.md5 = cat_col_text(st, 10);
		d.created_at = sqldrv_col_int64(st, 11);
		d.updated_at = sqldrv_col_int64(st, 12);
		d.expired_at = sqldrv_col_int64(st, 13);
		d.closed_at = sqldrv_col_int64(st, 14);
		d.availability = !av ? "AVAILABLE" : *av == 'L' ? "LOST" : *av == 'D' ? "DELETED" : "AVAILABLE";
		if (cb(ud, &d, cat_col_text(st, 16)))
			break;
	}
	rc = DM_OK;
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		rc = cat_dberr(db, "searching DIDs");
	sqldrv_reset(st);
	return rc;
}

enum dm_status cat_file_rule_ids(struct cat_db *db, const char *scope, const char *name,
				 cat_rule_id_cb cb, void *ud)
{
	enum cat_did_type t;
	enum dm_status rc;
	struct sqldrv_stmt *st;
	int64_t id;
	int r;

	if ((rc = cat_did_id(db, scope, name, &id, &t)))
		return rc;
	st = cat_stmt(db, "SELECT DISTINCT rule_id FROM locks WHERE did_id=? ORDER BY rule_id");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, id);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW)
		if (cb(ud, cat_col_text(st, 0)))
			break;
	rc = DM_OK;
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		rc = cat_dberr(db, "listing the rules of a file's locks");
	sqldrv_reset(st);
	return rc;
}
