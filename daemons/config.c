/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - the configuration of `didfs daemon`: defaults, "key = value"
 * files with optional [section] headers, validation.
 *
 * Keys (seconds unless said otherwise):
 *   sleep                         every daemon's idle sleep
 *   chunk_size                    every daemon's work units per call
 *   log_level                     error | warning | info | debug
 *   heartbeat.interval            seconds between heartbeats (5)
 *   heartbeat.timeout             a heartbeat older than this is dead (30)
 *   <daemon>.sleep, <daemon>.chunk_size   per daemon (judge-evaluator, ...)
 *   conveyor.max_retries          attempts per request before STUCK (3)
 *   conveyor.parallel             streamed copies in flight per conveyor loop (8)
 *   conveyor.tpc                  true | false: third-party copy when possible
 *   conveyor.tpc_parallel         third-party copies in flight per conveyor loop
 *                                 (32), besides the streamed ones: a TPC is mostly
 *                                 waiting (~2.5 s per file on XRootD whatever its
 *                                 size), so latency, not count, bounds a dataset
 *   conveyor.tpc_per_rse          of those, at most this many to one destination
 *                                 RSE (8): an XRootD server runs 9 TPCs at once
 *                                 (ofs.tpc xfr default) and one queued behind them
 *                                 longer than its rendezvous key lives (7 s) fails
 *                                 with "tpc authorization expired"
 *   conveyor.stream_below         size (K/M/G suffix); a file smaller than this is
 *                                 streamed through the conveyor even where TPC is
 *                                 possible (0: never).  Default STREAM_BELOW, see
 *                                 there for the measurement behind it
 *   conveyor.tpc_fallback         stream through the conveyor if TPC fails
 *   conveyor.retry_delay          a failed attempt waits this * 2^attempt
 *                                 seconds (at most 600) before its retry (10)
 *   conveyor.max_sources          sources tried per attempt (4)
 *   conveyor.max_checksums        server-side checksums asked at once per
 *                                 process (4; XRootD makes the others wait)
 *   conveyor.request_max_age      a request SUBMITTED longer is given back
 *   conveyor.tmp_dir              local directory for streamed copies
 *   transfer.timeout, transfer.connect_timeout, transfer.stall_timeout,
 *   transfer.tpc_timeout, transfer.chunk_bytes (K/M suffix),
 *   transfer.chunks_in_flight, transfer.insecure, transfer.ca_path,
 *   transfer.ca_file, transfer.client_cert, transfer.client_key
 *   reaper.greedy                 true: delete every expired tombstone, not
 *                                 only OBSOLETE ones (RSE attribute
 *                                 greedyDeletion does the same per RSE)
 *   reaper.parallel               deletions in flight (8)
 *   judge-repairer.min_age        a STUCK rule untouched this long is repaired
 *   judge-repairer.suspend_after  stuck this long: SUSPENDED (14 days)
 *   hermes.stomp_host, hermes.stomp_port (61613), hermes.stomp_vhost (/),
 *   hermes.stomp_user, hermes.stomp_password, hermes.stomp_destination
 *                                 (/queue/rucio.events): the STOMP sink
 *   hermes.webhooks               URLs (space-separated) the messages are POSTed to
 *   hermes.timeout                seconds per delivery (10)
 *   hermes.max_delay              back-off cap after failed deliveries (60)
 *
 * Invariant: every setter validates before it writes, and dmn_config_parse
 * works on a copy, so a refused file leaves the configuration in force.
 */
#include "runtime.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* conveyor.stream_below: below this size streaming a file through the
 * conveyor (get to conveyor.tmp_dir, put, verify at the destination) beat
 * an XRootD third-party copy (TPC, verify).  Measured by bench_engine (d),
 * one file at a time, worker time per file, on the test fixture (tests/env/:
 * two XRootD 5.5 servers on loopback, 2 cores, tmp_dir on disk):
 *     size      256K   4M     16M    64M    256M   512M   1G
 *     streamed  0.024  0.034  0.085  0.401  1.660  3.928  8.453 s
 *     TPC       2.514  2.530  2.558  2.670  2.946  3.263  6.315 s
 * TPC costs a flat ~2.5 s (whatever the size) plus ~1.5-3.5 ms/MiB, streaming
 * ~7 ms/MiB: they cross between 256 and 512 MiB; the default is the
 * largest measured size at which streaming still won. */
