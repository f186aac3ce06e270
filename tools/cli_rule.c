/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_rule.c - replication rules and transfers: add-rule, list-rules,
 * rule-info, delete-rule, update-rule, list-transfers, add-distance.
 *
 * Syntax and output follow Rucio's CLI:
 *   add-rule DID... COPIES RSE_EXPRESSION [options]  prints the new rule ids
 *   list-rules [DID] [--account A] [--file DID]      one row per rule
 *   rule-info ID [--locks]                           the rule, its lock counts
 *                                                    per RSE (or its locks)
 *   delete-rule ID [--purge-replicas] [--now | --delay S]  delete now (one
 *                                                    transaction), or let it
 *                                                    expire after S seconds
 *                                                    for the judge-cleaner
 *   update-rule ID --lifetime S | --locked B | ...   one or more settings
 *   list-transfers [--state S,S] [--rule ID]
 *   add-distance SRC DST DISTANCE
 * The engine (placement, quotas, locks, requests) is the catalog's
 * (catalog/catalog.h); these commands only parse, call and print.
 */
#include "cli.h"
#include "dmcheck.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- add-rule ---- */

static int parse_notify(const char *s, const char **out)
{
	static const char *const names[][2] = {
		{ "Y", "YES" }, { "N", "NO" }, { "C", "CLOSE" }, { "P", "PROGRESS" },
	};

	for (size_t i = 0; i < DM_ARRAY_SIZE(names); i++) {
		if (!strcasecmp(s, names[i][0]) || !strcasecmp(s, names[i][1])) {
			*out = names[i][1];
			return 0;
		}
	}
	return -1;
}

static int parse_int(struct cli *c, const char *opt, const char *s, int lo, int hi, int *out)
{
	int64_t v;

	if (cli_parse_int(c, opt, s, lo, hi, NULL, &v))
		return 1;
	*out = (int)v;
	return 0;
}

int cli_add_rule(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "grouping", required_argument, NULL, 'g' },
		{ "lifetime", required_argument, NULL, 'l' },
		{ "weight", required_argument, NULL, 'w' },
		{ "locked", no_argument, NULL, 'L' },
		{ "source-replica-expression", required_argument, NULL, 's' },
		{ "activity", required_argument, NULL, 'a' },
		{ "comment", required_argument, NULL, 'C' },
		{ "asynchronous", no_argument, NULL, 'A' },
		{ "purge-replicas", no_argument, NULL, 'p' },
		{ "ignore-availability", no_argument, NULL, 'i' },
		{ "notify", required_argument, NULL, 'n' },
		{ "priority", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	struct cat_rule_opts ro;
	int opt, ndids, rc = 0;
	char (*scopes)[CAT_SCOPE_MAX + 1] = NULL;
	char (*names)[CAT_NAME_MAX + 1] = NULL;
	char id[33];
	json_t *ids = NULL;

	cat_rule_opts_init(&ro);
	ro.grouping = CAT_GROUPING_DATASET; /* the rucio CLI's default */
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'g':
			if (cat_grouping_parse(optarg, &ro.grouping))
				return cli_failf(c, "InputValidationError",
						 "--grouping takes ALL, DATASET or NONE, not '%s'", optarg);
			break;
		case 'l':
			if (cli_parse_int(c, "--lifetime", optarg, 1, DM_DURATION_MAX,
					  "seconds", &ro.lifetime))
				return 1;
			break;
		case 'w': ro.weight = optarg; break;
		case 'L': ro.locked = 1; break;
		case 's': ro.source_replica_expression = optarg; break;
		case 'a': ro.activity = optarg; break;
		case 'C': ro.comment = optarg; break;
		case 'A': ro.asynchronous = 1; break;
		case 'p': ro.purge_replicas = 1; break;
		case 'i': ro.ignore_availability = 1; break;
		case 'n':
			if (parse_notify(optarg, &ro.notification))
				return cli_failf(c, "InputValidationError",
						 "--notify takes Y, N, C or P, not '%s'", optarg);
			break;
		case 'P':
			if (parse_int(c, "--priority", optarg, 1, 5, &ro.priority))
				return 1;
			break;
		default: return cli_usage(c);
		}
	}
	ndids = argc - optind - 2;
	if (ndids < 1)
		return cli_usage(c);
	/* a number that is no copy count (0, 17) is the catalog's to refuse,
	 * with Rucio's class (InvalidValueForKey); non-numbers are refused here */
	{
		int64_t v;

		if (dm_parse_int(argv[argc - 2], INT32_MIN, INT32_MAX, &v))
			return cli_failf(c, "InputValidationError",
					 "COPIES takes an integer from 1 to 16, not '%s'", argv[argc - 2]);
		ro.copies = (int)v;
	}
	ro.rse_expression = argv[argc - 1];
	scopes = dm_xcalloc((size_t)ndids, sizeof *scopes);
	names = dm_xcalloc((size_t)ndids, sizeof *names);
	for (int i = 0; i < ndids && !rc; i++)
		rc = cli_did(c, argv[optind + i], scopes[i], names[i]);
	if (rc || cli_open(c)) {
		rc = 1;
		goto out;
	}
	if (c->json)
		ids = json_array();
	for (int i = 0; i < ndids; i++) {
		if (cat_rule_add(c->db, scopes[i], names[i], &ro, id)) {
			if (i > 0)
				fprintf(stderr, "didfs: the rules above were created for the DIDs before "
						"%s:%s\n", scopes[i], names[i]);
			rc = cli_fail(c, NULL);
			break;
		}
		if (ids)
			json_array_append_new(ids, json_string(id));
		else
			printf("%s\n", id);
	}
	if (ids) {
		char *s = json_dumps(ids, JSON_COMPACT);

		if (!rc || json_array_size(ids))
			printf("%s\n", s);
		free(s);
		json_decref(ids);
	}
	fflush(stdout);
