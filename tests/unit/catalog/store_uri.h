/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_uri.h - which store a catalog unit test runs on.  By default the
 * SQLite file the test names; with $DIDFS_TEST_PG_URI set (meson runs the
 * `*_pg` twins of the tests under tests/env/pgfixture.py, which starts a
 * throwaway PostgreSQL 15 cluster and exports it) that database, emptied
 * first, so every fresh catalog of a test is fresh on PostgreSQL too.
 */
#ifndef TEST_STORE_URI_H
#define TEST_STORE_URI_H

#include "sqldrv.h"

#include <stdio.h>
#include <stdlib.h>

static inline const char *test_catalog_uri(const char *path)
{
	const char *uri = getenv("DIDFS_TEST_PG_URI");
	struct sqldrv *s = NULL;
	struct dm_err e = { 0 };

	if (!uri || !*uri)
		return path;
	if (sqldrv_open(uri, 0, &s, &e) != DM_OK) {
		fprintf(stderr, "test_catalog_uri: %s\n", e.msg);
		exit(1);
	}
	if (sqldrv_exec(s, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public") != DM_OK) {
		fprintf(stderr, "test_catalog_uri: emptying %s: %s\n", sqldrv_uri(s),
			sqldrv_error(s)->msg);
		exit(1);
	}
	sqldrv_close(s);
	return uri;
}

#endif