#define STREAM_BELOW (256ull << 20)

static const char *const kind_names[DMN_COUNT] = {
	[DMN_JUDGE_EVALUATOR] = "judge-evaluator",
	[DMN_JUDGE_INJECTOR] = "judge-injector",
	[DMN_JUDGE_REPAIRER] = "judge-repairer",
	[DMN_JUDGE_CLEANER] = "judge-cleaner",
	[DMN_CONVEYOR] = "conveyor",
	[DMN_REAPER] = "reaper",
	[DMN_UNDERTAKER] = "undertaker",
	[DMN_ABACUS] = "abacus",
	[DMN_TRANSMOGRIFIER] = "transmogrifier",
	[DMN_HERMES] = "hermes",
	[DMN_NECROMANCER] = "necromancer",
};

const char *dmn_kind_name(enum dmn_kind k)
{
	return (unsigned)k < DMN_COUNT ? kind_names[k] : NULL;
}

int dmn_kind_parse(const char *s, enum dmn_kind *k)
{
	for (int i = 0; i < DMN_COUNT; i++) {
		if (!strcmp(s, kind_names[i])) {
			*k = (enum dmn_kind)i;
			return 0;
		}
	}
	return -1;
}

int dmn_log_level_parse(const char *s, enum dm_log_level *l)
{
	if (!strcasecmp(s, "error"))
		*l = DM_LOG_ERROR;
	else if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
		*l = DM_LOG_WARN;
	else if (!strcasecmp(s, "info"))
		*l = DM_LOG_INFO;
	else if (!strcasecmp(s, "debug"))
		*l = DM_LOG_DEBUG;
	else
		return -1;
	return 0;
}

void dmn_config_defaults(struct dmn_config *cfg)
{
	struct dm_cred_env ce;
	const char *tmp = getenv("TMPDIR");

	memset(cfg, 0, sizeof *cfg);
	/* Rucio sleeps 60 s and more; one machine wants a livelier default. */
	for (int i = 0; i < DMN_COUNT; i++) {
		cfg->sleep[i] = 10;
		cfg->chunk[i] = 100;
	}
	cfg->sleep[DMN_CONVEYOR] = 2;
	cfg->sleep[DMN_JUDGE_EVALUATOR] = 2;
	cfg->sleep[DMN_JUDGE_REPAIRER] = 30;
	cfg->sleep[DMN_REAPER] = 10;
	cfg->sleep[DMN_UNDERTAKER] = 60;
	cfg->sleep[DMN_TRANSMOGRIFIER] = 5;
	cfg->chunk[DMN_JUDGE_EVALUATOR] = 1000;
	cfg->log_level = DM_LOG_INFO;
	cfg->heartbeat_interval = 5;
	cfg->heartbeat_timeout = 30;
	cfg->max_retries = 3;
	cfg->parallel = 8;
	cfg->tpc_parallel = 32;
	cfg->tpc_per_rse = 8;
	cfg->stream_below = STREAM_BELOW;
	cfg->tpc = 1;
	cfg->tpc_fallback = 1;
	cfg->max_sources = 4;
	cfg->max_checksums = 4;
	cfg->retry_delay = 10;
	cfg->request_max_age = 4 * 3600;
	dm_strlcpy(cfg->tmp_dir, tmp && *tmp ? tmp : "/tmp", sizeof cfg->tmp_dir);
	cfg->timeout = 60;
	cfg->connect_timeout = 10;
	cfg->stall_timeout = 30;
	cfg->tpc_timeout = 1800;
	cfg->chunk_bytes = 1u << 20; /* 1 MiB x 2 in flight: a few MiB per stream */
	cfg->chunks_in_flight = 2;
	dm_cred_env(&ce);
	if (ce.ca_dir)
		dm_strlcpy(cfg->ca_path, ce.ca_dir, sizeof cfg->ca_path);
	cfg->reaper_parallel = 8;
	cfg->repair_min_age = 60;
	cfg->suspend_after = 14 * 24 * 3600;
	cfg->stomp_port = 61613;
	dm_strlcpy(cfg->stomp_vhost, "/", sizeof cfg->stomp_vhost);
	dm_strlcpy(cfg->stomp_destination, "/queue/rucio.events", sizeof cfg->stomp_destination);
	cfg->hermes_timeout = 10;
	cfg->hermes_max_delay = 60;
	cfg->sleep[DMN_HERMES] = 2;
	cfg->chunk[DMN_HERMES] = 500;
}

