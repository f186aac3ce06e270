/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xfer_tool.c - didfs-xfer, a small driver for the transfer layer used by
 * the integration tests and the benchmarks until `didfs download` exists.
 * One subcommand per xfer_* call, plus getmany, which reads "URL PATH"
 * lines and runs them all through xfer_run_jobs, and readblocks, which
 * reads one file in blocks from several threads as a mount does.
 *
 * Exit status: 0 on success, the dm_status value of the failure otherwise
 * (2 = DM_ENOENT, 4 = DM_EPERM, 8 = DM_ETIMEDOUT, 10 = DM_ENOTSUP, ...),
 * 64 for a usage error.  Errors go to stderr as
 * "didfs-xfer: <command>: <RucioClass>: <message>".
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xfer.h"

#define EXIT_USAGE 64

static void usage(FILE *f)
{
	fputs("usage: didfs-xfer [options] COMMAND ARGS\n"
	      "commands:\n"
	      "  stat URL                 print \"size=N is_dir=0|1\"\n"
	      "  get URL PATH             download; print \"bytes=N adler32=X md5=Y\"\n"
	      "  put PATH URL             upload (parents made, target overwritten)\n"
	      "  rm URL                   delete\n"
	      "  mv FROM TO               rename on one storage\n"
	      "  mkdir URL                make a directory and its parents\n"
	      "  cksum URL [adler32|md5]  server-side checksum\n"
	      "  pread URL OFFSET LENGTH  ranged read to stdout\n"
	      "  tpc SRC DST              third-party copy\n"
	      "  getmany [LIST|-]         download many: lines \"URL PATH\"\n"
	      "  readblocks URL BLOCK     read a whole file (<= 1G) in blocks of BLOCK bytes\n"
	      "                           with --parallel threads of xfer_pread, as a mount\n"
	      "                           does; print \"bytes=N adler32=X md5=Y reads=N\"\n"
	      "options:\n"
	      "  --timeout S          small operations (default 60)\n"
	      "  --connect-timeout S  connecting (default 10)\n"
	      "  --stall-timeout S    no progress in a stream (default 30)\n"
	      "  --tpc-timeout S      whole third-party copy (default 1800)\n"
	      "  --parallel N         operations in flight for getmany (default 8)\n"
	      "  --chunk BYTES        request size in streams (K/M suffix; default 8M)\n"
	      "  --inflight N         requests in flight per stream (default 4)\n"
	      "  --no-md5             compute adler32 only on download\n"
	      "  --ca-dir DIR         CA directory (default $X509_CERT_DIR)\n"
	      "  --ca-file FILE       CA bundle\n"
	      "  --cert FILE --key FILE  client certificate and key\n"
	      "  --token TOKEN        bearer token for https\n"
	      "  --insecure           do not verify TLS peers (tests only)\n"
	      "  -q, --quiet          print nothing on success\n",
	      f);
}

static int fail(const char *cmd, enum dm_status st, const struct dm_err *e)
{
	fprintf(stderr, "didfs-xfer: %s: %s: %s\n", cmd, e->cls[0] ? e->cls : dm_status_class(st),
		e->msg[0] ? e->msg : dm_strerror(st));
	return (int)st;
}

static int int_opt(const char *name, const char *v, int *out)
{
	uint64_t n;

	if (dm_parse_u64(v, &n) != 0 || n > 1000000) {
		fprintf(stderr, "didfs-xfer: bad value '%s' for --%s\n", v, name);
		return -1;
	}
	*out = (int)n;
	return 0;
}

struct pair {
	char *url, *path;
};

static int read_list(FILE *f, struct pair **out, size_t *n)
{
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t len;
	struct pair *v = NULL;
	size_t lineno = 0;

	*n = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *url, *path, *end;

		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		url = line + strspn(line, " \t");
		if (!*url || *url == '#')
			continue;
		end = url + strcspn(url, " \t");
		if (!*end) {
			fprintf(stderr, "didfs-xfer: getmany: line %zu: expected \"URL PATH\"\n",
				lineno);
			free(line);
			for (size_t i = 0; i < *n; i++) {
				free(v[i].url);
				free(v[i].path);
			}
			free(v);
			return -1;
		}
		*end = 0;
		path = end + 1 + strspn(end + 1, " \t");
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			v = dm_xrealloc(v, alloc * sizeof(*v));
		}
		v[*n].url = dm_xstrdup(url);
		v[*n].path = dm_xstrdup(path);
		(*n)++;
	}
	free(line);
	*out = v;
	return 0;
}

