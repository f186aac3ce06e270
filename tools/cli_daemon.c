/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_daemon.c - `didfs daemon`: runs the replication service (judge,
 * conveyor, reaper, undertaker, abacus) on the catalog until SIGTERM or
 * SIGINT; SIGHUP reloads --config.  The work is in daemons/runtime.c.
 *
 *   didfs daemon [all | NAME...] [--once] [--sleep SECONDS] [--threads N]
 *                [--config FILE] [--log-level error|warning|info|debug]
 *                [--metrics ADDR:PORT]
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "runtime.h"

int cli_daemon(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ "sleep", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "metrics", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	struct dmn_options o = { 0 };
	struct dm_err err = { 0 };
	int opt;
	int64_t v;

	o.catalog_path = c->catalog_path;
	o.threads = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'o': o.once = 1; break;
		case 's':
			if (dm_parse_i64(optarg, &v) || v < 1 || v > 86400)
				return cli_failf(c, "InputValidationError",
						 "--sleep takes seconds from 1 to 86400, not '%s'", optarg);
			o.sleep_override = (int)v;
			break;
		case 't':
			if (dm_parse_i64(optarg, &v) || v < 1 || v > 64)
				return cli_failf(c, "InputValidationError",
						 "--threads takes a number from 1 to 64, not '%s'", optarg);
			o.threads = (int)v;
			break;
		case 'c': o.config_path = optarg; break;
		case 'm': o.metrics = optarg; break;
		case 'l':
			if (dmn_log_level_parse(optarg, &o.log_level))
				return cli_failf(c, "InputValidationError",
						 "--log-level takes error, warning, info or debug, not '%s'",
						 optarg);
			o.log_level_set = 1;
			break;
		default: return cli_usage(c);
		}
	}
	for (int i = optind; i < argc; i++) {
		enum dmn_kind k;

		if (!strcmp(argv[i], "all")) {
			o.daemons = (1u << DMN_COUNT) - 1;
			continue;
		}
		if (dmn_kind_parse(argv[i], &k))
			return cli_failf(c, "InputValidationError",
					 "unknown daemon '%s' (all, judge-evaluator, judge-injector, "
					 "judge-repairer, judge-cleaner, conveyor, reaper, undertaker, "
					 "abacus, transmogrifier, hermes, necromancer)", argv[i]);
		o.daemons |= 1u << k;
	}
	if (dmn_run(&o, &err))
		return cli_fail(c, &err);
	return 0;
}
