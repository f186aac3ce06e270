/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_blockcache.c - the block cache against native pread() in one run.
 *
 * A native file of random bytes is written under a scratch directory; the
 * cache's fetch callback reads that same file, so the "source" is local and
 * the figures isolate the cache layer's own cost.  After a first (cold) pass
 * fills the cache, both the cache's data file and the native file are in
 * the page cache, so the warm figures compare the cache's read path (index
 * lookup, pin, pread, unpin, prefetch bookkeeping) with a bare pread() of
 * the same bytes.  Each figure is printed with its ratio (cache / native);
 * rounds of the cache and of native reads alternate and the best of five
 * is kept for each side.
 *
 * usage: bench_blockcache [size_MiB (512)] [dir (/tmp)] [--sync]
 *   --sync   keep the fdatasync per stored block (the default for mounts);
 *            without it the cold pass measures the store path without fsyncs
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blockcache.h"
#include "dm.h"

#define MiB (1024ull * 1024ull)
#define RANDOM_OPS 200000u
#define THREADS 4
#define ROUNDS 5
#define COLD_ROUNDS 3

struct bench {
	struct fs_bc *bc;
	struct fs_bc_file *f;
	int fd;
	uint64_t size;
	uint64_t *offs;
	unsigned nops;
};

static enum dm_status fetch_native(void *ud, uint64_t off, void *buf, size_t len, size_t *got,
				   struct dm_err *err)
{
	struct bench *b = ud;
	ssize_t r = pread(b->fd, buf, len, (off_t)off);

