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
	if (!dn || !*dn || strlen(dn) > 2048)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "a DN must have 1..2048 characters");
	return cat_identity_map(db, account, dn, "X509", email, is_default ? 1 : 0);
}

enum dm_status cat_identity_x509_account(struct cat_db *db, const char *dn, const char *want,
					 char *account)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT account FROM account_map WHERE identity=?1 AND"
				       " identity_type='X509' AND (?2 IS NULL OR account=?2)"
				       " ORDER BY is_default DESC, account LIMIT 1");
	enum dm_status rc = DM_OK;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, dn, -1);
	if (want)
		sqldrv_bind_text(st, 2, want, -1);
	if (sqldrv_step(st) != SQLDRV_ROW)
		rc = cat_fail(db, DM_EPERM, "CannotAuthenticate", "Cannot authenticate with given credentials");
	else
		dm_strlcpy(account, cat_col_text(st, 0), CAT_ACCOUNT_MAX + 1);
	sqldrv_reset(st);
	return rc;
}
