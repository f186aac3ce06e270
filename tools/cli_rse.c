/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_rse.c - storage elements: add-rse, update-rse, set-rse-attribute,
 * delete-rse-attribute, add-protocol, list-protocols, list-rses (with an RSE
 * expression), list-rse-attributes, lfn2pfn.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_add_rse(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "non-deterministic", no_argument, NULL, 'n' },
		{ "volatile", no_argument, NULL, 'v' },
		{ "staging-area", no_argument, NULL, 's' },
		{ "rse-type", required_argument, NULL, 't' },
		{ "city", required_argument, NULL, 'C' },
		{ "country-name", required_argument, NULL, 'N' },
		{ "continent", required_argument, NULL, 'K' },
		{ "region-code", required_argument, NULL, 'R' },
		{ "time-zone", required_argument, NULL, 'Z' },
		{ NULL, 0, NULL, 0 },
	};
	struct cat_rse_opts o = { 0 };
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': o.non_deterministic = 1; break;
		case 'v': o.volatile_ = 1; break;
		case 's': o.staging_area = 1; break;
		case 't': o.rse_type = optarg; break;
		case 'C': o.city = optarg; break;
		case 'N': o.country_name = optarg; break;
		case 'K': o.continent = optarg; break;
		case 'R': o.region_code = optarg; break;
		case 'Z': o.time_zone = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc - 1)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_rse_add(c->db, argv[optind], &o))
		return cli_fail(c, NULL);
	if (!c->json)
		printf("Added new %sdeterministic RSE: %s\n", o.non_deterministic ? "non-" : "", argv[optind]);
	return 0;
}

int cli_update_rse(struct cli *c, int argc, char **argv)
{
	const char *rse, *key, *value;

	if (cli_target_key_value(c, argc, argv, "rse", "setting", &rse, &key, &value, 1))
		return 2;
	if (cli_open(c))
		return 1;
	if (cat_rse_update(c->db, rse, key, value))
		return cli_fail(c, NULL);
	return 0;
}

int cli_set_rse_attribute(struct cli *c, int argc, char **argv)
{
	const char *rse, *key, *value;

	if (cli_target_key_value(c, argc, argv, "rse", "key", &rse, &key, &value, 1))
		return 2;
	if (cli_open(c))
		return 1;
	if (cat_rse_attr_set(c->db, rse, key, value))
		return cli_fail(c, NULL);
	return 0;
}

int cli_delete_rse_attribute(struct cli *c, int argc, char **argv)
{
	const char *rse, *key, *value;

	if (cli_target_key_value(c, argc, argv, "rse", "key", &rse, &key, &value, 0))
		return 2;
	if (cli_open(c))
		return 1;
	if (cat_rse_attr_del(c->db, rse, key))
		return cli_fail(c, NULL);
	return 0;
}

static int parse_prio(struct cli *c, const char *opt, const char *s, int *out)
{
	int64_t v;

	if (!strcasecmp(s, "none") || !strcasecmp(s, "null") || !strcasecmp(s, "disabled")) {
		*out = -1;
		return 0;
	}
	if (dm_parse_i64(s, &v) || v < -1 || v > 1000000)
		return cli_failf(c, "RSEProtocolPriorityError",
				 "%s takes a priority >= 0 (lower is preferred) or -1/none to disable, not '%s'",
				 opt, s);
	*out = (int)v;
	return 0;
}

int cli_add_protocol(struct cli *c, int argc, char **argv)
{
	enum { O_READ = 256, O_WRITE, O_DELETE, O_TPCR, O_TPCW, O_LREAD, O_LWRITE, O_LDELETE,
	       O_WREAD, O_WWRITE, O_WDELETE };
	static const struct option opts[] = {
		{ "rse", required_argument, NULL, 'r' },
		{ "scheme", required_argument, NULL, 's' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "prefix", required_argument, NULL, 'P' },
		{ "impl", required_argument, NULL, 'i' },
		{ "extended-attributes", required_argument, NULL, 'x' },
		{ "read", required_argument, NULL, O_READ },
		{ "write", required_argument, NULL, O_WRITE },
		{ "delete", required_argument, NULL, O_DELETE },
		{ "tpc-read", required_argument, NULL, O_TPCR },
		{ "tpc-write", required_argument, NULL, O_TPCW },
		{ "lan-read", required_argument, NULL, O_LREAD },
		{ "lan-write", required_argument, NULL, O_LWRITE },
		{ "lan-delete", required_argument, NULL, O_LDELETE },
		{ "wan-read", required_argument, NULL, O_WREAD },
		{ "wan-write", required_argument, NULL, O_WWRITE },
		{ "wan-delete", required_argument, NULL, O_WDELETE },
		{ NULL, 0, NULL, 0 },
	};
	struct cat_protocol p = { 0 };
	const char *rse = NULL;
	int opt, v = 0;
	int64_t port;

	cat_protocol_defaults(&p);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': rse = optarg; break;
		case 's': p.scheme = optarg; break;
		case 'H': p.hostname = optarg; break;
		case 'p':
			if (dm_parse_i64(optarg, &port) || port < 0 || port > 65535)
				return cli_failf(c, "InvalidObject", "--port takes 0..65535, not '%s'", optarg);
			p.port = (int)port;
			break;
		case 'P': p.prefix = optarg; break;
		case 'i': p.impl = optarg; break;
		case 'x': p.extended_attributes = optarg; break;
		case O_READ: case O_WRITE: case O_DELETE:
			if (parse_prio(c, "--read/--write/--delete", optarg, &v))
				return 1;
			p.prio[CAT_LAN][opt - O_READ] = p.prio[CAT_WAN][opt - O_READ] = v;
			break;
		case O_TPCR: case O_TPCW:
			if (parse_prio(c, "--tpc-read/--tpc-write", optarg, &v))
				return 1;
			p.prio[CAT_WAN][opt == O_TPCR ? CAT_OP_TPC_READ : CAT_OP_TPC_WRITE] = v;
			break;
		case O_LREAD: case O_LWRITE: case O_LDELETE:
			if (parse_prio(c, "--lan-*", optarg, &v))
				return 1;
			p.prio[CAT_LAN][opt - O_LREAD] = v;
			break;
		case O_WREAD: case O_WWRITE: case O_WDELETE:
			if (parse_prio(c, "--wan-*", optarg, &v))
				return 1;
			p.prio[CAT_WAN][opt - O_WREAD] = v;
			break;
		default: return cli_usage(c);
		}
	}
	if (!rse && optind < argc)
		rse = argv[optind++];
	if (optind != argc || !rse || !p.scheme)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_protocol_add(c->db, rse, &p))
		return cli_fail(c, NULL);
	return 0;
}

