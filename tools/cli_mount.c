/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_mount.c - `didfs mount`: show the catalog as a directory tree (the
 * FUSE mount of fs/, see fs/fs.h).
 *
 *   didfs [--catalog C] [--account A] mount MOUNTPOINT [--cache-dir D]
 *         [--cache-size 10G] [--block-size 4M] [--timeout S] [--threads N]
 *         [--io-threads N] [--foreground|-f] [--site SITE] [--allow-other]
 *         [--ca-path D] [--debug] [--log FILE] [--read-ahead KB] [--dir-ttl S]
 *         [--metrics ADDR:PORT]
 *         [--uid-map FILE] [--server URL]
 *
 * Without --foreground the command returns once the mount is ready (exit
 * 0) or failed (exit 1 with the reason); the mount process stays in the
 * background until `fusermount3 -u MOUNTPOINT` or SIGTERM.  Rules and
 * metadata written through extended attributes act as the calling user's
 * account (fs/users.c): the mount's owner as --account, others as their
 * --uid-map entry ("<uid-or-user> <account>" lines, fs/uidmap.h) or, on a
 * remote catalog, with their own credentials; anyone else only reads.
 * --server URL is --catalog URL (a REST catalog: Rucio's API).
 */
#include "cli.h"
#include "fs.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum {
	O_CACHE_DIR = 400, O_CACHE_SIZE, O_BLOCK_SIZE, O_TIMEOUT, O_THREADS, O_IO_THREADS,
	O_SITE, O_ALLOW_OTHER, O_CA_PATH, O_DEBUG, O_LOG, O_READ_AHEAD, O_DIR_TTL,
	O_METRICS,
	O_UID_MAP, O_SERVER,
};

static int int_opt(struct cli *c, const char *opt, const char *s, int lo, int hi, int *out)
{
	int64_t v;

	if (dm_parse_i64(s, &v) || v < lo || v > hi)
		return cli_failf(c, "InputValidationError", "%s takes %d..%d, not '%s'", opt, lo, hi, s);
	*out = (int)v;
	return 0;
}

int cli_mount(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cache-dir", required_argument, NULL, O_CACHE_DIR },
		{ "cache-size", required_argument, NULL, O_CACHE_SIZE },
		{ "block-size", required_argument, NULL, O_BLOCK_SIZE },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "io-threads", required_argument, NULL, O_IO_THREADS },
		{ "foreground", no_argument, NULL, 'f' },
		{ "site", required_argument, NULL, O_SITE },
		{ "allow-other", no_argument, NULL, O_ALLOW_OTHER },
		{ "ca-path", required_argument, NULL, O_CA_PATH },
		{ "debug", no_argument, NULL, O_DEBUG },
		{ "log", required_argument, NULL, O_LOG },
		{ "read-ahead", required_argument, NULL, O_READ_AHEAD },
		{ "dir-ttl", required_argument, NULL, O_DIR_TTL },
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "uid-map", required_argument, NULL, O_UID_MAP },
		{ "server", required_argument, NULL, O_SERVER },
		{ NULL, 0, NULL, 0 },
	};
	struct fs_opts o = { 0 };
	struct dm_err err = { 0 };
	uint64_t v;
	int opt, is_child = 0, iv = 0;

	o.catalog = c->catalog_path;
	o.account = c->account;
	while ((opt = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
		switch (opt) {
		case O_CACHE_DIR: o.cache_dir = optarg; break;
		case O_CACHE_SIZE:
			if (cli_parse_u64(c, "--cache-size", optarg, &v))
				return 1;
			if (v < (16u << 20))
				return cli_failf(c, "InputValidationError",
						 "--cache-size must be at least 16M, not '%s'", optarg);
			o.cache_size = v;
			break;
		case O_BLOCK_SIZE:
			if (cli_parse_u64(c, "--block-size", optarg, &v))
				return 1;
			if (v < (1u << 20) || v > (16u << 20) || v % 4096)
				return cli_failf(c, "InputValidationError",
						 "--block-size must be 1M..16M and a multiple of 4K, not '%s'",
						 optarg);
			o.block_size = (uint32_t)v;
			break;
		case O_TIMEOUT:
			if (int_opt(c, "--timeout", optarg, 1, 86400, &o.timeout_s))
				return 1;
			break;
		case O_THREADS:
			if (int_opt(c, "--threads", optarg, 1, 256, &o.threads))
				return 1;
			break;
		case O_IO_THREADS:
			if (int_opt(c, "--io-threads", optarg, 1, 1024, &o.io_threads))
				return 1;
			break;
		case 'f': o.foreground = 1; break;
		case O_SITE: o.site = optarg; break;
		case O_ALLOW_OTHER: o.allow_other = 1; break;
		case O_CA_PATH: o.ca_path = optarg; break;
		case O_DEBUG: o.debug = 1; break;
		case O_LOG: o.log_file = optarg; break;
		case O_METRICS: o.metrics = optarg; break;
		case O_READ_AHEAD:
			if (int_opt(c, "--read-ahead", optarg, 128, 1 << 20, &iv))
				return 1;
			o.read_ahead_kb = (unsigned)iv;
			break;
		case O_DIR_TTL:
			if (int_opt(c, "--dir-ttl", optarg, 1, 86400, &iv))
				return 1;
			o.dir_ttl = iv;
			break;
		case O_UID_MAP: o.uid_map = optarg; break;
		case O_SERVER:
			if (strncmp(optarg, "https://", 8) && strncmp(optarg, "http://", 7))
				return cli_failf(c, "InputValidationError",
						 "--server takes the URL of a Rucio REST server"
						 " (https://host[:port]), not '%s'", optarg);
			o.catalog = optarg;
			break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc - 1)
		return cli_usage(c);
	o.mountpoint = argv[optind];
	if (fs_mount(&o, &is_child, &err))
		return is_child ? 1 : cli_fail(c, &err);
	return 0;
}