out:
	free(scopes);
	free(names);
	return rc;
}

/* ---- list-rules ---- */

struct rule_print {
	struct cli *c;
	struct cli_out *o;
};

static int rule_row(void *ud, const struct cat_rule *r)
{
	struct rule_print *p = ud;
	struct cli_out *o = p->o;

	if (p->c->json) {
		cli_out_row(o, "ssssssiisiiittts", r->id, r->account, r->scope, r->name,
			    cat_did_type_name(r->did_type), cat_rule_state_name(r->state),
			    (int64_t)r->copies, (int64_t)r->priority, r->rse_expression,
			    r->locks_ok_cnt, r->locks_replicating_cnt, r->locks_stuck_cnt,
			    r->expires_at, r->created_at, r->updated_at, r->error);
	} else {
		char did[CAT_SCOPE_MAX + CAT_NAME_MAX + 2], state[96];

		snprintf(did, sizeof did, "%s:%s", r->scope, r->name);
		snprintf(state, sizeof state, "%s[%lld/%lld/%lld]", cat_rule_state_name(r->state),
			 (long long)r->locks_ok_cnt, (long long)r->locks_replicating_cnt,
			 (long long)r->locks_stuck_cnt);
		cli_out_row(o, "sssssitt", r->id, r->account, did, state, r->rse_expression,
			    (int64_t)r->copies, r->expires_at, r->created_at);
	}
	return 0;
}

int cli_list_rules(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "account", required_argument, NULL, 'a' },
		{ "file", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const tcols[] = { "id", "account", "scope:name", "state[ok/repl/stuck]",
					     "rse_expression", "copies", "expires (utc)",
					     "created (utc)" };
	static const char *const jcols[] = { "id", "account", "scope", "name", "did_type", "state",
					     "copies", "priority", "rse_expression", "locks_ok_cnt",
					     "locks_replicating_cnt", "locks_stuck_cnt", "expires_at",
					     "created_at", "updated_at", "error" };
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	const char *account = NULL, *file = NULL;
	struct rule_print p = { c, NULL };
	int opt, have_did = 0;
	enum dm_status rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'a': account = optarg; break;
		case 'f': file = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (optind < argc - 1 || (file && optind < argc))
		return cli_usage(c);
	if (optind == argc - 1) {
		if (cli_did(c, argv[optind], scope, name))
			return 1;
		have_did = 1;
	} else if (file) {
		if (cli_did(c, file, scope, name))
			return 1;
	}
	if (cli_open(c))
		return 1;
	p.o = c->json ? cli_out_begin(c, jcols, (int)DM_ARRAY_SIZE(jcols))
		      : cli_out_begin(c, tcols, (int)DM_ARRAY_SIZE(tcols));
	if (file)
		rc = cat_rule_list_for_file(c->db, scope, name, rule_row, &p);
	else
		rc = cat_rule_list(c->db, have_did ? scope : NULL, have_did ? name : NULL, account,
				   rule_row, &p);
	return cli_out_finish(c, p.o, rc);
}

/* ---- rule-info ---- */

/* A rule copied out of its callback. */
struct rule_copy {
	int found;
	struct cat_rule r;
	char *strs[12];
};