static int cmd_getmany(struct xfer_ctx *ctx, const char *list, int parallel, int quiet)
{
	FILE *f = stdin;
	struct pair *pairs = NULL;
	struct xfer_job *jobs;
	size_t n = 0, nok = 0;
	uint64_t bytes = 0;
	int rc = 0;
	double t0;

	if (list && strcmp(list, "-") != 0) {
		f = fopen(list, "r");
		if (!f) {
			fprintf(stderr, "didfs-xfer: getmany: cannot open %s: %s\n", list,
				strerror(errno));
			return EXIT_USAGE;
		}
	}
	if (read_list(f, &pairs, &n) != 0) {
		if (f != stdin)
			fclose(f);
		return EXIT_USAGE;
	}
	if (f != stdin)
		fclose(f);
	jobs = dm_xcalloc(n ? n : 1, sizeof(*jobs));
	for (size_t i = 0; i < n; i++) {
		jobs[i].kind = XFER_JOB_GET;
		jobs[i].src = pairs[i].url;
		jobs[i].dst = pairs[i].path;
	}
	t0 = dm_now_f();
	xfer_run_jobs(ctx, jobs, n, parallel);
	t0 = dm_now_f() - t0;
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].status == DM_OK) {
			nok++;
			bytes += jobs[i].res.bytes;
			if (!quiet)
				printf("OK %s bytes=%llu adler32=%s\n", jobs[i].src,
				       (unsigned long long)jobs[i].res.bytes, jobs[i].res.adler32);
		} else {
			printf("FAIL %s %s: %s\n", jobs[i].src, jobs[i].err.cls, jobs[i].err.msg);
			if (!rc)
				rc = (int)jobs[i].status;
		}
	}
	fprintf(stderr, "getmany: %zu ok, %zu failed, %llu bytes in %.3f s (%.1f MB/s)\n", nok,
		n - nok, (unsigned long long)bytes, t0, t0 > 0 ? (double)bytes / 1e6 / t0 : 0.0);
	for (size_t i = 0; i < n; i++) {
		free(pairs[i].url);
		free(pairs[i].path);
	}
	free(pairs);
	free(jobs);
	return rc;
}

struct blocks {
	struct xfer_ctx *ctx;
	const char *url;
	unsigned char *buf;
	uint64_t size, block, nblocks;
	size_t next; /* guarded by lock */
	pthread_mutex_t lock;
	enum dm_status st;
	struct dm_err err;
	uint64_t reads;
};

static void *block_worker(void *arg)
{
	struct blocks *b = arg;

	for (;;) {
		uint64_t i, off, want;
		size_t got = 0;
		struct dm_err e;
		enum dm_status st;

		pthread_mutex_lock(&b->lock);
		i = b->next++;
		if (b->st != DM_OK)
			i = b->nblocks;
		pthread_mutex_unlock(&b->lock);
		if (i >= b->nblocks)
			return NULL;
		off = i * b->block;
		want = b->size - off < b->block ? b->size - off : b->block;
		st = xfer_pread(b->ctx, b->url, b->buf + off, (size_t)want, off, &got, &e);
		if (st == DM_OK && got != want)
			st = dm_seterr(&e, DM_EIO, NULL, "%s: short read at %llu: %zu of %llu bytes",
				       b->url, (unsigned long long)off, got,
				       (unsigned long long)want);
		pthread_mutex_lock(&b->lock);
		b->reads++;
		if (st != DM_OK && b->st == DM_OK) {
			b->st = st;
			b->err = e;
		}
		pthread_mutex_unlock(&b->lock);
	}
}

