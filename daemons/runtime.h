/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime.h - the replication service (prefix dmn_): Rucio's daemons as
 * threads of one process, and their configuration.
 *
 *   didfs daemon [all | NAME...] [--once] [--sleep S] [--threads N]
 *                [--config FILE] [--log-level L] [--metrics ADDR:PORT]
 *
 * Daemons: judge-evaluator, judge-injector, judge-repairer, judge-cleaner,
 * conveyor, reaper, undertaker, abacus, transmogrifier, hermes, necromancer.  Each runs as --threads loops, every
 * loop in its own thread with its own catalog handle (a handle is
 * single-threaded) and its own heartbeat row (executable "didfs-<name>"), so
 * that threads and processes of the same daemon split the work by the
 * (index, total) the heartbeats hand out, as Rucio's do.
 *
 * Configuration: simple "key = value" lines, '#' comments, optional
 * "[section]" headers that prefix the keys below them ("[conveyor]" then
 * "sleep = 5" is "conveyor.sleep = 5").  Unknown keys and bad values are
 * refused with the line number; a refused reload (SIGHUP) keeps the
 * configuration in force.  The keys are listed in config.c.
 *
 * Signals: SIGTERM and SIGINT stop every loop after its current unit of
 * work, drop the heartbeats and return 0; SIGHUP reloads the configuration
 * file and logs that it did.
 */
#ifndef DMN_RUNTIME_H
#define DMN_RUNTIME_H

#include <stdint.h>

#include "dm.h"

enum dmn_kind {
	DMN_JUDGE_EVALUATOR,
	DMN_JUDGE_INJECTOR,
	DMN_JUDGE_REPAIRER,
	DMN_JUDGE_CLEANER,
	DMN_CONVEYOR,
	DMN_REAPER,
	DMN_UNDERTAKER,
	DMN_ABACUS,
	DMN_TRANSMOGRIFIER,
	DMN_HERMES,
	DMN_NECROMANCER,
	DMN_COUNT
};

/* "judge-evaluator", ...; NULL for an out-of-range kind. */
const char *dmn_kind_name(enum dmn_kind k);
/* 0 and *k set when s names a daemon, -1 otherwise. */
int dmn_kind_parse(const char *s, enum dmn_kind *k);

#define DMN_PATH_MAX 1024

/* Every setting is a plain value (no pointers), so a snapshot is a struct
 * copy.  Defaults from dmn_config_defaults(); units are seconds. */
struct dmn_config {
	int sleep[DMN_COUNT];     /* <daemon>.sleep: idle wait between cycles */
	int chunk[DMN_COUNT];     /* <daemon>.chunk_size: work units per call */
	enum dm_log_level log_level; /* log_level: error, warning, info, debug */
	int heartbeat_interval;   /* heartbeat.interval: seconds between beats */
	int heartbeat_timeout;    /* heartbeat.timeout: a beat older is dead */

	/* conveyor */
	int max_retries;          /* conveyor.max_retries: attempts per request */
	int parallel;             /* conveyor.parallel: streamed copies in flight */
	int tpc_parallel;         /* conveyor.tpc_parallel: third-party copies in flight */
	int tpc_per_rse;          /* conveyor.tpc_per_rse: of those, per destination RSE */
	uint64_t stream_below;    /* conveyor.stream_below: smaller files are streamed
				     even where TPC is possible (0: never) */
	int tpc;                  /* conveyor.tpc: use third-party copy when possible */
	int tpc_fallback;         /* conveyor.tpc_fallback: stream if TPC fails */
	int max_sources;          /* conveyor.max_sources: sources tried per attempt */
	int max_checksums;        /* conveyor.max_checksums: server checksums at once */
	int retry_delay;          /* conveyor.retry_delay: a failed attempt is retried
				     after this * 2^retry_count seconds (max 600) */
	int64_t request_max_age;  /* conveyor.request_max_age: a SUBMITTED request
				     older than this is given back (> any transfer) */
	char tmp_dir[DMN_PATH_MAX]; /* conveyor.tmp_dir: streamed copies */