static enum dm_status bad(struct dm_err *err, const char *key, const char *value,
			  const char *want)
{
	return dm_seterr(err, DM_EINVAL, "InputValidationError", "%s takes %s, not '%s'", key,
			 want, value);
}

static int parse_bool(const char *s, int *out)
{
	if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on") ||
	    !strcmp(s, "1"))
		*out = 1;
	else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off") ||
		 !strcmp(s, "0"))
		*out = 0;
	else
		return -1;
	return 0;
}

/* An integer in [lo, hi]. */
static enum dm_status int_in(const char *key, const char *value, int64_t lo, int64_t hi,
			     int64_t *out, struct dm_err *err)
{
	int64_t v;
	char want[96];

	if (dm_parse_i64(value, &v) || v < lo || v > hi) {
		snprintf(want, sizeof want, "an integer from %lld to %lld", (long long)lo,
			 (long long)hi);
		return bad(err, key, value, want);
	}
	*out = v;
	return DM_OK;
}

static enum dm_status set_path(char *dst, const char *key, const char *value,
			       struct dm_err *err)
{
	if (strlen(value) >= DMN_PATH_MAX)
		return bad(err, key, value, "a path shorter than 1024 bytes");
	dm_strlcpy(dst, value, DMN_PATH_MAX);
	return DM_OK;
}

struct int_key {
	const char *key;
	size_t off;
	int is64;
	int64_t lo, hi;
};

#define IK(k, field, lo, hi) { k, offsetof(struct dmn_config, field), 0, lo, hi }
#define IK64(k, field, lo, hi) { k, offsetof(struct dmn_config, field), 1, lo, hi }

static const struct int_key int_keys[] = {
	IK("heartbeat.interval", heartbeat_interval, 1, 3600),
	IK("heartbeat.timeout", heartbeat_timeout, 2, 86400),
	IK("conveyor.max_retries", max_retries, 1, 100),
	IK("conveyor.parallel", parallel, 1, 256),
	IK("conveyor.tpc_parallel", tpc_parallel, 1, 256),
	IK("conveyor.tpc_per_rse", tpc_per_rse, 1, 256),
	IK("conveyor.max_sources", max_sources, 1, 64),
	IK("conveyor.max_checksums", max_checksums, 1, 256),
	IK("conveyor.retry_delay", retry_delay, 0, 3600),
	IK64("conveyor.request_max_age", request_max_age, 60, 30 * 86400),
	IK("transfer.timeout", timeout, 1, 86400),
	IK("transfer.connect_timeout", connect_timeout, 1, 3600),
	IK("transfer.stall_timeout", stall_timeout, 1, 86400),
	IK("transfer.tpc_timeout", tpc_timeout, 1, 7 * 86400),
	IK("transfer.chunks_in_flight", chunks_in_flight, 1, 64),
	IK("reaper.parallel", reaper_parallel, 1, 256),
	IK64("judge-repairer.min_age", repair_min_age, 0, 365 * 86400),
	IK64("judge-repairer.suspend_after", suspend_after, 0, 365 * 86400),
	IK("hermes.stomp_port", stomp_port, 1, 65535),
	IK("hermes.timeout", hermes_timeout, 1, 3600),
	IK("hermes.max_delay", hermes_max_delay, 1, 3600),
};

