/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_ingest.c - `didfs ingest --config FILE [--once]`: watch-folder
 * ingest (daemons/ingest.c holds the engine and documents the
 * configuration).  With --once: one full scan of the interface directories,
 * a summary, exit.  Without: a long-running service (its own process, not
 * a thread of `didfs daemon`: its configuration holds lists - directories,
 * rules - and it needs the RSE's storage mounted locally, so it runs where
 * the storage is, one process per interface, e.g. under systemd) that
 * watches with inotify and rescans every `rescan` seconds until SIGTERM or
 * SIGINT, which end it after the batch in hand.
 *
 * The catalog: --catalog / $DIDFS_CATALOG, else the file's `catalog`.
 */
#include "cli.h"
#include "ingest.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

int cli_ingest(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "once", no_argument, NULL, 'o' },
		{ "log-level", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *level = NULL;
	struct ing_config *cfg;
	struct ing_stats st;
	struct dm_err err = { 0 };
	int once = 0, opt, rc;
	double t0 = dm_now_f();

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'o': once = 1; break;
		case 'l': level = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (!config || optind != argc)
		return cli_usage(c);
	if (level) {
		if (!strcmp(level, "error")) dm_log_set_level(DM_LOG_ERROR);
		else if (!strcmp(level, "warning") || !strcmp(level, "warn")) dm_log_set_level(DM_LOG_WARN);
		else if (!strcmp(level, "info")) dm_log_set_level(DM_LOG_INFO);
		else if (!strcmp(level, "debug")) dm_log_set_level(DM_LOG_DEBUG);
		else
			return cli_failf(c, "InputValidationError", "unknown log level '%s'", level);
	} else if (!once) {
		dm_log_set_level(DM_LOG_INFO);
	}
	cfg = ing_config_load(config, &err);
	if (!cfg)
		return cli_fail(c, &err);
	if (ing_config_catalog(cfg) && !getenv("DIDFS_CATALOG") && !strcmp(c->catalog_path, "didfs.db"))
		c->catalog_path = ing_config_catalog(cfg);
	if (cli_open(c)) {
		ing_config_free(cfg);
		return 1;
	}
	if (!once) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns */
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		dm_log(DM_LOG_INFO, "ingest", "watching (config %s)", config);
	}
	rc = ing_run(c->db, cfg, once, &stop_flag, &st, &err);
	ing_config_free(cfg);
	if (rc && !st.registered && !st.failed && !st.already && !st.waiting)
		return cli_fail(c, &err); /* refused before any file was looked at */
	if (c->json)
		printf("{\"registered\": %llu, \"already_registered\": %llu, \"failed\": %llu,"
		       " \"waiting\": %llu, \"bytes\": %llu, \"datasets_created\": %llu,"
		       " \"seconds\": %.3f}\n",
		       (unsigned long long)st.registered, (unsigned long long)st.already,
		       (unsigned long long)st.failed, (unsigned long long)st.waiting,
		       (unsigned long long)st.bytes, (unsigned long long)st.datasets,
		       dm_now_f() - t0);
	else
		printf("Ingested %llu file(s), %llu already registered, %llu set aside, %llu waiting,"
		       " %llu dataset(s) created, %.2f s\n",
		       (unsigned long long)st.registered, (unsigned long long)st.already,
		       (unsigned long long)st.failed, (unsigned long long)st.waiting,
		       (unsigned long long)st.datasets, dm_now_f() - t0);
	if (rc)
		return cli_fail(c, &err);
	return 0;
}