	/* transfer layer (struct xfer_config) */
	int timeout;              /* transfer.timeout */
	int connect_timeout;      /* transfer.connect_timeout */
	int stall_timeout;        /* transfer.stall_timeout */
	int tpc_timeout;          /* transfer.tpc_timeout */
	uint64_t chunk_bytes;     /* transfer.chunk_bytes */
	int chunks_in_flight;     /* transfer.chunks_in_flight */
	int insecure;             /* transfer.insecure */
	char ca_path[DMN_PATH_MAX];     /* transfer.ca_path */
	char ca_file[DMN_PATH_MAX];     /* transfer.ca_file */
	char client_cert[DMN_PATH_MAX]; /* transfer.client_cert */
	char client_key[DMN_PATH_MAX];  /* transfer.client_key */

	/* reaper */
	int greedy;               /* reaper.greedy: delete every expired tombstone */
	int reaper_parallel;      /* reaper.parallel: deletions in flight */

	/* judge-repairer */
	int64_t repair_min_age;   /* judge-repairer.min_age */
	int64_t suspend_after;    /* judge-repairer.suspend_after */

	/* hermes (daemons/hermes.c): the sinks of the outbox */
	char stomp_host[DMN_PATH_MAX];     /* hermes.stomp_host ("": no STOMP sink) */
	int stomp_port;                    /* hermes.stomp_port (61613) */
	char stomp_vhost[DMN_PATH_MAX];    /* hermes.stomp_vhost ("/") */
	char stomp_user[DMN_PATH_MAX];     /* hermes.stomp_user */
	char stomp_password[DMN_PATH_MAX]; /* hermes.stomp_password */
	char stomp_destination[DMN_PATH_MAX]; /* hermes.stomp_destination */
	char webhooks[DMN_PATH_MAX];       /* hermes.webhooks: URLs, space-separated */
	int hermes_timeout;                /* hermes.timeout: per delivery */
	int hermes_max_delay;              /* hermes.max_delay: back-off cap */
};

void dmn_config_defaults(struct dmn_config *cfg);
/* Set one key ("conveyor.sleep", "sleep" for every daemon, ...).  DM_EINVAL
 * (InputValidationError) naming the key or value when refused; cfg is left
 * unchanged then. */
enum dm_status dmn_config_set(struct dmn_config *cfg, const char *key, const char *value,
			      struct dm_err *err);
/* Parse a whole text over *cfg; on error *cfg is unchanged and err names the
 * line ("FILE:LINE: ..."); origin names the source in messages. */
enum dm_status dmn_config_parse(struct dmn_config *cfg, const char *text, const char *origin,
				struct dm_err *err);
/* Read a file and parse it over *cfg (same guarantees). */
enum dm_status dmn_config_load(struct dmn_config *cfg, const char *path, struct dm_err *err);
/* Parse a log level name ("error", "warn"/"warning", "info", "debug"). */
int dmn_log_level_parse(const char *s, enum dm_log_level *l);

struct dmn_options {
	const char *catalog_path; /* a catalog URI (cat_open) */
	const char *config_path;  /* NULL: defaults only; reloaded on SIGHUP */
	unsigned daemons;         /* mask of 1 << DMN_*; 0 = all */
	int once;                 /* one cycle per loop, then return */
	int threads;              /* loops per daemon (default 1) */
	int sleep_override;       /* > 0: every daemon's sleep (--sleep) */
	int log_level_set;        /* --log-level given: overrides the file */
	enum dm_log_level log_level;
	const char *metrics;      /* --metrics ADDR:PORT, or NULL (daemons/dmetrics.c) */
};

/* Run the selected daemons until SIGTERM/SIGINT (or, with once, until every
 * loop has done one cycle).  Returns the process exit status: 0 on a clean
 * stop, 1 when the configuration or the catalog cannot be used (err says
 * why), 1 with once when a cycle failed. */
int dmn_run(const struct dmn_options *o, struct dm_err *err);

#endif