struct bool_key {
	const char *key;
	size_t off;
};

static const struct bool_key bool_keys[] = {
	{ "conveyor.tpc", offsetof(struct dmn_config, tpc) },
	{ "conveyor.tpc_fallback", offsetof(struct dmn_config, tpc_fallback) },
	{ "transfer.insecure", offsetof(struct dmn_config, insecure) },
	{ "reaper.greedy", offsetof(struct dmn_config, greedy) },
};

struct path_key {
	const char *key;
	size_t off;
};

static const struct path_key path_keys[] = {
	{ "conveyor.tmp_dir", offsetof(struct dmn_config, tmp_dir) },
	{ "transfer.ca_path", offsetof(struct dmn_config, ca_path) },
	{ "transfer.ca_file", offsetof(struct dmn_config, ca_file) },
	{ "transfer.client_cert", offsetof(struct dmn_config, client_cert) },
	{ "transfer.client_key", offsetof(struct dmn_config, client_key) },
	{ "hermes.stomp_host", offsetof(struct dmn_config, stomp_host) },
	{ "hermes.stomp_vhost", offsetof(struct dmn_config, stomp_vhost) },
	{ "hermes.stomp_user", offsetof(struct dmn_config, stomp_user) },
	{ "hermes.stomp_password", offsetof(struct dmn_config, stomp_password) },
	{ "hermes.stomp_destination", offsetof(struct dmn_config, stomp_destination) },
	{ "hermes.webhooks", offsetof(struct dmn_config, webhooks) },
};

enum dm_status dmn_config_set(struct dmn_config *cfg, const char *key, const char *value,
			      struct dm_err *err)
{
	const char *dot = strchr(key, '.');
	enum dmn_kind k;
	int64_t v;
	int b;
	enum dm_status rc;

	if (!strcmp(key, "sleep") || !strcmp(key, "chunk_size")) {
		int is_sleep = key[0] == 's';

		rc = int_in(key, value, is_sleep ? 0 : 1, is_sleep ? 86400 : 100000, &v, err);
		if (rc)
			return rc;
		for (int i = 0; i < DMN_COUNT; i++)
			(is_sleep ? cfg->sleep : cfg->chunk)[i] = (int)v;
		return DM_OK;
	}
	if (!strcmp(key, "log_level")) {
		enum dm_log_level l;

		if (dmn_log_level_parse(value, &l))
			return bad(err, key, value, "error, warning, info or debug");
		cfg->log_level = l;
		return DM_OK;
	}
	if (!strcmp(key, "conveyor.stream_below")) {
		uint64_t n;

		if (dm_parse_size(value, &n) || n > (1ull << 40))
			return bad(err, key, value, "a size from 0 to 1T");
		cfg->stream_below = n;
		return DM_OK;
	}
	if (!strcmp(key, "transfer.chunk_bytes")) {
		uint64_t n;

		if (dm_parse_size(value, &n) || n < 4096 || n > (256u << 20))
			return bad(err, key, value, "a size from 4K to 256M");
		cfg->chunk_bytes = n;
		return DM_OK;
	}
	for (size_t i = 0; i < DM_ARRAY_SIZE(int_keys); i++) {
		const struct int_key *ik = &int_keys[i];

		if (strcmp(key, ik->key))
			continue;
		rc = int_in(key, value, ik->lo, ik->hi, &v, err);
		if (rc)
			return rc;
		if (ik->is64)
			*(int64_t *)(void *)((char *)cfg + ik->off) = v;
		else
			*(int *)(void *)((char *)cfg + ik->off) = (int)v;
		return DM_OK;
	}
	for (size_t i = 0; i < DM_ARRAY_SIZE(bool_keys); i++) {
		if (strcmp(key, bool_keys[i].key))
			continue;
		if (parse_bool(value, &b))
			return bad(err, key, value, "true or false");
		*(int *)(void *)((char *)cfg + bool_keys[i].off) = b;
		return DM_OK;
	}
	for (size_t i = 0; i < DM_ARRAY_SIZE(path_keys); i++)
		if (!strcmp(key, path_keys[i].key))
			return set_path((char *)cfg + path_keys[i].off, key, value, err);
	if (dot && (size_t)(dot - key) < 32) {
		char daemon[32];

		memcpy(daemon, key, (size_t)(dot - key));
		daemon[dot - key] = 0;
		if (!dmn_kind_parse(daemon, &k)) {
			if (!strcmp(dot + 1, "sleep")) {
				rc = int_in(key, value, 0, 86400, &v, err);
				if (!rc)
					cfg->sleep[k] = (int)v;
				return rc;
			}
			if (!strcmp(dot + 1, "chunk_size")) {
				rc = int_in(key, value, 1, 100000, &v, err);
				if (!rc)
					cfg->chunk[k] = (int)v;
				return rc;
			}
		}
	}
	return dm_seterr(err, DM_EINVAL, "InputValidationError", "unknown setting '%s'", key);
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

enum dm_status dmn_config_parse(struct dmn_config *cfg, const char *text, const char *origin,
				struct dm_err *err)
{
	struct dmn_config work = *cfg;
	char section[64] = "";
	const char *p = text;
	int lineno = 0;
	enum dm_status rc = DM_OK;

