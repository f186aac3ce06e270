/* SPDX-License-Identifier: Apache-2.0 */
/*
 * identity_x509.c - X.509 identities (Rucio's identity type X509): a DN
 * mapped to accounts, as `rucio-admin identity add --type X509` and the
 * REST server's /auth/x509 need.  The DN is stored as given (a deployment
 * picks one of Rucio's two formats, see server/auth.c).
 */
#include "catalog_i.h"

#include <string.h>

enum dm_status cat_identity_add_x509(struct cat_db *db, const char *account, const char *dn,
				     const char *email, int is_default)
{
	enum dm_status rc;
	sqlite3_stmt *st;

	if (!dn || !*dn || strlen(dn) > 2048)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "a DN must have 1..2048 characters");
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "add identities");
	if (rc == DM_OK)
		rc = cat_account_check(db, account);
	if (rc == DM_OK) {
		st = cat_stmt(db, "INSERT INTO identities(identity, identity_type, email, created_at)"
				  " VALUES (?, 'X509', ?, ?) ON CONFLICT DO NOTHING");
		if (!st) {
			rc = db->err.code;
		} else {
			sqlite3_bind_text(st, 1, dn, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, email ? email : "", -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, dm_now());
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = cat_dberr(db, "adding an identity");
		}
	}
	if (rc == DM_OK) {
		st = cat_stmt(db, "INSERT INTO account_map(identity, identity_type, account, is_default)"
				  " VALUES (?, 'X509', ?, ?) ON CONFLICT DO NOTHING");
		if (!st) {
			rc = db->err.code;
		} else {
			sqlite3_bind_text(st, 1, dn, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 3, is_default ? 1 : 0);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = cat_dberr(db, "mapping an identity");
			else if (sqlite3_changes(db->db) == 0)
				rc = cat_fail(db, DM_EEXIST, "Duplicate",
					      "Identity '%s' of type X509 is already mapped to account %s", dn, account);
		}
	}
	return cat_tx_end(db, rc);
}

enum dm_status cat_identity_x509_account(struct cat_db *db, const char *dn, const char *want,
					 char *account)
{
	sqlite3_stmt *st = cat_stmt(db, "SELECT account FROM account_map WHERE identity=?1 AND"
				       " identity_type='X509' AND (?2 IS NULL OR account=?2)"
				       " ORDER BY is_default DESC, account LIMIT 1");
	enum dm_status rc = DM_OK;

	if (!st)
		return db->err.code;
	sqlite3_bind_text(st, 1, dn, -1, SQLITE_STATIC);
	if (want)
		sqlite3_bind_text(st, 2, want, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		rc = cat_fail(db, DM_EPERM, "CannotAuthenticate", "Cannot authenticate with given credentials");
	else
		dm_strlcpy(account, cat_col_text(st, 0), CAT_ACCOUNT_MAX + 1);
	sqlite3_reset(st);
	return rc;
}
