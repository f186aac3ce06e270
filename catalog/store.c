/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.c - what the SQL stores share (SQLite: store_sqlite.c, PostgreSQL:
 * store_pg.c): errors, the statement cache and transactions over the SQL
 * driver (catalog/sql/sqldrv.h), who may act as whom, the issuer,
 * validation, accounts, identities and scopes.  DIDs live in did.c, RSEs
 * and protocols in rse.c, replicas, bulk registration and usage in
 * replica.c.
 */
#include "catalog_i.h"
#include "dmcheck.h"
#include "engine.h"

#include <ctype.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* handle, errors, statements, transactions                            */

/* A call a remote store does not serve (CAT_REMOTE, catalog_i.h). */
enum dm_status cat_remote_unsupported(struct cat_db *db, const char *call)
{
	struct dm_buf where = DM_BUF_INIT;
	enum dm_status rc;

	db->ops->location(db, &where);
	rc = cat_fail(db, DM_ENOTSUP, "UnsupportedOperation",
		      "%s%s is not available over a REST catalog (%s)", call ? call : "this call",
		      call ? "()" : "", where.s);
	dm_buf_release(&where);
	return rc;
}

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

enum dm_status cat_dberr(struct cat_db *db, const char *what)
{
	const struct dm_err *e;

	if (!db->sql)
		return cat_remote_unsupported(db, NULL);
	e = sqldrv_error(db->sql);
	dm_log(DM_LOG_DEBUG, "catalog", "%s: %s", what, e->msg);
	if (sqldrv_damaged(db->sql))
		return cat_corrupt(db, what, e->msg);
	if (e->code == DM_AGAIN) {
		/* the driver's text already says "the catalog is busy ..." */
		const char *busy = strstr(e->msg, "the catalog is busy");
		return cat_fail(db, DM_AGAIN, "DatabaseException", "%s: %s", what,
				busy ? busy : e->msg);
	}
	return cat_fail(db, e->code && e->code != DM_EEXIST ? e->code : DM_EINTERNAL,
			"DatabaseException", "%s: %s", what, e->msg);
}

const struct dm_err *cat_error(const struct cat_db *db)
{
	return &db->err;
}

struct sqldrv_stmt *cat_stmt(struct cat_db *db, const char *sql)
{
	struct sqldrv_stmt *st;

	if (!db->sql) { /* a remote store: no SQL behind this handle */
		cat_remote_unsupported(db, NULL);
		return NULL;
	}
	st = sqldrv_prepare(db->sql, sql);
	if (!st)
		cat_dberr(db, "preparing a statement");
	return st;
}

enum dm_status cat_kv_rows(struct cat_db *db, struct sqldrv_stmt *st, cat_kv_cb cb, void *ud,
			   const char *what)
{
	int r;

	while ((r = sqldrv_step(st)) == SQLDRV_ROW)
		if (cb(ud, cat_col_text(st, 0), cat_col_text(st, 1)))
			break;
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, what);
	return DM_OK;
}

enum dm_status cat_exec(struct cat_db *db, const char *sql)
{
	if (!db->sql)
		return cat_remote_unsupported(db, NULL);
	if (sqldrv_exec(db->sql, sql) != DM_OK)
		return cat_dberr(db, "running a statement");
	return DM_OK;
}

static enum dm_status os_refuse_readonly(struct cat_db *db);

/* The outermost level is the driver's transaction (SQLite: BEGIN
 * IMMEDIATE, so writers queue at the start and never deadlock; PostgreSQL:
 * BEGIN READ COMMITTED); inner levels only count, so a nested call's
 * failure fails the whole outer call, as before. */
enum dm_status cat_tx_begin(struct cat_db *db)
{
	if (!db->sql)
		return cat_remote_unsupported(db, NULL);
	if (db->os_readonly)
		return os_refuse_readonly(db);
	if (db->corrupt)
		return cat_fail(db, DM_EIO, "DatabaseException",
				"the catalog file %s is damaged; refusing to write to it"
				" (run 'didfs check')", db->path ? db->path : "(unknown)");
	if (db->tx_depth++ > 0)
		return DM_OK;
	if (sqldrv_begin(db->sql) != DM_OK) {
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
		/* a failed commit is rolled back by the driver */
		if (sqldrv_commit(db->sql) != DM_OK)
			rc = cat_dberr(db, "committing");
	} else {
		struct dm_err keep = db->err;
		sqldrv_rollback(db->sql);
		db->err = keep;
	}
	return rc;
}