	if (!origin)
		origin = "config";
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[2048], *s, *eq, *key, *val, full[160];
		struct dm_err e;

		lineno++;
		if (len >= sizeof line) {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s:%d: line longer than %zu bytes", origin, lineno,
				       sizeof line - 1);
			goto out;
		}
		memcpy(line, p, len);
		line[len] = 0;
		p = nl ? nl + 1 : p + len;
		s = trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');

			if (!end || end[1] || end - s - 1 >= (long)sizeof section) {
				rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
					       "%s:%d: bad section header '%s'", origin, lineno, s);
				goto out;
			}
			*end = 0;
			dm_strlcpy(section, trim(s + 1), sizeof section);
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s:%d: expected 'key = value', got '%s'", origin, lineno, s);
			goto out;
		}
		*eq = 0;
		key = trim(s);
		val = trim(eq + 1);
		/* a value may be quoted; an unquoted one may end in a comment */
		if (*val == '"' && strlen(val) >= 2 && val[strlen(val) - 1] == '"') {
			val[strlen(val) - 1] = 0;
			val++;
		} else {
			char *hash = strstr(val, " #");

			if (hash) {
				*hash = 0;
				val = trim(val);
			}
		}
		if (!*key) {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s:%d: empty key", origin, lineno);
			goto out;
		}
		if (section[0] && strcmp(section, "daemon"))
			snprintf(full, sizeof full, "%s.%s", section, key);
		else
			snprintf(full, sizeof full, "%s", key);
		if (dmn_config_set(&work, full, val, &e)) {
			rc = dm_seterr(err, e.code, e.cls, "%s:%d: %s", origin, lineno, e.msg);
			goto out;
		}
	}
	*cfg = work;
out:
	return rc;
}

enum dm_status dmn_config_load(struct dmn_config *cfg, const char *path, struct dm_err *err)
{
	FILE *f = fopen(path, "r");
	struct dm_buf b;
	char chunk[4096];
	size_t n;
	enum dm_status rc;

	if (!f)
		return dm_seterr(err, DM_ENOENT, "InputValidationError",
				 "cannot read configuration '%s': %s", path, strerror(errno));
	dm_buf_init(&b, 1u << 20);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (dm_buf_add(&b, chunk, n)) {
			fclose(f);
			dm_buf_release(&b);
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "configuration '%s' is larger than 1 MiB", path);
		}
	}
	if (ferror(f)) {
		int e = errno;

		fclose(f);
		dm_buf_release(&b);
		return dm_seterr(err, DM_EIO, "InputValidationError",
				 "reading configuration '%s' failed: %s", path, strerror(e));
	}
	fclose(f);
	rc = dmn_config_parse(cfg, b.s, path, err);
	dm_buf_release(&b);
	return rc;
}
