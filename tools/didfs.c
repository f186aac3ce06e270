/* SPDX-License-Identifier: Apache-2.0 */
/*
 * didfs.c - the `didfs` command: global options, the subcommand table, and
 * the shared helpers of cli.h (errors, output in tables or JSON).
 *
 *   didfs [--catalog URI] [--account NAME] [--busy-timeout S] [--json]
 *         [--log-format text|kv|json] COMMAND [ARGS...]
 *
 * The catalog URI comes from --catalog, else $DIDFS_CATALOG, else
 * ./didfs.db (catalog/open.c says which forms there are).  --busy-timeout
 * (seconds a writer waits for a busy catalog) sets $DIDFS_BUSY_TIMEOUT, which
 * the store reads.  The issuer account from --account, else $DIDFS_ACCOUNT,
 * else root.  Subcommands carry Rucio's CLI names (rucio / rucio-admin).
 * --log-format (else $DIDFS_LOG_FORMAT, else text) is the form of log lines
 * (util/dm.h: text, kv, json), for every command.
 */
#include "cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct cli_command commands[] = {
	{ "init", cli_init, "[--root-username U] [--root-password P | --root-password-file F]", "create a catalog and bootstrap the root account" },
	{ "whoami", cli_whoami, "", "show the issuer account" },
	{ "add-account", cli_add_account, "ACCOUNT [--type USER|GROUP|SERVICE] [--email E]", "add an account" },
	{ "list-accounts", cli_list_accounts, "[--type TYPE]", "list accounts" },
	{ "set-account-attribute", cli_set_account_attribute, "ACCOUNT --key K --value V", "set an account attribute (admin=true grants admin)" },
	{ "list-account-attributes", cli_list_account_attributes, "ACCOUNT", "list account attributes" },
	{ "add-identity", cli_add_identity, "ACCOUNT (--username U --password P [--email E] | --type local --identity OS_USER)", "add a userpass identity, or map an OS user to the account (embedded mode)" },
	{ "add-scope", cli_add_scope, "SCOPE [--account ACCOUNT]", "add a scope owned by an account" },
	{ "list-scopes", cli_list_scopes, "[--account ACCOUNT]", "list scopes" },
	{ "add-rse", cli_add_rse, "RSE [--non-deterministic] [--volatile] [--rse-type DISK|TAPE] [--city C] [--country-name C] [--continent C]", "add a storage element" },
	{ "update-rse", cli_update_rse, "--rse RSE --setting KEY --value V", "update an RSE setting (availability_write, ...)" },
	{ "set-rse-attribute", cli_set_rse_attribute, "--rse RSE --key K --value V", "set an RSE attribute" },
	{ "delete-rse-attribute", cli_delete_rse_attribute, "--rse RSE --key K", "delete an RSE attribute" },
	{ "add-protocol", cli_add_protocol, "--rse RSE --scheme S [--hostname H] [--port P] [--prefix /p] [--impl I] [--read N] [--write N] [--delete N] [--tpc-read N] [--tpc-write N]", "add a protocol to an RSE (priorities: 0 best, -1 disabled)" },
	{ "list-protocols", cli_list_protocols, "RSE", "list an RSE's protocols" },
	{ "list-rses", cli_list_rses, "[EXPRESSION | --rses EXPRESSION]", "list RSEs, optionally matching an RSE expression" },
	{ "list-rse-attributes", cli_list_rse_attributes, "RSE", "list an RSE's attributes" },
	{ "lfn2pfn", cli_lfn2pfn, "--rse RSE SCOPE:NAME... [--scheme S]", "show where files live (or would live) on an RSE" },
	{ "add-dataset", cli_add_dataset, "SCOPE:NAME [--lifetime SECONDS]", "add a dataset" },
	{ "add-container", cli_add_container, "SCOPE:NAME [--lifetime SECONDS]", "add a container" },
	{ "attach", cli_attach, "SCOPE:NAME DID... [--from-file F]", "attach DIDs to a dataset or container" },
	{ "detach", cli_detach, "SCOPE:NAME DID...", "detach DIDs from a dataset or container" },
	{ "close", cli_close, "SCOPE:NAME", "close a dataset or container" },
	{ "reopen", cli_reopen, "SCOPE:NAME", "reopen a closed dataset or container (admin)" },
	{ "list-dids", cli_list_dids, "SCOPE[:PATTERN] [--type all|collection|dataset|container|file] [--filter type=T]", "list DIDs matching a wildcard" },
	{ "list-files", cli_list_files, "SCOPE:NAME", "list the files under a DID" },
	{ "list-content", cli_list_content, "SCOPE:NAME", "list the direct children of a collection" },
	{ "list-parent-dids", cli_list_parent_dids, "SCOPE:NAME", "list the collections a DID is attached to" },
	{ "get-metadata", cli_get_metadata, "SCOPE:NAME", "show a DID's metadata" },
	{ "set-metadata", cli_set_metadata, "SCOPE:NAME --key K --value V", "set a metadata key (lifetime sets the DID lifetime)" },
	{ "delete-metadata", cli_delete_metadata, "SCOPE:NAME --key K", "delete a metadata key" },
	{ "add-replicas", cli_add_replicas, "--rse RSE (--list FILE | --walk DIR | SCOPE:NAME BYTES ADLER32...) [--scope S] [--dataset SCOPE:NAME] [--md5] [--state S]", "register data already on storage, in bulk" },
	{ "list-file-replicas", cli_list_file_replicas, "SCOPE:NAME [--rses EXPRESSION] [--all-states] [--pfns] [--scheme S]", "list the replicas of the files under a DID" },
	{ "upload", cli_upload, "FILE... --rse RSE [--scope S] [--dataset SCOPE:NAME] [--lifetime S] [--name N] [--ca-path D] [--token T] [--timeout S]", "upload files to an RSE and register them (Rucio's safe upload)" },
	{ "download", cli_download, "DID... [--dir D] [--rse EXPRESSION] [--no-subdir] [--parallel N] [--ca-path D] [--token T] [--timeout S]", "download files from their best replicas, verified" },
	{ "delete-replica", cli_delete_replica, "--rse RSE SCOPE:NAME", "delete a replica from the catalog (admin)" },
	{ "set-account-limit", cli_set_account_limit, "ACCOUNT RSE BYTES", "set a local account limit (BYTES: 10G, 500M, -1/infinity)" },
	{ "get-account-limits", cli_get_account_limits, "ACCOUNT", "show an account's limits" },
	{ "list-account-usage", cli_list_account_usage, "ACCOUNT", "show an account's usage and limits per RSE" },
	{ "list-rse-usage", cli_list_rse_usage, "[RSE]", "show RSE usage" },
	{ "add-rule", cli_add_rule, "DID... COPIES RSE_EXPRESSION [--grouping ALL|DATASET|NONE] [--lifetime S] [--weight W] [--locked] [--source-replica-expression E] [--activity A] [--comment C] [--asynchronous] [--purge-replicas] [--ignore-availability] [--notify Y|N|C|P] [--priority N]", "add a replication rule; prints the rule id(s)" },
	{ "list-rules", cli_list_rules, "[DID] [--account A] [--file DID]", "list replication rules" },
	{ "rule-info", cli_rule_info, "RULE_ID [--locks]", "show a rule and its locks per RSE (--locks: every lock)" },
	{ "delete-rule", cli_delete_rule, "RULE_ID [--purge-replicas] [--now | --delay SECONDS]", "delete a rule now (or let it expire after --delay for the judge-cleaner)" },
	{ "update-rule", cli_update_rule, "RULE_ID [--lifetime S|none] [--locked true|false] [--comment C] [--activity A] [--priority N] [--state STUCK|SUSPENDED] [--stuck] [--suspend] [--purge-replicas true|false] [--source-replica-expression E]", "update a rule's settings" },
	{ "list-transfers", cli_list_transfers, "[--state QUEUED,SUBMITTED,DONE,FAILED,NO_SOURCES,LOST] [--rule RULE_ID]", "list transfer requests" },
	{ "add-distance", cli_add_distance, "SRC_RSE DST_RSE DISTANCE", "set the distance between two RSEs (source ranking)" },
	{ "add-subscription", cli_add_subscription, "NAME --filter JSON --rules 'COPIES EXPRESSION [key=value...]'|JSON [--rules ...] [--account A] [--comments C] [--lifetime DAYS] [--priority N]", "add a subscription: rules for every new DID matching the filter (admin)" },
	{ "list-subscriptions", cli_list_subscriptions, "[NAME] [--account A]", "list subscriptions" },
	{ "update-subscription", cli_update_subscription, "NAME [--account A] [--filter JSON] [--rules R...] [--comments C] [--lifetime DAYS] [--priority N] [--state ACTIVE|INACTIVE]", "change a subscription (admin)" },
	{ "delete-subscription", cli_delete_subscription, "NAME [--account A]", "deactivate a subscription (state INACTIVE; its rules stay) (admin)" },
	{ "declare-bad-replicas", cli_declare_bad_replicas, "--rse RSE --reason R SCOPE:NAME...", "declare replicas bad (admin): re-copied from a good replica, or the file marked lost" },
	{ "check", cli_check, "", "check the catalog: SQLite's integrity check and the catalog's invariants (lock counts, usage, rule states, requests)" },
	{ "info", cli_info, "", "show the catalog's store, schema version and how much it holds" },
	{ "migrate", cli_migrate, "FROM TO", "copy a whole catalog into a new, empty one (a SQLite file into PostgreSQL or back), streaming; TO stays empty if anything fails" },
	{ "daemon", cli_daemon, "[all | NAME...] [--once] [--sleep SECONDS] [--threads N] [--config FILE] [--log-level L] [--metrics ADDR:PORT]", "run the replication service: judge-evaluator, judge-injector, judge-repairer, judge-cleaner, conveyor, reaper, undertaker, abacus, transmogrifier, hermes, necromancer" },
	{ "mount", cli_mount, "MOUNTPOINT [--cache-dir D] [--cache-size 10G] [--block-size 4M] [--timeout S] [--threads N] [--io-threads N] [--foreground|-f] [--site SITE] [--allow-other] [--ca-path D] [--debug] [--log FILE] [--read-ahead KB] [--dir-ttl S] [--metrics ADDR:PORT] [--uid-map FILE] [--server URL]", "show the catalog as a directory tree (FUSE): data on demand, rules through extended attributes" },
	{ "serve", cli_serve, "[--listen ADDR:PORT] [--tls-cert F --tls-key F] [--ca-path P] [--config FILE] [--access-log F|-|off] [--max-connections N] [--threads N] [--token-lifetime S] [--timeout S] [--max-body N] [--legacy-dn] [--metrics-allow off|any|ADDR[/BITS],...]", "serve Rucio's REST API over the catalog (Rucio's clients work unchanged)" },
	{ "ingest", cli_ingest, "--config FILE [--once] [--log-level L]", "watch-folder ingest: verify, describe and register files dropped (with their trigger files) into an RSE's interface directories" },
	{ "audit", cli_audit, "--rse RSE (--dir LOCALVIEW | --list FILE) [--grace SECONDS] [--declare-bad] [--tmp-dir D]", "compare an RSE's storage with the catalog: dark data and lost files (Rucio's auditor)" },
};