static int cmd_readblocks(struct xfer_ctx *ctx, const char *url, const char *sblock,
			  int parallel)
{
	struct blocks b = { .ctx = ctx, .url = url };
	struct xfer_stat xs;
	struct dm_err e;
	enum dm_status st;
	pthread_t tids[64];
	int n = parallel < 1 ? 1 : parallel > 64 ? 64 : parallel, started = 0;
	char md5[33], adler[9];

	if (dm_parse_size(sblock, &b.block) != 0 || b.block == 0 || b.block > (256u << 20)) {
		fprintf(stderr, "didfs-xfer: readblocks: bad block size '%s'\n", sblock);
		return EXIT_USAGE;
	}
	st = xfer_stat(ctx, url, &xs, &e);
	if (st != DM_OK)
		return fail("readblocks", st, &e);
	if (xs.is_dir || xs.size > (1ull << 30)) {
		fprintf(stderr, "didfs-xfer: readblocks: %s is a directory or larger than 1G\n", url);
		return EXIT_USAGE;
	}
	b.size = xs.size;
	b.nblocks = (b.size + b.block - 1) / b.block;
	b.buf = dm_xmalloc(b.size ? (size_t)b.size : 1);
	pthread_mutex_init(&b.lock, NULL);
	for (int i = 0; i < n; i++) {
		if (pthread_create(&tids[i], NULL, block_worker, &b) != 0)
			break;
		started++;
	}
	if (started == 0)
		block_worker(&b);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	pthread_mutex_destroy(&b.lock);
	if (b.st != DM_OK) {
		free(b.buf);
		return fail("readblocks", b.st, &b.err);
	}
	dm_adler32_hex(dm_adler32_update(DM_ADLER32_INIT, b.buf, (size_t)b.size), adler);
	dm_md5_hex(b.buf, (size_t)b.size, md5);
	printf("bytes=%llu adler32=%s md5=%s reads=%llu\n", (unsigned long long)b.size, adler, md5,
	       (unsigned long long)b.reads);
	free(b.buf);
	return 0;
}

