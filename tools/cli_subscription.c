/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_subscription.c - Rucio's subscriptions from the command line:
 *   add-subscription NAME --filter JSON --rules R [--rules R ...]
 *                    [--account A] [--comments C] [--lifetime DAYS] [--priority N]
 *   list-subscriptions [NAME] [--account A]
 *   update-subscription NAME [--account A] [--filter JSON] [--rules R ...]
 *                    [--comments C] [--lifetime DAYS] [--priority N]
 *                    [--state ACTIVE|INACTIVE]
 *   delete-subscription NAME [--account A]
 * A rule R is JSON (one object or a list, Rucio's replication_rules items)
 * or the short form "COPIES RSE_EXPRESSION [key=value ...]", e.g.
 * "2 type=DC lifetime=2592000 activity=T0_Export".  The owner (--account)
 * defaults to the issuer.  Rucio has no delete (its client deactivates):
 * delete-subscription sets the state INACTIVE, so the subscription stops
 * matching and its rules stay.  The transmogrifier (`didfs daemon
 * transmogrifier`) applies the subscriptions to new DIDs; the rest is the
 * catalog's (catalog/subscription.c).
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sub_args {
	const char *account, *filter, *comments, *state;
	struct dm_buf rules; /* JSON objects, comma-separated */
	int nrules;
	int64_t lifetime;
	int priority;
};

static int parse_sub_args(struct cli *c, int argc, char **argv, struct sub_args *a, int update)
{
	static const struct option opts[] = {
		{ "account", required_argument, NULL, 'a' },
		{ "filter", required_argument, NULL, 'f' },
		{ "rules", required_argument, NULL, 'r' },
		{ "rule", required_argument, NULL, 'r' },
		{ "replication-rules", required_argument, NULL, 'r' },
		{ "comments", required_argument, NULL, 'c' },
		{ "comment", required_argument, NULL, 'c' },
		{ "lifetime", required_argument, NULL, 'l' },
		{ "priority", required_argument, NULL, 'p' },
		{ "state", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	int64_t v;
	struct dm_err e;

	memset(a, 0, sizeof *a);
	dm_buf_init(&a->rules, 0);
	a->lifetime = update ? -1 : 0;
	a->priority = update ? -1 : 3;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'a': a->account = optarg; break;
		case 'f': a->filter = optarg; break;
		case 'c': a->comments = optarg; break;
		case 'r':
			if (cat_subscription_rule_text(optarg, &a->rules, &e))
				return cli_fail(c, &e);
			a->nrules++;
			break;
		case 'l':
			if (cli_parse_int(c, "--lifetime", optarg, 1, 36500, "days", &v))
				return 1;
			a->lifetime = v;
			break;
		case 'p':
			if (cli_parse_int(c, "--priority", optarg, 0, 5, NULL, &v))
				return 1;
			a->priority = (int)v;
			break;
		case 's':
			if (!update)
				return cli_usage(c);
			a->state = optarg;
			break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc - 1)
		return cli_usage(c);
	return 0;
}

static void rules_json(struct sub_args *a, struct dm_buf *out)
{
	dm_buf_addc(out, '[');
	dm_buf_add(out, a->rules.s, a->rules.len);
	dm_buf_addc(out, ']');
}

int cli_add_subscription(struct cli *c, int argc, char **argv)
{
	struct sub_args a;
	struct dm_buf rules = DM_BUF_INIT;
	char id[33];
	int rc;

	if ((rc = parse_sub_args(c, argc, argv, &a, 0)))
		goto out;
	if (!a.filter || !a.nrules) {
		rc = cli_failf(c, "InvalidObject", "add-subscription needs --filter JSON and at least one --rules");
		goto out;
	}
	if ((rc = cli_open(c)))
		goto out;
	rules_json(&a, &rules);
	if (cat_subscription_add(c->db, argv[optind], a.account ? a.account : cat_issuer(c->db), a.filter,
				 rules.s, a.comments, a.lifetime, a.priority, id)) {
		rc = cli_fail(c, NULL);
		goto out;
	}
	if (c->json)
		printf("{\"id\": \"%s\"}\n", id);
	else
		printf("%s\n", id);
out:
	dm_buf_release(&rules);
	dm_buf_release(&a.rules);
	return rc;
}

int cli_update_subscription(struct cli *c, int argc, char **argv)
{
	struct sub_args a;
	struct cat_subscription_update u;
	struct dm_buf rules = DM_BUF_INIT;
	int rc;

	if ((rc = parse_sub_args(c, argc, argv, &a, 1)))
		goto out;
	if (!a.filter && !a.nrules && !a.comments && !a.state && a.lifetime < 0 && a.priority < 0) {
		rc = cli_failf(c, "InvalidObject", "update-subscription needs something to change"
			       " (--filter, --rules, --comments, --lifetime, --priority, --state)");
		goto out;
	}
	if ((rc = cli_open(c)))
		goto out;
	cat_subscription_update_init(&u);
	u.filter = a.filter;
	if (a.nrules) {
		rules_json(&a, &rules);
		u.rules = rules.s;
	}
	u.comments = a.comments;
	u.state = a.state;
	u.lifetime_days = a.lifetime;
	u.priority = a.priority;
	if (cat_subscription_update(c->db, argv[optind], a.account ? a.account : cat_issuer(c->db), &u))
		rc = cli_fail(c, NULL);
out:
	dm_buf_release(&rules);
	dm_buf_release(&a.rules);
	return rc;
}

int cli_delete_subscription(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "account", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	struct cat_subscription_update u;
	const char *account = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'a')
			return cli_usage(c);
		account = optarg;
	}
	if (optind != argc - 1)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	cat_subscription_update_init(&u);
	u.state = "INACTIVE";
	if (cat_subscription_update(c->db, argv[optind], account ? account : cat_issuer(c->db), &u))
		return cli_fail(c, NULL);
	return 0;
}

static int sub_row(void *ud, const struct cat_subscription *s)
{
	struct cli_out *o = ud;

	cli_out_row(o, "sssssitttstt", s->id, s->account, s->name, s->state, s->filter, s->policyid,
		    s->lifetime, s->last_processed, s->expired_at, s->replication_rules, s->created_at,
		    s->updated_at);
	return 0;
}

int cli_list_subscriptions(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "account", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cols[] = { "id", "account", "name", "state", "filter", "priority",
					    "lifetime", "last_processed", "expired_at",
					    "replication_rules", "created_at", "updated_at" };
	const char *account = NULL, *name = NULL;
	struct cli_out *o;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'a')
			return cli_usage(c);
		account = optarg;
	}
	if (optind < argc - 1)
		return cli_usage(c);
	if (optind == argc - 1)
		name = argv[optind];
	if (cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, (int)DM_ARRAY_SIZE(cols));
	rc = cat_subscription_list(c->db, name, account, sub_row, o);
	if (rc == DM_ENOENT && !name)
		rc = DM_OK; /* no subscriptions at all: an empty listing */
	return cli_out_finish(c, o, rc);
}