int cat_redo(struct cat_db *db, enum dm_status rc, int *attempt)
{
	if (rc != DM_AGAIN || db->tx_depth > 0 || !cat_is_pg(db) || ++*attempt >= CAT_REDO_MAX)
		return 0;
	dm_log(DM_LOG_DEBUG, "catalog", "%s: redoing the call (attempt %d of %d)", db->err.msg,
	       *attempt + 1, CAT_REDO_MAX);
	usleep(20000u << *attempt);
	return 1;
}

/* ---- who may act as whom (the embedded mode's door) ----
 * The catalog file's owner and root may act as any account (they can write
 * the file anyway).  Any other OS user acts only as the accounts mapped to
 * its user name by a LOCAL identity (cat_identity_add_local), by default
 * the first of them; a user with no mapping may only read. */
enum dm_status cat_os_caller(struct cat_db *db)
{
	unsigned owner = 0;
	struct passwd pw, *pwp = NULL;
	char pwbuf[1024];
	uid_t uid = geteuid();
	struct sqldrv_stmt *st;
	int r;

	db->os_uid = (unsigned)uid;
	if (getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &pwp) == 0 && pwp)
		dm_strlcpy(db->os_user, pwp->pw_name, sizeof db->os_user);
	else
		snprintf(db->os_user, sizeof db->os_user, "%u", (unsigned)uid);
	/* a store without an OS owner (PostgreSQL) authenticates its clients
	 * itself: whoever it let in may act as any account, as a server may */
	if (uid == 0 || !db->ops->os_owner ||
	    (db->ops->os_owner(db, &owner) == 0 && owner == (unsigned)uid)) {
		db->os_trusted = 1;
		return DM_OK;
	}
	st = cat_stmt(db, "SELECT account FROM account_map WHERE identity=? AND identity_type='LOCAL'"
			  " ORDER BY is_default DESC, account LIMIT 1");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, db->os_user, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		dm_strlcpy(db->issuer, cat_col_text(st, 0), sizeof db->issuer);
	} else {
		db->os_readonly = 1;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
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
		struct sqldrv_stmt *st = cat_stmt(db, "SELECT 1 FROM account_map WHERE identity=?"
					    " AND identity_type='LOCAL' AND account=?");
		int r;

		if (!st)
			return db->err.code;
		sqldrv_bind_text(st, 1, db->os_user, -1);
		sqldrv_bind_text(st, 2, account, -1);
		r = sqldrv_step(st);
		sqldrv_reset(st);
		if (r != SQLDRV_ROW && r != SQLDRV_DONE)
			return cat_dberr(db, "checking the caller's accounts");
		if (r != SQLDRV_ROW)
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
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT status FROM accounts WHERE account=?");
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, account, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		int deleted = strcmp(cat_col_text(st, 0), "DELETED") == 0;
		sqldrv_reset(st);
		if (!deleted)
			return DM_OK;
	} else {
		sqldrv_reset(st);
		if (r != SQLDRV_DONE)
			return cat_dberr(db, "looking up an account");
	}
	return cat_fail(db, DM_ENOENT, "AccountNotFound", "Account '%s' does not exist", account);
}

static enum dm_status account_add_locked(struct cat_db *db, const char *account,
					 enum cat_account_type type, const char *email)
{
	struct sqldrv_stmt *st;
	int64_t now = dm_now();

	st = cat_stmt(db, "INSERT INTO accounts(account, account_type, email, created_at, updated_at)"
			  " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, account, -1);
	sqldrv_bind_text(st, 2, cat_account_type_name(type), -1);
	sqldrv_bind_text(st, 3, email ? email : "", -1);
	sqldrv_bind_int64(st, 4, now);
	sqldrv_bind_int64(st, 5, now);
	if (sqldrv_step(st) != SQLDRV_DONE)
		return cat_dberr(db, "adding an account");
	if (sqldrv_changes(db->sql) == 0)
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

static enum dm_status account_rows(struct cat_db *db, struct sqldrv_stmt *st, cat_account_cb cb,
				   void *ud, int *count)
{
	int r;

	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_account a = { 0 };
		a.account = cat_col_text(st, 0);
		if (cat_account_type_parse(cat_col_text(st, 1), &a.type))
			a.type = CAT_ACCOUNT_USER;
		a.status = cat_col_text(st, 2);
		a.email = cat_col_text(st, 3);
		a.created_at = sqldrv_col_int64(st, 4);
		if (count)
			(*count)++;
		if (cb(ud, &a))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing accounts");
	return DM_OK;
}

enum dm_status cat_account_get(struct cat_db *db, const char *account, cat_account_cb cb,
			       void *ud)
{
	CAT_REMOTE(db, account_get, account, cb, ud);
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT account, account_type, status, email, created_at"
				       " FROM accounts WHERE account=?");
	int n = 0;
	enum dm_status rc;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, account, -1);
	rc = account_rows(db, st, cb, ud, &n);
	if (rc == DM_OK && n == 0)
		rc = cat_fail(db, DM_ENOENT, "AccountNotFound", "Account '%s' does not exist", account);
	return rc;
}