static const char *keep(struct rule_copy *rc, int i, const char *s)
{
	rc->strs[i] = s ? dm_xstrdup(s) : NULL;
	return rc->strs[i];
}

static int rule_copy_cb(void *ud, const struct cat_rule *r)
{
	struct rule_copy *rc = ud;

	rc->found = 1;
	rc->r = *r;
	rc->r.id = keep(rc, 0, r->id);
	rc->r.scope = keep(rc, 1, r->scope);
	rc->r.name = keep(rc, 2, r->name);
	rc->r.account = keep(rc, 3, r->account);
	rc->r.error = keep(rc, 4, r->error);
	rc->r.rse_expression = keep(rc, 5, r->rse_expression);
	rc->r.weight = keep(rc, 6, r->weight);
	rc->r.source_replica_expression = keep(rc, 7, r->source_replica_expression);
	rc->r.activity = keep(rc, 8, r->activity);
	rc->r.comment = keep(rc, 9, r->comment);
	rc->r.notification = keep(rc, 10, r->notification);
	return 1;
}

static void rule_copy_free(struct rule_copy *rc)
{
	for (size_t i = 0; i < DM_ARRAY_SIZE(rc->strs); i++)
		free(rc->strs[i]);
}

static int lock_count_row(void *ud, const struct cat_lock_count *lc)
{
	cli_out_row(ud, "siii", lc->rse, lc->ok, lc->replicating, lc->stuck);
	return 0;
}

static int lock_count_json(void *ud, const struct cat_lock_count *lc)
{
	json_t *o = json_object();

	json_object_set_new(o, "rse", json_string(lc->rse));
	json_object_set_new(o, "ok", json_integer(lc->ok));
	json_object_set_new(o, "replicating", json_integer(lc->replicating));
	json_object_set_new(o, "stuck", json_integer(lc->stuck));
	json_array_append_new(ud, o);
	return 0;
}

static int lock_row(void *ud, const struct cat_lock *l)
{
	char did[CAT_SCOPE_MAX + CAT_NAME_MAX + 2];

	snprintf(did, sizeof did, "%s:%s", l->scope, l->name);
	cli_out_row(ud, "sssu", did, l->rse, cat_lock_state_name(l->state), l->bytes);
	return 0;
}

static json_t *jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *jtime(int64_t t)
{
	char buf[40];

	if (!t)
		return json_null();
	dm_fmt_time(t, buf);
	return json_string(buf);
}

