/* SPDX-License-Identifier: Apache-2.0 */
/*
 * open.c - the catalog URI and the table of stores behind it.
 *
 * `--catalog` / $DIDFS_CATALOG take one URI:
 *   PATH, sqlite:PATH        the SQLite store (store_sqlite.c); a relative path is
 *                            relative to the working directory
 *   postgresql://..., postgres://...   a libpq URI: the PostgreSQL store
 *                            (store_pg.c; a build without libpq says so)
 *   https://host[:port]      a Rucio REST server (catalog/rest/store.c)
 * A string that starts with a scheme of the table (or any "word://") picks
 * that entry; anything else is a file path, so "./sqlite:x" names a file
 * literally called that.  cat_open() chooses the store the way transfer/
 * chooses a protocol (xfer.c): one table, scheme -> open function; the
 * store's open installs its operations table (struct cat_store_ops,
 * catalog_i.h) in the handle, and cat_close(), cat_location() and
 * cat_describe() go through it, so nothing outside catalog/ needs to know
 * whether the catalog is a file.  cat_info() (`didfs info`) reports the
 * store, its schema version and counts.
 */
#include "catalog_i.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static enum dm_status open_sqlite(const char *uri, const char *rest, unsigned flags,
				  struct cat_db **out, struct dm_err *err)
{
	if (!*rest)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "catalog URI '%s' names no file (sqlite:PATH)", uri);
	return cat_sqlite_open(rest, flags, out, err);
}

/* A URI for messages: no password in it is repeated (in the user part or
 * a password= parameter: the driver's redaction). */
void cat_uri_shown(const char *uri, char *out, size_t n)
{
	sqldrv_redact_uri(uri, out, n);
}

static enum dm_status open_postgresql(const char *uri, const char *rest, unsigned flags,
				      struct cat_db **out, struct dm_err *err)
{
	(void)rest;
	return cat_pg_open(uri, flags, out, err);
}

static enum dm_status open_rest(const char *uri, const char *rest, unsigned flags,
				struct cat_db **out, struct dm_err *err)
{
	return cat_rest_open(uri, flags, out, err);
}

/* scheme -> store.  keep_scheme: the store takes the whole URI (libpq
 * parses its own), else what follows "scheme:". */
static const struct cat_backend {
	const char *scheme;
	int keep_scheme;
	enum dm_status (*open)(const char *uri, const char *rest, unsigned flags,
			       struct cat_db **out, struct dm_err *err);
} backends[] = {
	{ "sqlite", 0, open_sqlite },
	{ "postgresql", 1, open_postgresql },
	{ "postgres", 1, open_postgresql },
	{ "https", 1, open_rest },
	{ "http", 1, open_rest },
};

/* Length of a leading URI scheme ("word:"), 0 if none. */
static size_t scheme_len(const char *s)
{
	size_t i = 0;

	if (!isalpha((unsigned char)s[0]))
		return 0;
	while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
		i++;
	return s[i] == ':' ? i : 0;
}

enum dm_status cat_open(const char *uri, unsigned flags, struct cat_db **out, struct dm_err *err)
{
	size_t n;

	*out = NULL;
	if (!uri || !*uri)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "no catalog given (--catalog or $DIDFS_CATALOG)");
	n = scheme_len(uri);
	if (n > 0) {
		for (size_t i = 0; i < DM_ARRAY_SIZE(backends); i++) {
			const struct cat_backend *b = &backends[i];
			if (strlen(b->scheme) == n && !strncasecmp(uri, b->scheme, n))
				return b->open(uri, b->keep_scheme ? uri : uri + n + 1, flags, out, err);
		}
		if (!strncmp(uri + n, "://", 3)) {
			char shown[512];
			cat_uri_shown(uri, shown, sizeof shown);
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "catalog '%s': unknown catalog URI scheme '%.*s' (a file path,"
					 " sqlite:PATH or postgresql://...)", shown, (int)n, uri);
		}
	}
	/* a plain path (a name with a ':' in it too, such as "a:b.db") */
	return cat_sqlite_open(uri, flags, out, err);
}

void cat_close(struct cat_db *db)
{
	if (db)
		db->ops->close(db);
}

enum dm_status cat_location(struct cat_db *db, struct dm_buf *out)
{
	dm_buf_reset(out);
	db->ops->location(db, out);
	return DM_OK;
}

void cat_describe(struct cat_db *db, struct dm_buf *out)
{
	dm_buf_reset(out);
	db->ops->describe(db, out);
}

static int64_t count_of(struct cat_db *db, const char *sql)
{
	struct sqldrv_stmt *st = cat_stmt(db, sql);
	int64_t n = -1;

	if (st && sqldrv_step(st) == SQLDRV_ROW)
		n = sqldrv_col_int64(st, 0);
	if (st)
		sqldrv_reset(st);
	return n;
}

enum dm_status cat_info(struct cat_db *db, struct cat_info *out)
{
	struct dm_buf b = DM_BUF_INIT;

	memset(out, 0, sizeof *out);
	dm_strlcpy(out->store, db->ops->name, sizeof out->store);
	db->ops->describe(db, &b);
	dm_strlcpy(out->where, b.s, sizeof out->where);
	dm_buf_release(&b);
	out->schema_version = db->ops->schema_version ? db->ops->schema_version(db) : -1;
	if (!db->sql) {
		out->accounts = out->scopes = out->rses = out->files = out->collections = -1;
		out->replicas = out->rules = out->requests = -1;
		return DM_OK;
	}
	out->accounts = count_of(db, "SELECT count(*) FROM accounts");
	out->scopes = count_of(db, "SELECT count(*) FROM scopes");
	out->rses = count_of(db, "SELECT count(*) FROM rses WHERE deleted = 0");
	out->files = count_of(db, "SELECT count(*) FROM dids WHERE did_type = 'F'");
	out->collections = count_of(db, "SELECT count(*) FROM dids WHERE did_type <> 'F'");
	out->replicas = count_of(db, "SELECT count(*) FROM replicas");
	out->rules = count_of(db, "SELECT count(*) FROM rules");
	out->requests = count_of(db, "SELECT count(*) FROM requests");
	return out->accounts < 0 ? cat_dberr(db, "reading the catalog's counts") : DM_OK;
}

enum dm_status cat_set_creds(struct cat_db *db, const struct cat_creds *c)
{
	if (db->ops->set_creds)
		return db->ops->set_creds(db, c);
	return c && c->account ? cat_set_issuer(db, c->account) : DM_OK;
}

enum dm_status cat_cache_stats(struct cat_db *db, struct cat_cache_stats *out)
{
	memset(out, 0, sizeof *out);
	if (db->ops->cache_stats)
		return db->ops->cache_stats(db, out);
	return DM_OK;
}
