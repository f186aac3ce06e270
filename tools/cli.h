/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.h - shared pieces of the `didfs` command (prefix cli_): the command
 * table, global options, the catalog handle, errors and output.
 *
 * Output is a streaming table by default (column widths from the first rows,
 * then fixed, so a listing of a million files runs in constant memory) and a
 * JSON array with --json.  Errors go to stderr as
 *   didfs: <ExceptionClass>: <message>
 * and the command exits with status 1.
 */
#ifndef CLI_H
#define CLI_H

#include <stdint.h>

#include "catalog.h"
#include "dmcheck.h"

struct cli {
	const char *catalog_path;
	const char *account; /* issuer; NULL = root */
	int json;
	int verbose;
	struct cat_db *db;
	const char *prog;
	const char *cmd;
};

typedef int (*cli_fn)(struct cli *c, int argc, char **argv);
struct cli_command {
	const char *name;
	cli_fn fn;
	const char *usage;
	const char *help;
};

/* Open the catalog (c->db) and set the issuer; prints the error and returns
 * non-zero on failure. */
int cli_open(struct cli *c);
/* Print the handle's error (or err if not NULL) and return 1. */
int cli_fail(struct cli *c, const struct dm_err *err);
int cli_failf(struct cli *c, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Usage error for the current command: prints usage, returns 2. */
int cli_usage(struct cli *c);

/* Parse "scope:name" or fail with a message; returns 0 on success. */
int cli_did(struct cli *c, const char *arg, char *scope, char *name);

/* ---- output ----
 * cols: column names (table headers, JSON keys).  fmt per row: one letter
 * per column: s string (NULL -> null / empty), i int64, u uint64, b bool,
 * t time (int64 epoch; 0 -> null). */
struct cli_out;
struct cli_out *cli_out_begin(struct cli *c, const char *const *cols, int ncols);
void cli_out_row(struct cli_out *o, const char *fmt, ...);
void cli_out_end(struct cli_out *o);
/* End a listing after a catalog call that returned rc: on failure with
 * nothing printed yet, print only the error.  Returns the exit status. */
int cli_out_finish(struct cli *c, struct cli_out *o, int rc);
/* A single object: key/value pairs printed as "key: value" lines or one JSON
 * object.  Same format letters as rows. */
void cli_out_kv(struct cli *c, const char *const *keys, int n, const char *fmt, ...);

/* "TARGET --KEY_OPT K --value V", each also positional in that order
 * (rucio-admin takes the options): set-account-attribute, set-rse-attribute,
 * update-rse, set-metadata...  Returns 0, or the usage status. */
int cli_target_key_value(struct cli *c, int argc, char **argv, const char *target_opt,
			 const char *key_opt, const char **target, const char **key,
			 const char **value, int need_value);
/* A cat_kv_cb printing a (key, value) row into the struct cli_out *ud. */
int cli_kv_row(void *ud, const char *key, const char *value);

/* Option helpers. */
int cli_parse_u64(struct cli *c, const char *opt, const char *s, uint64_t *out);
int cli_parse_i64(struct cli *c, const char *opt, const char *s, int64_t *out);
/* The one checked integer parser for numbers from the command line: s must
 * be a whole integer in [lo, hi], else "OPT takes UNIT from LO to HI, not 'S'"
 * (unit NULL: "an integer"); durations use hi = DM_DURATION_MAX. */
int cli_parse_int(struct cli *c, const char *opt, const char *s, int64_t lo, int64_t hi,
		  const char *unit, int64_t *out);

/* Subcommands, grouped one file per area (tools/cli_<area>.c). */
int cli_init(struct cli *c, int argc, char **argv);
int cli_whoami(struct cli *c, int argc, char **argv);
int cli_add_account(struct cli *c, int argc, char **argv);
int cli_list_accounts(struct cli *c, int argc, char **argv);
int cli_set_account_attribute(struct cli *c, int argc, char **argv);
int cli_list_account_attributes(struct cli *c, int argc, char **argv);
int cli_add_identity(struct cli *c, int argc, char **argv);
int cli_add_scope(struct cli *c, int argc, char **argv);
int cli_list_scopes(struct cli *c, int argc, char **argv);
int cli_add_rse(struct cli *c, int argc, char **argv);
int cli_update_rse(struct cli *c, int argc, char **argv);
int cli_set_rse_attribute(struct cli *c, int argc, char **argv);
int cli_delete_rse_attribute(struct cli *c, int argc, char **argv);
int cli_add_protocol(struct cli *c, int argc, char **argv);
int cli_list_protocols(struct cli *c, int argc, char **argv);
int cli_list_rses(struct cli *c, int argc, char **argv);
int cli_list_rse_attributes(struct cli *c, int argc, char **argv);
int cli_lfn2pfn(struct cli *c, int argc, char **argv);
int cli_add_dataset(struct cli *c, int argc, char **argv);
int cli_add_container(struct cli *c, int argc, char **argv);
int cli_attach(struct cli *c, int argc, char **argv);
int cli_detach(struct cli *c, int argc, char **argv);
int cli_close(struct cli *c, int argc, char **argv);
int cli_reopen(struct cli *c, int argc, char **argv);
int cli_list_dids(struct cli *c, int argc, char **argv);
int cli_list_files(struct cli *c, int argc, char **argv);
int cli_list_content(struct cli *c, int argc, char **argv);
int cli_list_parent_dids(struct cli *c, int argc, char **argv);
int cli_get_metadata(struct cli *c, int argc, char **argv);
int cli_set_metadata(struct cli *c, int argc, char **argv);
int cli_delete_metadata(struct cli *c, int argc, char **argv);
int cli_add_replicas(struct cli *c, int argc, char **argv);
int cli_list_file_replicas(struct cli *c, int argc, char **argv);
int cli_delete_replica(struct cli *c, int argc, char **argv);
int cli_upload(struct cli *c, int argc, char **argv);
int cli_download(struct cli *c, int argc, char **argv);
int cli_set_account_limit(struct cli *c, int argc, char **argv);
int cli_get_account_limits(struct cli *c, int argc, char **argv);
int cli_list_account_usage(struct cli *c, int argc, char **argv);
int cli_list_rse_usage(struct cli *c, int argc, char **argv);
int cli_add_rule(struct cli *c, int argc, char **argv);
int cli_list_rules(struct cli *c, int argc, char **argv);
int cli_rule_info(struct cli *c, int argc, char **argv);
int cli_delete_rule(struct cli *c, int argc, char **argv);
int cli_update_rule(struct cli *c, int argc, char **argv);
int cli_list_transfers(struct cli *c, int argc, char **argv);
int cli_add_distance(struct cli *c, int argc, char **argv);
int cli_daemon(struct cli *c, int argc, char **argv);
int cli_check(struct cli *c, int argc, char **argv);
int cli_info(struct cli *c, int argc, char **argv);
int cli_migrate(struct cli *c, int argc, char **argv);
int cli_mount(struct cli *c, int argc, char **argv);
int cli_serve(struct cli *c, int argc, char **argv);
int cli_add_subscription(struct cli *c, int argc, char **argv);
int cli_list_subscriptions(struct cli *c, int argc, char **argv);
int cli_update_subscription(struct cli *c, int argc, char **argv);
int cli_delete_subscription(struct cli *c, int argc, char **argv);
int cli_declare_bad_replicas(struct cli *c, int argc, char **argv);
int cli_ingest(struct cli *c, int argc, char **argv);
int cli_audit(struct cli *c, int argc, char **argv);

#endif