static int rule_info_json(struct cli *c, const struct cat_rule *r)
{
	json_t *o = json_object(), *rses = json_array();
	char *s;
	enum dm_status rc;

	json_object_set_new(o, "id", jstr(r->id));
	json_object_set_new(o, "account", jstr(r->account));
	json_object_set_new(o, "scope", jstr(r->scope));
	json_object_set_new(o, "name", jstr(r->name));
	json_object_set_new(o, "did_type", jstr(cat_did_type_name(r->did_type)));
	json_object_set_new(o, "rse_expression", jstr(r->rse_expression));
	json_object_set_new(o, "copies", json_integer(r->copies));
	json_object_set_new(o, "state", jstr(cat_rule_state_name(r->state)));
	json_object_set_new(o, "locks_ok_cnt", json_integer(r->locks_ok_cnt));
	json_object_set_new(o, "locks_replicating_cnt", json_integer(r->locks_replicating_cnt));
	json_object_set_new(o, "locks_stuck_cnt", json_integer(r->locks_stuck_cnt));
	json_object_set_new(o, "grouping", jstr(cat_grouping_name(r->grouping)));
	json_object_set_new(o, "expires_at", jtime(r->expires_at));
	json_object_set_new(o, "locked", json_boolean(r->locked));
	json_object_set_new(o, "weight", jstr(r->weight));
	json_object_set_new(o, "created_at", jtime(r->created_at));
	json_object_set_new(o, "updated_at", jtime(r->updated_at));
	json_object_set_new(o, "stuck_at", jtime(r->stuck_at));
	json_object_set_new(o, "error", jstr(r->error));
	json_object_set_new(o, "source_replica_expression", jstr(r->source_replica_expression));
	json_object_set_new(o, "activity", jstr(r->activity));
	json_object_set_new(o, "comments", jstr(r->comment));
	json_object_set_new(o, "purge_replicas", json_boolean(r->purge_replicas));
	json_object_set_new(o, "ignore_availability", json_boolean(r->ignore_availability));
	json_object_set_new(o, "notification", jstr(r->notification));
	json_object_set_new(o, "priority", json_integer(r->priority));
	rc = cat_rule_lock_counts(c->db, r->id, lock_count_json, rses);
	json_object_set_new(o, "rses", rses);
	if (rc) {
		json_decref(o);
		return cli_fail(c, NULL);
	}
	s = json_dumps(o, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	puts(s);
	free(s);
	json_decref(o);
	fflush(stdout);
	return 0;
}

int cli_rule_info(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "locks", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const keys[] = {
		"Id:", "Account:", "Scope:", "Name:", "RSE Expression:", "Copies:", "State:",
		"Locks OK/REPLICATING/STUCK:", "Grouping:", "Expires at:", "Locked:", "Weight:",
		"Created at:", "Updated at:", "Error:", "Source replica expression:", "Activity:",
		"Comment:", "Ignore Availability:", "Purge replicas:", "Notification:", "Priority:",
	};
	static const char *const ccols[] = { "rse", "ok", "replicating", "stuck" };
	static const char *const lcols[] = { "did", "rse", "state", "bytes" };
	struct rule_copy rc = { 0 };
	struct cli_out *o;
	int opt, locks = 0, status = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'l')
			return cli_usage(c);
		locks = 1;
	}
	if (optind != argc - 1)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_rule_get(c->db, argv[optind], rule_copy_cb, &rc)) {
		status = cli_fail(c, NULL);
		goto out;
	}
	if (!rc.found) {
		status = cli_failf(c, "RuleNotFound", "no rule with the id %s", argv[optind]);
		goto out;
	}
	if (locks) {
		/* streamed: a rule may hold millions of locks */
		o = cli_out_begin(c, lcols, 4);
		status = cli_out_finish(c, o, cat_rule_list_locks(c->db, argv[optind], lock_row, o));
		goto out;
	}
	if (c->json) {
		status = rule_info_json(c, &rc.r);
	} else {
		const struct cat_rule *r = &rc.r;
		char counts[96];

		snprintf(counts, sizeof counts, "%lld/%lld/%lld", (long long)r->locks_ok_cnt,
			 (long long)r->locks_replicating_cnt, (long long)r->locks_stuck_cnt);
		cli_out_kv(c, keys, (int)DM_ARRAY_SIZE(keys), "sssssissstbsttssssbbsi", r->id,
			   r->account, r->scope, r->name, r->rse_expression, (int64_t)r->copies,
			   cat_rule_state_name(r->state), counts, cat_grouping_name(r->grouping),
			   r->expires_at, r->locked, r->weight, r->created_at, r->updated_at,
			   r->error, r->source_replica_expression, r->activity, r->comment,
			   r->ignore_availability, r->purge_replicas, r->notification,
			   (int64_t)r->priority);
		printf("\nLocks per RSE:\n");
		o = cli_out_begin(c, ccols, 4);
		status = cli_out_finish(c, o, cat_rule_lock_counts(c->db, r->id, lock_count_row, o));
	}
out:
	rule_copy_free(&rc);
	return status;
}

/* ---- delete-rule, update-rule ---- */

int cli_delete_rule(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "purge-replicas", no_argument, NULL, 'p' },
		{ "now", no_argument, NULL, 'n' },
		{ "delay", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, purge = -1, now = 0;
	int64_t delay = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': purge = 1; break;
		case 'n': now = 1; break;
		case 'd':
			if (cli_parse_int(c, "--delay", optarg, 0, DM_DURATION_MAX,
					  "seconds", &delay))
				return 1;
			break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc - 1 || (now && delay > 0))
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	/* delay 0: the rule, its locks and requests go now, in one transaction;
	 * otherwise it expires after delay and the judge-cleaner removes it */
	if (cat_rule_delete(c->db, argv[optind], purge, delay))
		return cli_fail(c, NULL);
	if (!c->json) {
		if (delay > 0)
			printf("Rule %s expires in %lld s (the judge-cleaner then deletes it)\n",
			       argv[optind], (long long)delay);
		else
			printf("Deleted rule %s\n", argv[optind]);
	}
	return 0;
}

