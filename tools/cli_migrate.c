/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_migrate.c - `didfs info`: which store the catalog is, its schema
 * version and how much it holds; `didfs migrate FROM TO`: copy a whole
 * catalog into a new, empty one (a SQLite file into PostgreSQL, or back;
 * catalog/migrate.c), one progress line per table on stderr.
 */
#include "cli.h"

#include <stdio.h>

int cli_info(struct cli *c, int argc, char **argv)
{
	static const char *const keys[] = { "store", "catalog", "schema_version", "accounts",
					    "scopes", "rses", "files", "collections", "replicas",
					    "rules", "requests" };
	struct cat_info i;

	(void)argv;
	if (argc != 1)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_info(c->db, &i))
		return cli_fail(c, NULL);
	cli_out_kv(c, keys, 11, "ssiiiiiiiii", i.store, i.where, (int64_t)i.schema_version,
		   i.accounts, i.scopes, i.rses, i.files, i.collections, i.replicas, i.rules,
		   i.requests);
	return 0;
}

static void progress(void *ud, const char *table, uint64_t rows, int done)
{
	(void)ud;
	fprintf(stderr, "%s: %llu rows%s\n", table, (unsigned long long)rows,
		done ? "" : " so far");
}

int cli_migrate(struct cli *c, int argc, char **argv)
{
	struct dm_err err = { 0 };
	char from[512], to[512];
	uint64_t rows = 0;

	if (argc != 3)
		return cli_usage(c);
	if (cat_migrate(argv[1], argv[2], c->json ? NULL : progress, NULL, &rows, &err))
		return cli_fail(c, &err);
	cat_uri_shown(argv[1], from, sizeof from);
	cat_uri_shown(argv[2], to, sizeof to);
	if (c->json)
		printf("{\"from\": \"%s\", \"to\": \"%s\", \"rows\": %llu}\n", from, to,
		       (unsigned long long)rows);
	else
		printf("migrated %s into %s: %llu rows\n", from, to, (unsigned long long)rows);
	return 0;
}
