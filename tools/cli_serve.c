/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_serve.c - `didfs serve`: Rucio's REST API over the catalog (server/).
 *
 *   didfs [--catalog C] serve [--listen ADDR:PORT] [--tls-cert F --tls-key F]
 *         [--ca-path P] [--config FILE] [--access-log F|-|off]
 *         [--max-connections N] [--threads N] [--token-lifetime S] [--legacy-dn]
 *         [--metrics-allow off|any|ADDR[/BITS],...]
 *
 * Options override the config file (key = value lines, server/http.c); the
 * catalog comes from --catalog / $DIDFS_CATALOG unless the config names
 * one.  Runs in the foreground until SIGTERM; SIGHUP reloads the config.
 */
#include "cli.h"
#include "server.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	O_LISTEN = 500, O_CERT, O_KEY, O_CA, O_CONFIG, O_LOG, O_MAXCONN, O_THREADS, O_TOKEN,
	O_LEGACY, O_TIMEOUT, O_MAXBODY, O_METRICS_ALLOW,
};

int cli_serve(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "tls-cert", required_argument, NULL, O_CERT },
		{ "tls-key", required_argument, NULL, O_KEY },
		{ "ca-path", required_argument, NULL, O_CA },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "access-log", required_argument, NULL, O_LOG },
		{ "max-connections", required_argument, NULL, O_MAXCONN },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "token-lifetime", required_argument, NULL, O_TOKEN },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "max-body", required_argument, NULL, O_MAXBODY },
		{ "legacy-dn", no_argument, NULL, O_LEGACY },
		{ "metrics-allow", required_argument, NULL, O_METRICS_ALLOW },
		{ NULL, 0, NULL, 0 },
	};
	struct srv_config cfg;
	struct dm_err err = { 0 };
	const char *config = NULL;
	int opt;
	uint64_t v;

	srv_config_defaults(&cfg);
	snprintf(cfg.catalog, sizeof(cfg.catalog), "%s", c->catalog_path);
	/* the config file first, then the options over it */
	for (int i = 1; i < argc - 1; i++)
		if (!strcmp(argv[i], "--config"))
			config = argv[i + 1];
	if (config && srv_config_load(&cfg, config, &err))
		return cli_fail(c, &err);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case O_LISTEN: snprintf(cfg.listen, sizeof(cfg.listen), "%s", optarg); break;
		case O_CERT: snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s", optarg); break;
		case O_KEY: snprintf(cfg.tls_key, sizeof(cfg.tls_key), "%s", optarg); break;
		case O_CA: snprintf(cfg.ca_path, sizeof(cfg.ca_path), "%s", optarg); break;
		case O_CONFIG: break;
		case O_LOG: snprintf(cfg.access_log, sizeof(cfg.access_log), "%s", optarg); break;
		case O_LEGACY: cfg.legacy_dn = 1; break;
		case O_METRICS_ALLOW:
			snprintf(cfg.metrics_allow, sizeof(cfg.metrics_allow), "%s", optarg);
			break;
		case O_MAXCONN:
		case O_THREADS:
		case O_TOKEN:
		case O_TIMEOUT:
		case O_MAXBODY:
			if (dm_parse_size(optarg, &v) || v < 1 || v > (1ull << 32))
				return cli_failf(c, "InputValidationError", "%s takes a positive number, not '%s'",
						 argv[optind - 1], optarg);
			if (opt == O_MAXCONN) cfg.max_connections = (int)v;
			else if (opt == O_THREADS) cfg.pool_size = (int)(v > 1024 ? 1024 : v);
			else if (opt == O_TOKEN) cfg.token_lifetime = (int)v;
			else if (opt == O_TIMEOUT) cfg.timeout = (int)v;
			else cfg.max_body = (size_t)v;
			break;
		default:
			return cli_usage(c);
		}
	}
	if (optind < argc)
		return cli_usage(c);
	return srv_run(&cfg, config);
}