int cli_update_rule(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lifetime", required_argument, NULL, 'l' },
		{ "locked", required_argument, NULL, 'L' },
		{ "comment", required_argument, NULL, 'C' },
		{ "activity", required_argument, NULL, 'a' },
		{ "priority", required_argument, NULL, 'P' },
		{ "state", required_argument, NULL, 's' },
		{ "stuck", no_argument, NULL, 'S' },
		{ "suspend", no_argument, NULL, 'U' },
		{ "purge-replicas", required_argument, NULL, 'p' },
		{ "source-replica-expression", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keys[16], *vals[16];
	int opt, n = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		const char *k = NULL, *v = optarg;
		int64_t num;

		switch (opt) {
		case 'l':
			k = "lifetime";
			if (strcasecmp(v, "none") && dm_parse_int(v, 0, DM_DURATION_MAX, &num))
				return cli_failf(c, "InputValidationError",
						 "--lifetime takes seconds from 0 to " DM_DURATION_MAX_STR
						 " (100 years), or none, not '%s'", v);
			if (!strcasecmp(v, "none"))
				v = "-1"; /* the catalog's "no lifetime" */
			break;
		case 'L':
			k = "locked";
			if (strcasecmp(v, "true") && strcasecmp(v, "false"))
				return cli_failf(c, "InputValidationError",
						 "--locked takes true or false, not '%s'", v);
			break;
		case 'C': k = "comment"; break;
		case 'a': k = "activity"; break;
		case 'P': k = "priority"; break;
		case 's': k = "state"; break;
		case 'S': k = "state"; v = "STUCK"; break;
		case 'U': k = "state"; v = "SUSPENDED"; break;
		case 'p':
			k = "purge_replicas";
			if (strcasecmp(v, "true") && strcasecmp(v, "false"))
				return cli_failf(c, "InputValidationError",
						 "--purge-replicas takes true or false, not '%s'", v);
			break;
		case 'r': k = "source_replica_expression"; break;
		default: return cli_usage(c);
		}
		if (n == (int)DM_ARRAY_SIZE(keys))
			return cli_usage(c);
		keys[n] = k;
		vals[n++] = v;
	}
	if (optind != argc - 1 || n == 0)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	for (int i = 0; i < n; i++)
		if (cat_rule_update(c->db, argv[optind], keys[i], vals[i]))
			return cli_fail(c, NULL);
	if (!c->json)
		printf("Updated rule %s\n", argv[optind]);
	return 0;
}

/* ---- list-transfers ---- */

static int request_row(void *ud, const struct cat_request *r)
{
	char did[CAT_SCOPE_MAX + CAT_NAME_MAX + 2];

	snprintf(did, sizeof did, "%s:%s", r->scope, r->name);
	cli_out_row(ud, "sssssiusts", r->id, did, r->source_rse, r->dest_rse,
		    cat_req_state_name(r->state), (int64_t)r->retry_count, r->bytes, r->rule_id,
		    r->updated_at, r->err_msg);
	return 0;
}

static int parse_states(struct cli *c, const char *arg, unsigned *mask)
{
	char *copy = dm_xstrdup(arg), *p = copy;

	*mask = 0;
	while (p) {
		char *comma = strchr(p, ',');
		int found = 0;

		if (comma)
			*comma = 0;
		for (int s = CAT_REQ_QUEUED; s <= CAT_REQ_LOST; s++) {
			if (!strcasecmp(p, cat_req_state_name((enum cat_req_state)s))) {
				*mask |= 1u << s;
				found = 1;
			}
		}
		if (!found) {
			cli_failf(c, "InputValidationError",
				  "unknown request state '%s' (QUEUED, SUBMITTED, DONE, FAILED, "
				  "NO_SOURCES, LOST)", p);
			free(copy);
			return 1;
		}
		p = comma ? comma + 1 : NULL;
	}
	free(copy);
	return 0;
}

int cli_list_transfers(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "rule", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cols[] = { "id", "did", "source_rse", "dest_rse", "state",
					    "retry_count", "bytes", "rule_id", "updated_at",
					    "err_msg" };
	const char *rule = NULL;
	unsigned mask = 0;
	struct cli_out *o;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (parse_states(c, optarg, &mask))
				return 1;
			break;
		case 'r': rule = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, (int)DM_ARRAY_SIZE(cols));
	return cli_out_finish(c, o, cat_req_list(c->db, mask, rule, request_row, o));
}

/* ---- add-distance ---- */

int cli_add_distance(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "distance", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dist = NULL;
	int opt, d = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'd')
			return cli_usage(c);
		dist = optarg;
	}
	if (!dist && optind == argc - 3)
		dist = argv[argc - 1];
	else if (!(dist && optind == argc - 2))
		return cli_usage(c);
	if (parse_int(c, "DISTANCE", dist, 0, 1000000, &d))
		return 1;
	if (cli_open(c))
		return 1;
	if (cat_distance_set(c->db, argv[optind], argv[optind + 1], d))
		return cli_fail(c, NULL);
	if (!c->json)
		printf("Distance %s -> %s set to %d\n", argv[optind], argv[optind + 1], d);
	return 0;
}
