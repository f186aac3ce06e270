/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_check.c - `didfs check`: SQLite's integrity check and the catalog's
 * own invariants (catalog/check.c), one finding a row (kind, problem); exit
 * 1 when there is any.  It only reads, so it works on a catalog one may not
 * write and on a damaged one.
 */
#include "cli.h"

#include <stdio.h>

static int print_finding(void *ud, const char *kind, const char *text)
{
	cli_out_row(ud, "ss", kind, text);
	return 0;
}

int cli_check(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "kind", "problem" };
	struct dm_err err = { 0 };
	struct cli_out *o;
	uint64_t found = 0;
	int rc;

	if (argc != 1)
		return cli_usage(c);
	if (cat_open(c->catalog_path, CAT_OPEN_READONLY, &c->db, &err))
		return cli_fail(c, &err);
	o = cli_out_begin(c, cols, 2);
	rc = cat_check(c->db, print_finding, o, &found);
	if (rc)
		return cli_out_finish(c, o, rc);
	cli_out_end(o);
	if (!c->json) {
		char shown[1024];
		cat_uri_shown(c->catalog_path, shown, sizeof shown);
		fprintf(found ? stderr : stdout, "%s: %llu problem%s found\n", shown,
			(unsigned long long)found, found == 1 ? "" : "s");
	}
	return found ? 1 : 0;
}