	if (r < 0)
		return dm_seterr(err, DM_EIO, NULL, "pread: %s", strerror(errno));
	*got = (size_t)r;
	return DM_OK;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void cache_read(struct bench *b, void *buf, size_t len, uint64_t off)
{
	struct dm_err err;
	size_t got;

	if (fs_bc_read(b->bc, b->f, buf, len, off, &got, &err) != DM_OK || got != len) {
		fprintf(stderr, "fs_bc_read at %" PRIu64 ": %s\n", off, err.msg);
		exit(1);
	}
}

static void native_read(struct bench *b, void *buf, size_t len, uint64_t off)
{
	if (pread(b->fd, buf, len, (off_t)off) != (ssize_t)len)
		die("pread");
}

/* ---- random reads, optionally from several threads ---- */

struct rnd_arg {
	struct bench *b;
	int cached;
	unsigned from, to;
};

static void *rnd_thread(void *p)
{
	struct rnd_arg *a = p;
	char buf[4096];

	for (unsigned i = a->from; i < a->to; i++) {
		if (a->cached)
			cache_read(a->b, buf, sizeof buf, a->b->offs[i]);
		else
			native_read(a->b, buf, sizeof buf, a->b->offs[i]);
	}
	return NULL;
}

static double random_round(struct bench *b, int cached, int nthreads)
{
	struct rnd_arg a[THREADS];
	pthread_t t[THREADS];
	unsigned per = b->nops / (unsigned)nthreads;
	double t0 = now();

	for (int i = 0; i < nthreads; i++) {
		a[i] = (struct rnd_arg){ b, cached, per * (unsigned)i, per * (unsigned)(i + 1) };
		pthread_create(&t[i], NULL, rnd_thread, &a[i]);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	return (double)(per * (unsigned)nthreads) / (now() - t0);
}

/* Best of ROUNDS for each side, cache and native rounds interleaved. */
static void random_ops(struct bench *b, int nthreads, double *cache, double *native)
{
	*cache = *native = 0;
	for (int round = 0; round < ROUNDS; round++) {
		double c = random_round(b, 1, nthreads), n = random_round(b, 0, nthreads);

		if (c > *cache)
			*cache = c;
		if (n > *native)
			*native = n;
	}
}

/* ---- sequential reads ---- */

static double seq_round(struct bench *b, int cached, size_t chunk, char *buf)
{
	double t0 = now();

	for (uint64_t off = 0; off < b->size; off += chunk) {
		size_t n = b->size - off < chunk ? (size_t)(b->size - off) : chunk;

		if (cached)
			cache_read(b, buf, n, off);
		else
			native_read(b, buf, n, off);
	}
	return (double)b->size / 1e6 / (now() - t0);
}

static void seq_mbps(struct bench *b, size_t chunk, double *cache, double *native)
{
	char *buf = malloc(chunk);

	*cache = *native = 0;
	for (int round = 0; round < ROUNDS; round++) {
		double c = seq_round(b, 1, chunk, buf), n = seq_round(b, 0, chunk, buf);

		if (c > *cache)
			*cache = c;
		if (n > *native)
			*native = n;
	}
	free(buf);
}

/* Writing size bytes into a fresh sparse file, as the cache does. */
static double native_write_mbps(const char *dir, uint64_t size, const char *buf, int do_sync)
{
	char path[4200];
	double t0, rate;
	int fd;

	snprintf(path, sizeof path, "%s/write.dat", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
		die(path);
	sync();
	t0 = now();
	for (uint64_t off = 0; off < size; off += 4 * MiB) {
		size_t n = size - off < 4 * MiB ? (size_t)(size - off) : 4 * MiB;

		for (size_t done = 0; done < n; done += MiB) /* buf holds 1 MiB */
			if (pwrite(fd, buf, n - done < MiB ? n - done : MiB,
				   (off_t)(off + done)) < 0)
				die("pwrite");
		if (do_sync)
			fdatasync(fd);
	}
	rate = (double)size / 1e6 / (now() - t0);
	close(fd);
	unlink(path);
	sync();
	return rate;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

int main(int argc, char **argv)
{
	uint64_t size_mib = 512, seed = 0x2545F4914F6CDD1Dull;
	const char *parent = "/tmp";
	int do_sync = 0;
	char dir[4096], cdir[4200], path[4200];
	struct fs_bc_config cfg;
	struct fs_bc_stats st;
	struct dm_err err;
	struct bench b;
	char *buf;
	double c, n, t0;
	int argi = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sync") == 0) {
			do_sync = 1;
		} else if (argi == 0) {
			if (dm_parse_u64(argv[i], &size_mib) != 0 || size_mib == 0) {
				fprintf(stderr, "usage: %s [size_MiB] [dir] [--sync]\n", argv[0]);
				return 2;
			}
			argi++;
		} else {
			parent = argv[i];
		}
	}
	dm_log_set_level(DM_LOG_WARN);
	snprintf(dir, sizeof dir, "%s/bcbench.XXXXXX", parent);
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(path, sizeof path, "%s/native.dat", dir);
	snprintf(cdir, sizeof cdir, "%s/cache", dir);

	memset(&b, 0, sizeof b);
	b.size = size_mib * MiB;
	b.fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (b.fd < 0)
		die(path);
	buf = malloc(MiB);
	for (uint64_t off = 0; off < b.size; off += MiB) {
		for (size_t i = 0; i < MiB / 8; i++)
			((uint64_t *)buf)[i] = xorshift(&seed);
		if (pwrite(b.fd, buf, MiB, (off_t)off) != (ssize_t)MiB)
			die("pwrite");
	}
	b.nops = RANDOM_OPS;
	b.offs = malloc(b.nops * sizeof *b.offs);
	for (unsigned i = 0; i < b.nops; i++)
		b.offs[i] = xorshift(&seed) % (b.size - 4096);

	memset(&cfg, 0, sizeof cfg);
	cfg.dir = cdir;
	cfg.max_bytes = b.size + 64 * MiB;
	cfg.no_sync = !do_sync;
	if (fs_bc_open(&cfg, &b.bc, &err) != DM_OK ||
	    fs_bc_file_open(b.bc, "bench:native.dat:00000000", b.size, NULL, fetch_native, &b,
			    &b.f, &err) != DM_OK) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}

	printf("bench_blockcache: %" PRIu64 " MiB file, %u MiB blocks, %s, best of %d rounds\n",
	       size_mib, FS_BC_BLOCK_DEFAULT >> 20, do_sync ? "fdatasync per block" : "no fsync",
	       ROUNDS);
	/* cold: every block is fetched (from the native file) and stored; the
	 * physical limit here is writing the same bytes to a local file.  Local
	 * write speed varies a lot with writeback, so both alternate over
	 * COLD_ROUNDS rounds (the cache dropped in between) and the best counts. */
	fsync(b.fd);
	c = n = 0;
	for (int round = 0; round < COLD_ROUNDS; round++) {
		double w = native_write_mbps(dir, b.size, buf, do_sync), f;

		if (round && fs_bc_drop(b.bc, "bench:native.dat:00000000", &err) != DM_OK)
			return 1;
		sync();
		t0 = now();
		for (uint64_t off = 0; off < b.size; off += MiB)
			cache_read(&b, buf, MiB, off);
		while (1) { /* the prefetched tail belongs to the cold pass */
			fs_bc_get_stats(b.bc, &st);
			if (!st.prefetch_queued && !st.prefetch_running)
				break;
			usleep(200);
		}
		f = (double)b.size / 1e6 / (now() - t0);
		if (w > n)
			n = w;
		if (f > c)
			c = f;
	}
	printf("cold sequential 1 MiB reads (fetch+store): cache %8.0f MB/s   native write %6.0f"
	       " MB/s  ratio %.2f\n", c, n, c / n);
	sync(); /* no writeback running under the warm figures */
	/* warm: all from the cache */
	random_ops(&b, 1, &c, &n);
	printf("random 4 KiB reads, 1 thread:              cache %8.0f ops/s  native %8.0f ops/s"
	       "  ratio %.2f\n", c, n, c / n);
	random_ops(&b, THREADS, &c, &n);
	printf("random 4 KiB reads, %d threads:             cache %8.0f ops/s  native %8.0f ops/s"
	       "  ratio %.2f\n", THREADS, c, n, c / n);
	seq_mbps(&b, 128 * 1024, &c, &n);
	printf("sequential 128 KiB reads:                  cache %8.0f MB/s   native %8.0f MB/s"
	       "   ratio %.2f\n", c, n, c / n);
	seq_mbps(&b, MiB, &c, &n);
	printf("sequential 1 MiB reads:                    cache %8.0f MB/s   native %8.0f MB/s"
	       "   ratio %.2f\n", c, n, c / n);
	fs_bc_get_stats(b.bc, &st);
	printf("cache: %" PRIu64 " fetches (%" PRIu64 " prefetched), %" PRIu64 " hits, %" PRIu64
	       " misses, %" PRIu64 " evictions\n", st.fetches, st.prefetches, st.hits, st.misses,
	       st.evictions);

	fs_bc_file_close(b.bc, b.f);
	fs_bc_close(b.bc);
	close(b.fd);
	free(buf);
	free(b.offs);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
