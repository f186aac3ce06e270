/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqldrv_open.c - sqldrv_open(): the backend a catalog URI names (a path or
 * sqlite:PATH -> sqldrv_sqlite.c, postgresql:// -> sqldrv_pg.c when libpq
 * is compiled in), above the front end (sqldrv.c) and the backends.
 */
#include "sqldrv_i.h"

#include <string.h>

static int starts_with(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

int sqldrv_have_postgresql(void)
{
#ifdef DIDFS_HAVE_LIBPQ
	return 1;
#else
	return 0;
#endif
}

enum dm_status sqldrv_open(const char *uri, unsigned flags, struct sqldrv **out,
			   struct dm_err *err)
{
	char shown[1024];
	enum dm_status rc;

	*out = NULL;
	if (!uri || !*uri)
		return dm_seterr(err, DM_EINVAL, "DatabaseException", "no catalog URI given");
	sqldrv_redact_uri(uri, shown, sizeof shown);
	if (starts_with(uri, "postgresql://") || starts_with(uri, "postgres://")) {
#ifdef DIDFS_HAVE_LIBPQ
		rc = sqldrv_pg_open(uri, shown, flags, out, err);
#else
		return dm_seterr(err, DM_ENOTSUP, "DatabaseException",
				 "cannot open the catalog '%s': this didfs was built without"
				 " PostgreSQL support (meson -Dpostgresql=enabled, libpq-dev)",
				 shown);
#endif
	} else if (starts_with(uri, "sqlite:")) {
		const char *path = uri + 7;
		/* sqlite:///abs/path and sqlite://rel are accepted too */
		if (starts_with(path, "//"))
			path += 2;
		if (!*path)
			return dm_seterr(err, DM_EINVAL, "DatabaseException",
					 "the catalog URI '%s' names no file", shown);
		rc = sqldrv_sqlite_open(path, shown, flags, out, err);
	} else if (strstr(uri, "://")) {
		return dm_seterr(err, DM_ENOTSUP, "DatabaseException",
				 "unknown catalog URI scheme in '%s' (expected a path, sqlite:PATH"
				 " or postgresql://...)", shown);
	} else {
		rc = sqldrv_sqlite_open(uri, shown, flags, out, err);
	}
	if (rc == DM_OK && !(*out)->uri)
		(*out)->uri = dm_xstrdup(shown);
	return rc;
}