enum dm_status cat_account_list(struct cat_db *db, cat_account_cb cb, void *ud)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT account, account_type, status, email, created_at"
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
	struct sqldrv_stmt *st;

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
			sqldrv_bind_text(st, 1, account, -1);
			sqldrv_bind_text(st, 2, key, -1);
			sqldrv_bind_text(st, 3, value ? value : "", -1);
			if (sqldrv_step(st) != SQLDRV_DONE)
				rc = cat_dberr(db, "setting an account attribute");
			else if (sqldrv_changes(db->sql) == 0)
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
	struct sqldrv_stmt *st;

	if (rc)
		return rc;
	rc = cat_require_admin(db, "delete account attributes");
	if (rc == DM_OK && (st = cat_stmt(db, "DELETE FROM account_attr_map WHERE account=? AND key=?"))) {
		sqldrv_bind_text(st, 1, account, -1);
		sqldrv_bind_text(st, 2, key, -1);
		if (sqldrv_step(st) != SQLDRV_DONE)
			rc = cat_dberr(db, "deleting an account attribute");
		else if (sqldrv_changes(db->sql) == 0)
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
	struct sqldrv_stmt *st;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT key, value FROM account_attr_map WHERE account=? ORDER BY key");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, account, -1);
	return cat_kv_rows(db, st, cb, ud, "listing account attributes");
}

int cat_account_has_attr(struct cat_db *db, const char *account, const char *key)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT 1 FROM account_attr_map WHERE account=? AND key=?");
	int r;

	if (!st)
		return -1;
	sqldrv_bind_text(st, 1, account, -1);
	sqldrv_bind_text(st, 2, key, -1);
	r = sqldrv_step(st);
	sqldrv_reset(st);
	if (r == SQLDRV_ROW)
		return 1;
	return r == SQLDRV_DONE ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* identities                                                          */

static enum dm_status identity_add_locked(struct cat_db *db, const char *account,
					  const char *username, const char *password,
					  const char *email)
{
	unsigned char salt[255];
	char salthex[511], hash[65];
	struct sqldrv_stmt *st;

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
	sqldrv_bind_text(st, 1, username, -1);
	sqldrv_bind_text(st, 2, username, -1);
	sqldrv_bind_text(st, 3, hash, -1);
	/* salt is a BLOB (bytea) column: the hex text's bytes */
	sqldrv_bind_blob(st, 4, salthex, strlen(salthex));
	sqldrv_bind_text(st, 5, email ? email : "", -1);
	sqldrv_bind_int64(st, 6, dm_now());
	if (sqldrv_step(st) != SQLDRV_DONE)
		return cat_dberr(db, "adding an identity");
	if (sqldrv_changes(db->sql) == 0)
		return cat_fail(db, DM_EEXIST, "Duplicate", "Identity '%s' of type USERPASS already exists",
				username);
	st = cat_stmt(db, "INSERT INTO account_map(identity, identity_type, account, is_default)"
			  " VALUES (?, 'USERPASS', ?, 1)");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, username, -1);
	sqldrv_bind_text(st, 2, account, -1);
	if (sqldrv_step(st) != SQLDRV_DONE)
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
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT i.password, i.salt, m.account FROM identities i"
				       " JOIN account_map m ON m.identity=i.identity AND"
				       " m.identity_type=i.identity_type"
				       " WHERE i.identity=? AND i.identity_type='USERPASS'"
				       " ORDER BY m.is_default DESC LIMIT 1");
	enum dm_status rc = DM_OK;
	char hash[65];

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, username, -1);
	if (sqldrv_step(st) != SQLDRV_ROW) {
		rc = cat_fail(db, DM_EPERM, "CannotAuthenticate", "Cannot authenticate with given credentials");
		goto out;
	}
	{
		size_t nsalt = 0;
		const void *salt = sqldrv_col_blob(st, 1, &nsalt);
		dm_sha256_hex2(salt ? salt : "", nsalt, password, strlen(password), hash);
	}
	if (strcmp(hash, cat_col_text(st, 0)) != 0) {
		rc = cat_fail(db, DM_EPERM, "CannotAuthenticate", "Cannot authenticate with given credentials");
		goto out;
	}
	dm_strlcpy(account, cat_col_text(st, 2), CAT_ACCOUNT_MAX + 1);