static int proto_row(void *ud, const struct cat_protocol *p)
{
	cli_out_row(ud, "ssisiiiiiii" "is", p->scheme, p->hostname, (int64_t)p->port, p->prefix,
		    (int64_t)p->prio[CAT_LAN][CAT_OP_READ], (int64_t)p->prio[CAT_LAN][CAT_OP_WRITE],
		    (int64_t)p->prio[CAT_LAN][CAT_OP_DELETE], (int64_t)p->prio[CAT_WAN][CAT_OP_READ],
		    (int64_t)p->prio[CAT_WAN][CAT_OP_WRITE], (int64_t)p->prio[CAT_WAN][CAT_OP_DELETE],
		    (int64_t)p->prio[CAT_WAN][CAT_OP_TPC_READ], (int64_t)p->prio[CAT_WAN][CAT_OP_TPC_WRITE],
		    p->impl);
	return 0;
}

int cli_list_protocols(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "scheme", "hostname", "port", "prefix", "read_lan",
					    "write_lan", "delete_lan", "read_wan", "write_wan",
					    "delete_wan", "third_party_copy_read",
					    "third_party_copy_write", "impl" };
	struct cli_out *o;
	int rc;

	if (argc != 2)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, 13);
	rc = cat_protocol_list(c->db, argv[1], proto_row, o);
	return cli_out_finish(c, o, rc);
}

static int rse_row(void *ud, const struct cat_rse *r)
{
	cli_out_row(ud, "ssbbbb", r->rse, r->rse_type, r->deterministic, r->availability_read,
		    r->availability_write, r->availability_delete);
	return 0;
}

int cli_list_rses(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rses", required_argument, NULL, 'r' },
		{ "expression", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cols[] = { "rse", "rse_type", "deterministic", "availability_read",
					    "availability_write", "availability_delete" };
	const char *expr = NULL;
	struct cli_out *o;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'r')
			return cli_usage(c);
		expr = optarg;
	}
	if (!expr && optind < argc)
		expr = argv[optind++];
	if (optind != argc)
		return cli_usage(c);
	/* Rucio's client and server treat an empty expression as none: all RSEs */
	if (expr && !*expr)
		expr = NULL;
	if (cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, 6);
	rc = expr ? cat_rse_expr_list(c->db, expr, rse_row, o) : cat_rse_list(c->db, rse_row, o);
	return cli_out_finish(c, o, rc);
}

int cli_list_rse_attributes(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "key", "value" };
	struct cli_out *o;
	int rc;

	if (argc != 2)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, 2);
	rc = cat_rse_attr_list(c->db, argv[1], cli_kv_row, o);
	return cli_out_finish(c, o, rc);
}

int cli_lfn2pfn(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rse", required_argument, NULL, 'r' },
		{ "scheme", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cols[] = { "did", "pfn" };
	const char *rse = NULL, *scheme = NULL;
	struct cli_out *o;
	int opt, rc = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': rse = optarg; break;
		case 's': scheme = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (!rse || optind >= argc)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, 2);
	for (int i = optind; i < argc && !rc; i++) {
		char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
		struct dm_buf pfn = DM_BUF_INIT;
		struct dm_err err = { 0 };

		if (cat_parse_did(argv[i], scope, name, &err)) {
			cli_out_finish(c, o, 1);
			return cli_fail(c, &err);
		}
		if (cat_lfn2pfn(c->db, rse, scope, name, scheme, CAT_OP_WRITE, &pfn)) {
			dm_buf_release(&pfn);
			return cli_out_finish(c, o, 1);
		}
		cli_out_row(o, "ss", argv[i], pfn.s);
		dm_buf_release(&pfn);
	}
	cli_out_end(o);
	return 0;
}