static int cmd_pread(struct xfer_ctx *ctx, const char *url, const char *soff, const char *slen)
{
	uint64_t off, len;
	size_t got = 0;
	char *buf;
	struct dm_err e;
	enum dm_status st;

	if (dm_parse_u64(soff, &off) != 0 || dm_parse_size(slen, &len) != 0 ||
	    len > (1ull << 30)) {
		fprintf(stderr, "didfs-xfer: pread: bad offset '%s' or length '%s' (max 1G)\n",
			soff, slen);
		return EXIT_USAGE;
	}
	buf = dm_xmalloc(len ? (size_t)len : 1);
	st = xfer_pread(ctx, url, buf, (size_t)len, off, &got, &e);
	if (st != DM_OK) {
		free(buf);
		return fail("pread", st, &e);
	}
	if (got && fwrite(buf, 1, got, stdout) != got) {
		free(buf);
		fprintf(stderr, "didfs-xfer: pread: writing stdout failed\n");
		return (int)DM_EIO;
	}
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "connect-timeout", required_argument, NULL, 'c' },
		{ "stall-timeout", required_argument, NULL, 's' },
		{ "tpc-timeout", required_argument, NULL, 'T' },
		{ "parallel", required_argument, NULL, 'p' },
		{ "chunk", required_argument, NULL, 'k' },
		{ "inflight", required_argument, NULL, 'i' },
		{ "no-md5", no_argument, NULL, 'M' },
		{ "ca-dir", required_argument, NULL, 'C' },
		{ "ca-file", required_argument, NULL, 'F' },
		{ "cert", required_argument, NULL, 'e' },
		{ "key", required_argument, NULL, 'y' },
		{ "token", required_argument, NULL, 'o' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct xfer_config cfg = { 0 };
	struct dm_cred_env ce;
	struct xfer_ctx *ctx = NULL;
	struct dm_err e;
	enum dm_status st;
	const char *cmd;
	int c, quiet = 0, rc = 0, nargs;
	char **args;

	dm_cred_env(&ce);
	cfg.ca_path = ce.ca_dir;
	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		uint64_t v;

		switch (c) {
		case 't':
			if (int_opt("timeout", optarg, &cfg.timeout_s))
				return EXIT_USAGE;
			break;
		case 'c':
			if (int_opt("connect-timeout", optarg, &cfg.connect_timeout_s))
				return EXIT_USAGE;
			break;
		case 's':
			if (int_opt("stall-timeout", optarg, &cfg.stall_timeout_s))
				return EXIT_USAGE;
			break;
		case 'T':
			if (int_opt("tpc-timeout", optarg, &cfg.tpc_timeout_s))
				return EXIT_USAGE;
			break;
		case 'p':
			if (int_opt("parallel", optarg, &cfg.parallel))
				return EXIT_USAGE;
			break;
		case 'i':
			if (int_opt("inflight", optarg, &cfg.chunks_in_flight))
				return EXIT_USAGE;
			break;
		case 'k':
			if (dm_parse_size(optarg, &v) != 0 || v > (256u << 20)) {
				fprintf(stderr, "didfs-xfer: bad value '%s' for --chunk\n", optarg);
				return EXIT_USAGE;
			}
			cfg.chunk_bytes = (size_t)v;
			break;
		case 'M':
			cfg.no_md5 = 1;
			break;
		case 'C':
			cfg.ca_path = optarg;
			break;
		case 'F':
			cfg.ca_file = optarg;
			break;
		case 'e':
			cfg.client_cert = optarg;
			break;
		case 'y':
			cfg.client_key = optarg;
			break;
		case 'o':
			cfg.bearer_token = optarg;
			break;
		case 'I':
			cfg.insecure = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	args = argv + optind + 1;
	nargs = argc - optind - 1;
#define NEED(lo, hi)                                                                   \
	do {                                                                           \
		if (nargs < (lo) || nargs > (hi)) {                                    \
			fprintf(stderr, "didfs-xfer: %s: wrong number of arguments\n", \
				cmd);                                                  \
			usage(stderr);                                                 \
			rc = EXIT_USAGE;                                               \
			goto out;                                                      \
		}                                                                      \
	} while (0)

	st = xfer_ctx_new(&cfg, &ctx, &e);
	if (st != DM_OK)
		return fail("init", st, &e);
	if (strcmp(cmd, "stat") == 0) {
		struct xfer_stat xs;

		NEED(1, 1);
		st = xfer_stat(ctx, args[0], &xs, &e);
		if (st != DM_OK)
			rc = fail(cmd, st, &e);
		else
			printf("size=%llu is_dir=%d\n", (unsigned long long)xs.size, xs.is_dir);
	} else if (strcmp(cmd, "get") == 0) {
		struct xfer_result res;

		NEED(2, 2);
		st = xfer_get(ctx, args[0], args[1], &res, &e);
		if (st != DM_OK)
			rc = fail(cmd, st, &e);
		else if (!quiet)
			printf("bytes=%llu adler32=%s md5=%s\n", (unsigned long long)res.bytes,
			       res.adler32, res.md5[0] ? res.md5 : "-");
	} else if (strcmp(cmd, "put") == 0) {
		NEED(2, 2);
		st = xfer_put(ctx, args[0], args[1], &e);
		if (st != DM_OK)
			rc = fail(cmd, st, &e);
	} else if (strcmp(cmd, "rm") == 0) {
		NEED(1, 1);
		st = xfer_delete(ctx, args[0], &e);
		if (st != DM_OK)
			rc = fail(cmd, st, &e);
	} else if (strcmp(cmd, "mv") == 0) {
		NEED(2, 2);
		st = xfer_rename(ctx, args[0], args[1], &e);
		if (st != DM_OK)
			rc = fail(cmd, st, &e);
	} else if (strcmp(cmd, "mkdir") == 0) {
		NEED(1, 1);
		st = xfer_mkdir_p(ctx, args[0], &e);
		if (st != DM_OK)
			rc = fail(cmd, st, &e);
	} else if (strcmp(cmd, "cksum") == 0) {
		char out[65];

		NEED(1, 2);
		st = xfer_checksum(ctx, args[0], nargs > 1 ? args[1] : "adler32", out, sizeof(out),
				   &e);
		if (st != DM_OK)
			rc = fail(cmd, st, &e);
		else
			printf("%s\n", out);
	} else if (strcmp(cmd, "pread") == 0) {
		NEED(3, 3);
		rc = cmd_pread(ctx, args[0], args[1], args[2]);
	} else if (strcmp(cmd, "tpc") == 0) {
		NEED(2, 2);
		st = xfer_tpc(ctx, args[0], args[1], &e);
		if (st != DM_OK)
			rc = fail(cmd, st, &e);
	} else if (strcmp(cmd, "readblocks") == 0) {
		NEED(2, 2);
		rc = cmd_readblocks(ctx, args[0], args[1], cfg.parallel ? cfg.parallel : 8);
	} else if (strcmp(cmd, "getmany") == 0) {
		NEED(0, 1);
		rc = cmd_getmany(ctx, nargs ? args[0] : NULL, cfg.parallel, quiet);
	} else {
		fprintf(stderr, "didfs-xfer: unknown command '%s'\n", cmd);
		usage(stderr);
		rc = EXIT_USAGE;
	}
out:
	xfer_ctx_free(ctx);
	if (fflush(stdout) != 0 && rc == 0)
		rc = (int)DM_EIO;
	return rc;
}