out:
	sqldrv_reset(st);
	return rc;
}

enum dm_status cat_identity_map(struct cat_db *db, const char *account, const char *identity,
				const char *type, const char *email, int is_default)
{
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;

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
	sqldrv_bind_text(st, 1, identity, -1);
	sqldrv_bind_text(st, 2, type, -1);
	sqldrv_bind_text(st, 3, email ? email : "", -1);
	sqldrv_bind_int64(st, 4, dm_now());
	if (sqldrv_step(st) != SQLDRV_DONE) {
		rc = cat_dberr(db, "adding an identity");
		goto out;
	}
	/* is_default < 0: default only when it is the identity's first account */
	st = cat_stmt(db, "INSERT INTO account_map(identity, identity_type, account, is_default)"
			  " VALUES (?1, ?2, ?3, CASE WHEN ?4 >= 0 THEN ?4 WHEN EXISTS (SELECT 1"
			  " FROM account_map WHERE identity=?1 AND identity_type=?2) THEN 0 ELSE 1 END)"
			  " ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_text(st, 1, identity, -1);
	sqldrv_bind_text(st, 2, type, -1);
	sqldrv_bind_text(st, 3, account, -1);
	sqldrv_bind_int64(st, 4, is_default);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "mapping an identity");
	else if (sqldrv_changes(db->sql) == 0)
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
	struct sqldrv_stmt *st;

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
	if (!st || sqldrv_step(st) != SQLDRV_DONE) {
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
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT account FROM scopes WHERE scope=? AND status!='DELETED'");
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW && owner)
		dm_strlcpy(owner, cat_col_text(st, 0), CAT_ACCOUNT_MAX + 1);
	sqldrv_reset(st);
	if (r == SQLDRV_ROW)
		return DM_OK;
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "looking up a scope");
	return cat_fail(db, DM_ENOENT, "ScopeNotFound", "Scope '%s' does not exist", scope);
}

enum dm_status cat_scope_add(struct cat_db *db, const char *scope, const char *account)
{
	struct dm_err e;
	enum dm_status rc = cat_validate_scope(scope, &e);
	struct sqldrv_stmt *st;

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
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, account, -1);
	sqldrv_bind_int64(st, 3, dm_now());
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "adding a scope");
	else if (sqldrv_changes(db->sql) == 0)
		rc = cat_fail(db, DM_EEXIST, "Duplicate", "Scope '%s' already exists", scope);
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_scope_list(struct cat_db *db, const char *account, cat_scope_cb cb, void *ud)
{
	CAT_REMOTE(db, scope_list, account, cb, ud);
	struct sqldrv_stmt *st;

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
		sqldrv_bind_text(st, 1, account, -1);
	return cat_kv_rows(db, st, cb, ud, "listing scopes");
}

/* ------------------------------------------------------------------ */
/* wake-ups (engine.h): LISTEN/NOTIFY channels didfs_<table>, sent by
 * catalog/sql/schema_pg.c's triggers                                  */

enum dm_status cat_work_listen(struct cat_db *db, const char *table)
{
	char chan[64];

	if (!cat_is_pg(db))
		return cat_fail(db, DM_ENOTSUP, "UnsupportedOperation",
				"this catalog store sends no notifications: polling");
	snprintf(chan, sizeof chan, "didfs_%s", table);
	if (sqldrv_listen(db->sql, chan) != DM_OK)
		return cat_dberr(db, "listening for work");
	return DM_OK;
}

int cat_work_wait(struct cat_db *db, int timeout_ms)
{
	char chan[64];
	int r;

	if (!cat_is_pg(db))
		return 0;
	r = sqldrv_wait(db->sql, timeout_ms, chan, sizeof chan);
	if (r < 0)
		cat_dberr(db, "waiting for work");
	return r;
}