static const struct cli_command *current;

static void usage_all(FILE *f)
{
	fprintf(f, "usage: didfs [--catalog URI] [--account NAME] [--busy-timeout SECONDS] [--json]"
		   " [--log-format F] COMMAND [ARGS...]\n\n"
		   "The catalog is --catalog, else $DIDFS_CATALOG, else ./didfs.db: a file path,\n"
		   "sqlite:PATH, postgresql://... (a libpq URI) or https://host[:port] (a Rucio\n"
		   "REST server, configured by rucio.cfg: $RUCIO_CONFIG, $RUCIO_HOME/etc/rucio.cfg).\n"
		   "A writer waits for a busy catalog --busy-timeout seconds (0..3600), else\n"
		   "$DIDFS_BUSY_TIMEOUT, else 30.\n"
		   "--log-format text|kv|json (else $DIDFS_LOG_FORMAT, else text): log lines.\n"
		   "Commands:\n");
	for (size_t i = 0; i < DM_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-24s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun 'didfs COMMAND --help' for a command's options.\n");
}

int cli_usage(struct cli *c)
{
	if (current)
		fprintf(stderr, "usage: didfs %s %s\n", current->name, current->usage);
	else
		usage_all(stderr);
	return 2;
}

int cli_fail(struct cli *c, const struct dm_err *err)
{
	const struct dm_err *e = err ? err : c->db ? cat_error(c->db) : NULL;

	if (e && e->code)
		fprintf(stderr, "didfs: %s: %s\n", e->cls[0] ? e->cls : "RucioException", e->msg);
	else
		fprintf(stderr, "didfs: %s failed\n", c->cmd ? c->cmd : "command");
	return 1;
}

int cli_failf(struct cli *c, const char *cls, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "didfs: %s: ", cls);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_open(struct cli *c)
{
	struct dm_err err = { 0 };

	if (cat_open(c->catalog_path, 0, &c->db, &err))
		return cli_fail(c, &err);
	if (c->account && cat_set_issuer(c->db, c->account))
		return cli_fail(c, NULL);
	return 0;
}

int cli_did(struct cli *c, const char *arg, char *scope, char *name)
{
	struct dm_err err = { 0 };

	if (cat_parse_did(arg, scope, name, &err))
		return cli_fail(c, &err);
	return 0;
}

int cli_target_key_value(struct cli *c, int argc, char **argv, const char *target_opt,
			 const char *key_opt, const char **target, const char **key,
			 const char **value, int need_value)
{
	const struct option opts[] = {
		{ target_opt, required_argument, NULL, 't' },
		{ key_opt, required_argument, NULL, 'k' },
		{ "value", required_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*target = *key = *value = NULL;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't': *target = optarg; break;
		case 'k': *key = optarg; break;
		case 'v': *value = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (!*target && optind < argc)
		*target = argv[optind++];
	if (!*key && optind < argc)
		*key = argv[optind++];
	if (need_value && !*value && optind < argc)
		*value = argv[optind++];
	if (optind != argc || !*target || !*key || (need_value && !*value))
		return cli_usage(c);
	return 0;
}

int cli_kv_row(void *ud, const char *key, const char *value)
{
	cli_out_row(ud, "ss", key, value);
	return 0;
}

int cli_parse_u64(struct cli *c, const char *opt, const char *s, uint64_t *out)
{
	if (dm_parse_size(s, out))
		return cli_failf(c, "InputValidationError", "%s takes a non-negative number, not '%s'", opt, s);
	return 0;
}

int cli_parse_i64(struct cli *c, const char *opt, const char *s, int64_t *out)
{
	if (dm_parse_i64(s, out))
		return cli_failf(c, "InputValidationError", "%s takes an integer, not '%s'", opt, s);
	return 0;
}

int cli_parse_int(struct cli *c, const char *opt, const char *s, int64_t lo, int64_t hi,
		  const char *unit, int64_t *out)
{
	if (dm_parse_int(s, lo, hi, out))
		return cli_failf(c, "InputValidationError", "%s takes %s from %lld to %lld, not '%s'",
				 opt, unit ? unit : "an integer", (long long)lo, (long long)hi, s);
	return 0;
}

/* ---- output ---- */

#define OUT_BUFFER_ROWS 256

struct cli_out {
	struct cli *c;
	const char *const *cols;
	int ncols;
	size_t *width;
	char **buf; /* buffered cells, OUT_BUFFER_ROWS * ncols */
	int nbuf;
	int flushed;
	long rows;
};

struct cli_out *cli_out_begin(struct cli *c, const char *const *cols, int ncols)
{
	struct cli_out *o = dm_xcalloc(1, sizeof *o);

	o->c = c;
	o->cols = cols;
	o->ncols = ncols;
	o->width = dm_xcalloc((size_t)ncols, sizeof *o->width);
	for (int i = 0; i < ncols; i++)
		o->width[i] = strlen(cols[i]);
	if (!c->json)
		o->buf = dm_xcalloc((size_t)OUT_BUFFER_ROWS * (size_t)ncols, sizeof *o->buf);
	return o;
}

static void print_cells(struct cli_out *o, char **cells)
{
	for (int i = 0; i < o->ncols; i++) {
		if (i == o->ncols - 1)
			fputs(cells[i], stdout);
		else
			printf("%-*s  ", (int)o->width[i], cells[i]);
	}
	fputc('\n', stdout);
}

static void flush_buffer(struct cli_out *o)
{
	char **hdr = dm_xcalloc((size_t)o->ncols, sizeof *hdr);
	for (int i = 0; i < o->ncols; i++) {
		size_t w = o->width[i];
		hdr[i] = dm_xmalloc(w + 1);
		for (size_t k = 0; k < strlen(o->cols[i]); k++) {
			char ch = o->cols[i][k];
			hdr[i][k] = (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
		}
		hdr[i][strlen(o->cols[i])] = 0;
	}
	print_cells(o, hdr);
	for (int i = 0; i < o->ncols; i++) {
		size_t w = i == o->ncols - 1 ? strlen(o->cols[i]) : o->width[i];
		memset(hdr[i], '-', w);
		hdr[i][w] = 0;
	}
	print_cells(o, hdr);
	for (int i = 0; i < o->ncols; i++)
		free(hdr[i]);
	free(hdr);
	for (int r = 0; r < o->nbuf; r++) {
		print_cells(o, o->buf + (size_t)r * (size_t)o->ncols);
		for (int i = 0; i < o->ncols; i++)
			free(o->buf[(size_t)r * (size_t)o->ncols + (size_t)i]);
	}
	o->nbuf = 0;
	o->flushed = 1;
}

static char *format_cell(char f, va_list *ap, json_t **jv)
{
	char tmp[64];
	const char *s;
	int64_t i;
	uint64_t u;

	switch (f) {
	case 's':
		s = va_arg(*ap, const char *);
		*jv = s ? json_string(s) : json_null();
		return dm_xstrdup(s ? s : "");
	case 'i':
		i = va_arg(*ap, int64_t);
		*jv = json_integer(i);
		snprintf(tmp, sizeof tmp, "%lld", (long long)i);
		return dm_xstrdup(tmp);
	case 'u':
		u = va_arg(*ap, uint64_t);
		*jv = json_integer((json_int_t)u);
		snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)u);
		return dm_xstrdup(tmp);
	case 'b':
		i = va_arg(*ap, int);
		*jv = json_boolean(i);
		return dm_xstrdup(i ? "True" : "False");
	case 't':
		i = va_arg(*ap, int64_t);
		if (!i) {
			*jv = json_null();
			return dm_xstrdup("");
		}
		dm_fmt_time(i, tmp);
		*jv = json_string(tmp);
		return dm_xstrdup(tmp);
	default:
		DM_BUG("bad output format '%c'", f);
	}
}

void cli_out_row(struct cli_out *o, const char *fmt, ...)
{
	va_list ap;
	json_t *obj = o->c->json ? json_object() : NULL;
	char **cells = o->c->json ? NULL : dm_xcalloc((size_t)o->ncols, sizeof *cells);

	va_start(ap, fmt);
	for (int i = 0; i < o->ncols && fmt[i]; i++) {
		json_t *jv = NULL;
		char *cell = format_cell(fmt[i], &ap, &jv);
		if (obj) {
			json_object_set_new(obj, o->cols[i], jv);
			free(cell);
		} else {
			json_decref(jv);
			if (!o->flushed && strlen(cell) > o->width[i])
				o->width[i] = strlen(cell);
			cells[i] = cell;
		}
	}
	va_end(ap);
	if (obj) {
		char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
		printf("%s\n%s", o->rows ? "," : "[", s);
		free(s);
		json_decref(obj);
	} else {
		for (int i = 0; i < o->ncols; i++)
			if (!cells[i])
				cells[i] = dm_xstrdup("");
		if (o->flushed) {
			print_cells(o, cells);
			for (int i = 0; i < o->ncols; i++)
				free(cells[i]);
		} else {
			memcpy(o->buf + (size_t)o->nbuf * (size_t)o->ncols, cells,
			       (size_t)o->ncols * sizeof *cells);
			if (++o->nbuf == OUT_BUFFER_ROWS)
				flush_buffer(o);
		}
		free(cells);
	}
	o->rows++;
}

void cli_out_end(struct cli_out *o)
{
	if (o->c->json)
		fputs(o->rows ? "\n]\n" : "[]\n", stdout);
	else if (!o->flushed)
		flush_buffer(o);
	free(o->buf);
	free(o->width);
	free(o);
	fflush(stdout);
}

int cli_out_finish(struct cli *c, struct cli_out *o, int rc)
{
	if (rc && !o->flushed && !(o->c->json && o->rows)) {
		/* nothing printed yet: print nothing but the error */
		for (int r = 0; r < o->nbuf; r++)
			for (int i = 0; i < o->ncols; i++)
				free(o->buf[(size_t)r * (size_t)o->ncols + (size_t)i]);
		free(o->buf);
		free(o->width);
		free(o);
		return cli_fail(c, NULL);
	}
	cli_out_end(o);
	return rc ? cli_fail(c, NULL) : 0;
}

void cli_out_kv(struct cli *c, const char *const *keys, int n, const char *fmt, ...)
{
	va_list ap;
	json_t *obj = c->json ? json_object() : NULL;
	size_t w = 0;
	char **cells = dm_xcalloc((size_t)n, sizeof *cells);

	for (int i = 0; i < n; i++)
		if (strlen(keys[i]) > w)
			w = strlen(keys[i]);
	va_start(ap, fmt);
	for (int i = 0; i < n; i++) {
		json_t *jv = NULL;
		cells[i] = format_cell(fmt[i], &ap, &jv);
		if (obj)
			json_object_set_new(obj, keys[i], jv);
		else
			json_decref(jv);
	}
	va_end(ap);
	if (obj) {
		char *s = json_dumps(obj, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(obj);
	} else {
		for (int i = 0; i < n; i++)
			printf("%-*s %s\n", (int)w + 1, keys[i], cells[i]);
	}
	for (int i = 0; i < n; i++)
		free(cells[i]);
	free(cells);
	fflush(stdout);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "catalog", required_argument, NULL, 'c' },
		{ "account", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "busy-timeout", required_argument, NULL, 'B' },
		{ "log-format", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli c = { 0 };
	int opt, rc;
	const char *log_format = getenv("DIDFS_LOG_FORMAT");

	c.prog = "didfs";
	c.catalog_path = getenv("DIDFS_CATALOG");
	if (!c.catalog_path || !*c.catalog_path)
		c.catalog_path = "didfs.db";
	c.account = getenv("DIDFS_ACCOUNT");
	if (c.account && !*c.account)
		c.account = NULL;
	/* '+': stop at the first non-option, the command */
	while ((opt = getopt_long(argc, argv, "+c:a:jvhV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': c.catalog_path = optarg; break;
		case 'a': c.account = optarg; break;
		case 'j': c.json = 1; break;
		case 'B': {
			int64_t v;

			if (cli_parse_int(&c, "--busy-timeout", optarg, 0, 3600, "seconds", &v))
				return 1;
			setenv("DIDFS_BUSY_TIMEOUT", optarg, 1);
			break;
		}
		case 'L': log_format = optarg; break;
		case 'v': c.verbose = 1; break;
		case 'h': usage_all(stdout); return 0;
		case 'V': puts("didfs 0.1.0"); return 0;
		default: usage_all(stderr); return 2;
		}
	}
	if (log_format && *log_format) {
		enum dm_log_format lf;

		if (dm_log_format_parse(log_format, &lf)) {
			fprintf(stderr, "didfs: InputValidationError: --log-format takes text, kv or json, "
				"not '%s'\n", log_format);
			return 2;
		}
		dm_log_set_format(lf);
	}
	if (optind >= argc) {
		usage_all(stderr);
		return 2;
	}
	c.cmd = argv[optind];
	for (size_t i = 0; i < DM_ARRAY_SIZE(commands); i++) {
		if (strcmp(commands[i].name, c.cmd) == 0) {
			current = &commands[i];
			break;
		}
	}
	if (!current) {
		fprintf(stderr, "didfs: unknown command '%s'\n\n", c.cmd);
		usage_all(stderr);
		return 2;
	}
	for (int i = optind + 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: didfs %s %s\n  %s\n", current->name, current->usage, current->help);
			return 0;
		}
		if (!strcmp(argv[i], "--"))
			break;
	}
	/* Subcommands see argv starting at their own name, getopt reset. */
	{
		int cmdind = optind;
		optind = 0; /* 0, not 1: glibc then re-initialises getopt fully */
		rc = current->fn(&c, argc - cmdind, argv + cmdind);
	}
	cat_close(c.db);
	return rc;
}
