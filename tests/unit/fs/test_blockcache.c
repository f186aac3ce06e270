/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_blockcache.c - unit tests of fs/blockcache.c against a synthetic
 * source: a fetch callback that generates deterministic bytes from offsets,
 * counts its calls, can fail on demand, and can hold fetches at a "gate"
 * (a range of offsets) until the test opens it, which is how the tests make
 * concurrency deterministic (single flight, waiters, pinned blocks).  Each
 * test uses its own cache directory under /tmp and removes it.  No timed
 * assertions: waits poll for a state with a generous deadline and fail the
 * check if it is never reached.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "blockcache.h"
#include "dm.h"
#include "tap.h"

#define MiB (1024u * 1024u)
#define KiB 1024u

/* ---- synthetic source ---- */

struct src {
	uint64_t size;
	uint32_t seed;
	atomic_uint calls;
	atomic_ullong bytes;
	atomic_int fail;        /* every fetch fails with DM_EIO */
	atomic_uint fail_every; /* every Nth call fails (0: never) */
	atomic_int corrupt;     /* flip the first byte of block 0 of 1 MiB blocks */
	atomic_int closed;      /* the handle is closed: a call now is a bug */
	atomic_int late_calls;  /* calls seen while closed */
	unsigned delay_us;
	size_t max_chunk;       /* return at most this many bytes per call (0: all) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int gate_closed;
	uint64_t gate_lo, gate_hi;
	int gate_waiting;
};

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static void gen(uint32_t seed, uint64_t off, void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t i = 0;

	while (i < len) {
		uint64_t o = off + i;
		uint64_t w = mix((o >> 3) ^ ((uint64_t)seed << 44));

		for (unsigned sh = (unsigned)(o & 7); sh < 8 && i < len; sh++, i++)
			p[i] = (unsigned char)(w >> (sh * 8));
	}
}

static int same_as_source(uint32_t seed, uint64_t off, const void *buf, size_t len)
{
	unsigned char *want = malloc(len ? len : 1);
	int ok;

	gen(seed, off, want, len);
	ok = memcmp(want, buf, len) == 0;
	free(want);
	return ok;
}

static void src_init(struct src *s, uint64_t size, uint32_t seed)
{
	memset(s, 0, sizeof *s);
	s->size = size;
	s->seed = seed;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
}

static void src_release(struct src *s)
{
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
}

static void gate_close(struct src *s, uint64_t lo, uint64_t hi)
{
	pthread_mutex_lock(&s->mu);
	s->gate_closed = 1;
	s->gate_lo = lo;
	s->gate_hi = hi;
	pthread_mutex_unlock(&s->mu);
}

static void gate_open(struct src *s)
{
	pthread_mutex_lock(&s->mu);
	s->gate_closed = 0;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static int gate_waiting(struct src *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->gate_waiting;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static enum dm_status src_fetch(void *ud, uint64_t off, void *buf, size_t len, size_t *got,
				struct dm_err *err)
{
	struct src *s = ud;
	unsigned call = atomic_fetch_add(&s->calls, 1) + 1;
	unsigned every = atomic_load(&s->fail_every);
	size_t n;

	if (atomic_load(&s->closed))
		atomic_fetch_add(&s->late_calls, 1);
	pthread_mutex_lock(&s->mu);
	if (s->gate_closed && off >= s->gate_lo && off < s->gate_hi) {
		s->gate_waiting++;
		while (s->gate_closed)
			pthread_cond_wait(&s->cv, &s->mu);
		s->gate_waiting--;
	}
	pthread_mutex_unlock(&s->mu);
	if (s->delay_us)
		usleep(s->delay_us);
	if (atomic_load(&s->fail) || (every && call % every == 0))
		return dm_seterr(err, DM_EIO, "SourceNotFound", "injected failure at %" PRIu64,
				 off);
	if (off >= s->size) {
		*got = 0;
		return DM_OK;
	}
	n = len;
	if (n > s->size - off)
		n = (size_t)(s->size - off);
	if (s->max_chunk && n > s->max_chunk)
		n = s->max_chunk;
	gen(s->seed, off, buf, n);
	if (atomic_load(&s->corrupt) && off == 0 && n > 0)
		((unsigned char *)buf)[0] ^= 0xff;
	atomic_fetch_add(&s->bytes, n);
	*got = n;
	return DM_OK;
}

/* ---- helpers ---- */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmpdir(void)
{
	char *d = strdup("/tmp/bctest.XXXXXX");

	if (!mkdtemp(d)) {
		perror("mkdtemp");
		exit(2);
	}
	return d;
}

static void cfg_init(struct fs_bc_config *c, const char *dir, uint64_t max, uint32_t bs)
{
	memset(c, 0, sizeof *c);
	c->dir = dir;
	c->max_bytes = max;
	c->block_size = bs;
	c->no_sync = 1;
	c->no_prefetch = 1;
}

static struct fs_bc *open_cache(const struct fs_bc_config *c)
{
	struct fs_bc *bc = NULL;
	struct dm_err err;

	if (fs_bc_open(c, &bc, &err) != DM_OK) {
		fprintf(stderr, "fs_bc_open(%s): %s\n", c->dir, err.msg);
		exit(2);
	}
	return bc;
}

static struct fs_bc_file *open_file(struct fs_bc *bc, const char *key, struct src *s,
				    const char *adler)
{
	struct fs_bc_file *f = NULL;
	struct dm_err err;

	if (fs_bc_file_open(bc, key, s->size, adler, src_fetch, s, &f, &err) != DM_OK) {
		fprintf(stderr, "fs_bc_file_open(%s): %s\n", key, err.msg);
		exit(2);
	}
	return f;
}

/* Read and compare with the source; returns the status. */
static enum dm_status read_check(struct fs_bc *bc, struct fs_bc_file *f, struct src *s,
				 uint64_t off, size_t len, size_t *got_out, int *same)
{
	unsigned char *buf = malloc(len ? len : 1);
	struct dm_err err;
	size_t got = 0;
	enum dm_status rc = fs_bc_read(bc, f, buf, len, off, &got, &err);

	*same = rc == DM_OK && same_as_source(s->seed, off, buf, got);
	if (got_out)
		*got_out = got;
	free(buf);
	return rc;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Poll for up to 20 s; 1 if the condition became true. */
#define WAIT_FOR(cond) ({ int ok_ = 0; \
	for (int i_ = 0; i_ < 20000; i_++) { if (cond) { ok_ = 1; break; } sleep_ms(1); } \
	ok_; })

static uint64_t stat_field(struct fs_bc *bc, size_t off)
{
	struct fs_bc_stats st;

	fs_bc_get_stats(bc, &st);
	return *(uint64_t *)((char *)&st + off);
}
#define STAT(bc, field) stat_field(bc, offsetof(struct fs_bc_stats, field))

static void quiesce(struct fs_bc *bc)
{
	CHECK(WAIT_FOR(STAT(bc, prefetch_queued) == 0 && STAT(bc, prefetch_running) == 0));
}

static void adler_hex_of(uint32_t seed, uint64_t size, char out[9])
{
	unsigned char *buf = malloc(MiB);
	uint32_t a = DM_ADLER32_INIT;

	for (uint64_t off = 0; off < size; off += MiB) {
		size_t n = size - off < MiB ? (size_t)(size - off) : MiB;

		gen(seed, off, buf, n);
		a = dm_adler32_update(a, buf, n);
	}
	dm_adler32_hex(a, out);
	free(buf);
}

/* Files named <32 hex>.<suffix> under dir/<2 hex>/, first one found. */
static int find_cache_file(const char *dir, const char *suffix, char *out, size_t n)
{
	char cmd[512];
	FILE *p;
	int ok = 0;

	snprintf(cmd, sizeof cmd, "find %s -name '*%s' | head -1", dir, suffix);
	p = popen(cmd, "r");
	if (p && fgets(out, (int)n, p)) {
		out[strcspn(out, "\n")] = 0;
		ok = out[0] != 0;
	}
	if (p)
		pclose(p);
	return ok;
}

static int count_cache_files(const char *dir)
{
	char cmd[512], line[64];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof cmd, "find %s -name '*.meta*' -o -name '*.data' | wc -l", dir);
	p = popen(cmd, "r");
	if (p && fgets(line, sizeof line, p))
		n = (int)strtol(line, NULL, 10);
	if (p)
		pclose(p);
	return n;
}

/* Bytes actually allocated on disk by the data files. */
static uint64_t data_allocated(const char *dir)
{
	char cmd[512], line[4096];
	uint64_t total = 0;
	FILE *p;

	snprintf(cmd, sizeof cmd, "find %s -name '*.data'", dir);
	p = popen(cmd, "r");
	while (p && fgets(line, sizeof line, p)) {
		struct stat st;

		line[strcspn(line, "\n")] = 0;
		if (stat(line, &st) == 0)
			total += (uint64_t)st.st_blocks * 512;
	}
	if (p)
		pclose(p);
	return total;
}

/* ---- tests ---- */

static void test_bytes_equal(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	uint64_t size = 5 * MiB + 512 * KiB; /* 6 blocks, the last one short */
	size_t got;
	int same;
	unsigned calls;

	cfg_init(&c, dir, 64 * MiB, MiB);
	bc = open_cache(&c);
	src_init(&s, size, 1);
	s.max_chunk = 300 * KiB; /* the callback returns short chunks: the cache loops */
	f = open_file(bc, "user.alice:run1.root:00000000", &s, NULL);

	/* whole file in odd-sized pieces */
	for (uint64_t off = 0; off < size; off += 99991) {
		CHECK(read_check(bc, f, &s, off, 99991, &got, &same) == DM_OK);
		CHECK(same);
		CHECK(got == (size - off < 99991 ? size - off : 99991));
	}
	calls = atomic_load(&s.calls);
	CHECK(STAT(bc, fetches) == 6);
	CHECK(fs_bc_cached_bytes(bc, "user.alice:run1.root:00000000") == size);
	CHECK(fs_bc_cached_bytes(bc, "user.alice:other:00000000") == 0);

	/* again, all from the cache, in one big read */
	CHECK(read_check(bc, f, &s, 0, (size_t)size + 100, &got, &same) == DM_OK);
	CHECK(same && got == size);
	CHECK(atomic_load(&s.calls) == calls);
	CHECK(STAT(bc, hits) >= 6);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);

	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

static void test_short_last_block_and_span(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	uint64_t size = 2 * MiB + 1000;
	size_t got;
	int same;
	unsigned char b;
	struct dm_err err;

	cfg_init(&c, dir, 64 * MiB, MiB);
	bc = open_cache(&c);
	src_init(&s, size, 2);
	f = open_file(bc, "k:short", &s, NULL);

	/* past the end of the short last block */
	CHECK(read_check(bc, f, &s, size - 10, 4096, &got, &same) == DM_OK);
	CHECK(same && got == 10);
	CHECK(atomic_load(&s.bytes) == 1000); /* the last block is 1000 bytes */
	CHECK(fs_bc_cached_bytes(bc, "k:short") == 1000);
	/* at and beyond the end */
	CHECK(fs_bc_read(bc, f, &b, 1, size, &got, &err) == DM_OK && got == 0);
	CHECK(fs_bc_read(bc, f, &b, 1, size + 5 * MiB, &got, &err) == DM_OK && got == 0);

	/* a read spanning blocks 0 and 1 fetches both and nothing else */
	CHECK(read_check(bc, f, &s, MiB - 10, 20, &got, &same) == DM_OK);
	CHECK(same && got == 20);
	CHECK(atomic_load(&s.calls) == 3);
	/* spanning all three */
	CHECK(read_check(bc, f, &s, MiB - 10, MiB + 500, &got, &same) == DM_OK);
	CHECK(same && got == MiB + 500);
	CHECK(atomic_load(&s.calls) == 3);

	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

static void test_ranged_middle_of_1g(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	size_t got;
	int same;

	cfg_init(&c, dir, 256 * MiB, 0); /* default 4 MiB blocks */
	c.no_prefetch = 0;               /* prefetch on: one read must still fetch one block */
	bc = open_cache(&c);
	src_init(&s, 1024ull * MiB, 3);
	f = open_file(bc, "k:1g", &s, NULL);

	CHECK(read_check(bc, f, &s, 512ull * MiB + 12345, 4096, &got, &same) == DM_OK);
	CHECK(same && got == 4096);
	sleep_ms(50);
	quiesce(bc);
	CHECK(atomic_load(&s.calls) == 1);
	CHECK(atomic_load(&s.bytes) == FS_BC_BLOCK_DEFAULT);
	CHECK(STAT(bc, fetches) == 1);
	CHECK(STAT(bc, prefetches) == 0);
	CHECK(fs_bc_cached_bytes(bc, "k:1g") == FS_BC_BLOCK_DEFAULT);

	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

struct reader_arg {
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src *s;
	uint64_t off;
	size_t len;
	enum dm_status rc;
	int same;
	struct dm_err err;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	unsigned char *buf = malloc(a->len);
	size_t got = 0;

	a->rc = fs_bc_read(a->bc, a->f, buf, a->len, a->off, &got, &a->err);
	a->same = a->rc == DM_OK && got == a->len && same_as_source(a->s->seed, a->off, buf, got);
	free(buf);
	return NULL;
}

static void test_single_flight(int fail)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	struct reader_arg a[8];
	pthread_t t[8];
	size_t got;
	int same;

	cfg_init(&c, dir, 64 * MiB, MiB);
	bc = open_cache(&c);
	src_init(&s, 8 * MiB, 4);
	f = open_file(bc, "k:flight", &s, NULL);
	gate_close(&s, 0, UINT64_MAX);

	for (int i = 0; i < 8; i++) {
		a[i] = (struct reader_arg){ .bc = bc, .f = f, .s = &s,
					    .off = 3 * MiB + (uint64_t)i * 100 * KiB,
					    .len = 64 * KiB };
		pthread_create(&t[i], NULL, reader, &a[i]);
	}
	/* one fetch at the gate, all eight readers counted as misses */
	CHECK(WAIT_FOR(gate_waiting(&s) == 1 && STAT(bc, misses) == 8));
	sleep_ms(20); /* a second fetch, if there were one, would show up now */
	CHECK(atomic_load(&s.calls) == 1);
	if (fail)
		atomic_store(&s.fail, 1);
	gate_open(&s);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	CHECK(atomic_load(&s.calls) == 1);
	for (int i = 0; i < 8; i++) {
		if (fail) {
			CHECK(a[i].rc == DM_EIO);
			CHECK(strstr(a[i].err.msg, "injected failure") != NULL);
			CHECK_STR(a[i].err.cls, "SourceNotFound");
		} else {
			CHECK(a[i].rc == DM_OK && a[i].same);
		}
	}
	if (fail) {
		CHECK(STAT(bc, fetch_errors) == 1);
		CHECK(fs_bc_cached_bytes(bc, "k:flight") == 0);
		/* the failure is not cached: the next read fetches again */
		atomic_store(&s.fail, 0);
		CHECK(read_check(bc, f, &s, 3 * MiB, 10, &got, &same) == DM_OK && same);
		CHECK(atomic_load(&s.calls) == 2);
	}
	CHECK(STAT(bc, bytes_reserved) == 0);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);

	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

static void test_wait_timeout(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	struct reader_arg a = { 0 }, b = { 0 };
	pthread_t ta, tb;

	cfg_init(&c, dir, 64 * MiB, MiB);
	c.wait_timeout_ms = 200;
	bc = open_cache(&c);
	src_init(&s, 4 * MiB, 5);
	f = open_file(bc, "k:slow", &s, NULL);
	gate_close(&s, 0, UINT64_MAX);

	a = (struct reader_arg){ .bc = bc, .f = f, .s = &s, .off = 0, .len = 100 };
	b = (struct reader_arg){ .bc = bc, .f = f, .s = &s, .off = 1000, .len = 100 };
	pthread_create(&ta, NULL, reader, &a);
	CHECK(WAIT_FOR(gate_waiting(&s) == 1));
	pthread_create(&tb, NULL, reader, &b);
	pthread_join(tb, NULL); /* ends on its own: the waiter times out */
	CHECK(b.rc == DM_ETIMEDOUT);
	CHECK(strstr(b.err.msg, "another reader") != NULL);
	gate_open(&s);
	pthread_join(ta, NULL);
	CHECK(a.rc == DM_OK && a.same);
	CHECK(atomic_load(&s.calls) == 1);

	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

/* Randomized multithreaded workload; the limit is checked after every operation. */
#define STRESS_FILES 5
#define STRESS_THREADS 4

struct stress {
	struct fs_bc *bc;
	struct src src[STRESS_FILES];
	char keys[STRESS_FILES][32];
	int ops;
	atomic_int over_limit;
	atomic_int bad_data;
	atomic_int errors;
	atomic_int reads_ok;
};

struct stress_arg {
	struct stress *st;
	unsigned seed;
};

static void *stress_thread(void *p)
{
	struct stress_arg *sa = p;
	struct stress *st = sa->st;
	struct fs_bc_file *f[STRESS_FILES];
	unsigned r = sa->seed;
	unsigned char *buf = malloc(512 * KiB);
	uint64_t seq_off[STRESS_FILES] = { 0 };

	for (int i = 0; i < STRESS_FILES; i++)
		f[i] = open_file(st->bc, st->keys[i], &st->src[i], NULL);
	for (int op = 0; op < st->ops; op++) {
		int fi = (int)(rand_r(&r) % STRESS_FILES), kind = (int)(rand_r(&r) % 100);
		struct src *s = &st->src[fi];
		struct fs_bc_stats stats;
		struct dm_err err;
		size_t len = 1 + (size_t)rand_r(&r) % (300 * KiB), got = 0;
		uint64_t off;
		enum dm_status rc;

		if (kind < 2) {
			fs_bc_drop(st->bc, st->keys[fi], NULL);
			goto check;
		}
		if (kind < 4) { /* reopen: handles come and go */
			fs_bc_file_close(st->bc, f[fi]);
			f[fi] = open_file(st->bc, st->keys[fi], s, NULL);
			goto check;
		}
		if (kind < 50) { /* sequential stream: feeds the prefetcher */
			off = seq_off[fi];
			len = 128 * KiB;
			seq_off[fi] = off + len >= s->size ? 0 : off + len;
		} else {
			off = ((uint64_t)rand_r(&r) << 16 ^ (uint64_t)rand_r(&r)) % s->size;
		}
		rc = fs_bc_read(st->bc, f[fi], buf, len, off, &got, &err);
		if (rc == DM_OK) {
			atomic_fetch_add(&st->reads_ok, 1);
			if (got != (s->size - off < len ? s->size - off : len) ||
			    !same_as_source(s->seed, off, buf, got))
				atomic_fetch_add(&st->bad_data, 1);
		} else {
			atomic_fetch_add(&st->errors, 1);
		}
check:
		fs_bc_get_stats(st->bc, &stats);
		if (stats.bytes_cached + stats.bytes_reserved > stats.max_bytes)
			atomic_fetch_add(&st->over_limit, 1);
	}
	for (int i = 0; i < STRESS_FILES; i++)
		fs_bc_file_close(st->bc, f[i]);
	free(buf);
	return NULL;
}

static void test_limit_stress(int ops, uint64_t max)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct stress st;
	struct stress_arg sa[STRESS_THREADS];
	pthread_t t[STRESS_THREADS];
	struct fs_bc_stats stats;
	struct dm_err err;

	memset(&st, 0, sizeof st);
	cfg_init(&c, dir, max, MiB);
	c.no_prefetch = 0;
	c.prefetch_threads = 2;
	c.prefetch_queue = 8;
	st.bc = open_cache(&c);
	st.ops = ops;
	for (int i = 0; i < STRESS_FILES; i++) {
		src_init(&st.src[i], 3 * MiB + (uint64_t)i * 1700 * KiB + 333, 100 + (uint32_t)i);
		atomic_store(&st.src[i].fail_every, 37 + (unsigned)i);
		snprintf(st.keys[i], sizeof st.keys[i], "stress:file%d", i);
	}
	for (int i = 0; i < STRESS_THREADS; i++) {
		sa[i] = (struct stress_arg){ &st, 1234u + (unsigned)i };
		pthread_create(&t[i], NULL, stress_thread, &sa[i]);
	}
	for (int i = 0; i < STRESS_THREADS; i++)
		pthread_join(t[i], NULL);
	quiesce(st.bc);
	fs_bc_get_stats(st.bc, &stats);
	CHECK(atomic_load(&st.over_limit) == 0);
	CHECK(atomic_load(&st.bad_data) == 0);
	CHECK(atomic_load(&st.reads_ok) > ops * STRESS_THREADS / 2);
	CHECK(atomic_load(&st.errors) > 0); /* injected failures reached readers */
	CHECK(stats.evictions > 0);         /* the workload really was over the limit */
	if (max >= 4 * MiB) /* smaller caches get no prefetch window */
		CHECK(stats.prefetches > 0);
	CHECK(fs_bc_check(st.bc, &err) == DM_OK);
	/* the disk agrees: holes were punched (4 KiB rounding of the short last blocks) */
	CHECK(data_allocated(dir) <= max + STRESS_FILES * 4096);
	if (max < 4 * MiB) /* 4 readers + 2 prefetchers can pin more than the cache */
		CHECK(stats.passthrough > 0);
	printf("# stress (limit %" PRIu64 " MiB): %d ops, %" PRIu64 " fetches, %" PRIu64 " prefetches, %" PRIu64
	       " evictions, %" PRIu64 " pass-through, %d errors, %" PRIu64 " bytes cached\n",
	       max / MiB, ops * STRESS_THREADS, stats.fetches, stats.prefetches, stats.evictions,
	       stats.passthrough, atomic_load(&st.errors), stats.bytes_cached);
	fs_bc_close(st.bc);
	for (int i = 0; i < STRESS_FILES; i++)
		src_release(&st.src[i]);
	rm_rf(dir);
	free(dir);
}

static void test_pinned(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	struct reader_arg a0, a1, a2;
	pthread_t t0, t1, t2;
	size_t got;
	int same;

	cfg_init(&c, dir, 2 * MiB, MiB); /* room for two blocks */
	bc = open_cache(&c);
	src_init(&s, 6 * MiB, 6);
	f = open_file(bc, "k:pinned", &s, NULL);

	/* blocks 0 and 1 are being fetched: both reserved, nothing evictable */
	gate_close(&s, 0, 2 * MiB);
	a0 = (struct reader_arg){ .bc = bc, .f = f, .s = &s, .off = 10, .len = 1000 };
	a1 = (struct reader_arg){ .bc = bc, .f = f, .s = &s, .off = MiB + 10, .len = 1000 };
	pthread_create(&t0, NULL, reader, &a0);
	pthread_create(&t1, NULL, reader, &a1);
	CHECK(WAIT_FOR(gate_waiting(&s) == 2));
	CHECK(STAT(bc, bytes_reserved) == 2 * MiB);
	/* a read of block 2 is served, without caching and without exceeding the limit */
	CHECK(read_check(bc, f, &s, 2 * MiB + 5, 100 * KiB, &got, &same) == DM_OK);
	CHECK(same && got == 100 * KiB);
	CHECK(STAT(bc, passthrough) == 1);
	CHECK(STAT(bc, bytes_cached) + STAT(bc, bytes_reserved) <= 2 * MiB);
	CHECK(STAT(bc, evictions) == 0);
	gate_open(&s);
	pthread_join(t0, NULL);
	pthread_join(t1, NULL);
	CHECK(a0.rc == DM_OK && a0.same && a1.rc == DM_OK && a1.same);
	CHECK(fs_bc_cached_bytes(bc, "k:pinned") == 2 * MiB); /* 0 and 1, not 2 */

	/* block 1 read again (recent); block 2 in flight must evict block 0, the LRU one */
	CHECK(read_check(bc, f, &s, MiB, 10, &got, &same) == DM_OK && same);
	gate_close(&s, 2 * MiB, 3 * MiB);
	a2 = (struct reader_arg){ .bc = bc, .f = f, .s = &s, .off = 2 * MiB, .len = 10 };
	pthread_create(&t2, NULL, reader, &a2);
	CHECK(WAIT_FOR(gate_waiting(&s) == 1));
	CHECK(STAT(bc, evictions) == 1);
	/* block 1 is still there and block 2, in flight, is pinned: block 3 must
	 * evict block 1 and may not touch block 2 */
	CHECK(read_check(bc, f, &s, 3 * MiB, 10, &got, &same) == DM_OK && same);
	CHECK(STAT(bc, evictions) == 2);
	CHECK(STAT(bc, bytes_reserved) == MiB);
	gate_open(&s);
	pthread_join(t2, NULL);
	CHECK(a2.rc == DM_OK && a2.same);
	CHECK(fs_bc_cached_bytes(bc, "k:pinned") == 2 * MiB);
	/* blocks 2 and 3 are the ones cached: reading them fetches nothing */
	{
		unsigned calls = atomic_load(&s.calls);

		CHECK(read_check(bc, f, &s, 2 * MiB, 2 * MiB, &got, &same) == DM_OK && same);
		CHECK(atomic_load(&s.calls) == calls);
	}
	CHECK(fs_bc_check(bc, NULL) == DM_OK);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);

	/* a cache smaller than one block passes everything through */
	cfg_init(&c, dir, 512 * KiB, MiB);
	c.no_prefetch = 0;
	bc = open_cache(&c);
	src_init(&s, 3 * MiB, 7);
	f = open_file(bc, "k:tiny", &s, NULL);
	for (uint64_t off = 0; off < 3 * MiB; off += 256 * KiB)
		CHECK(read_check(bc, f, &s, off, 256 * KiB, &got, &same) == DM_OK && same);
	CHECK(STAT(bc, bytes_cached) == 0 && STAT(bc, passthrough) == 12);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

static void test_persistence(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	size_t got;
	int same;
	uint64_t size = 3 * MiB + 512 * KiB;

	cfg_init(&c, dir, 64 * MiB, MiB);
	c.no_sync = 0; /* the real write order, with fsyncs */
	bc = open_cache(&c);
	src_init(&s, size, 8);
	f = open_file(bc, "k:persist", &s, NULL);
	CHECK(read_check(bc, f, &s, 100, 1000, &got, &same) == DM_OK && same);
	CHECK(read_check(bc, f, &s, 2 * MiB + 7, 2 * MiB, &got, &same) == DM_OK && same);
	CHECK(atomic_load(&s.calls) == 3);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);

	/* reopen: blocks 0, 2 and 3 are there, the source is not touched */
	c.block_size = 2 * MiB; /* a new default block size does not affect old entries */
	bc = open_cache(&c);
	CHECK(STAT(bc, bytes_cached) == 2 * MiB + 512 * KiB);
	CHECK(STAT(bc, files) == 1);
	CHECK(fs_bc_cached_bytes(bc, "k:persist") == 2 * MiB + 512 * KiB);
	atomic_store(&s.calls, 0);
	atomic_store(&s.fail, 1);
	f = open_file(bc, "k:persist", &s, NULL);
	CHECK(read_check(bc, f, &s, 0, MiB, &got, &same) == DM_OK && same);
	CHECK(read_check(bc, f, &s, 2 * MiB, (size_t)(size - 2 * MiB), &got, &same) == DM_OK);
	CHECK(same);
	CHECK(atomic_load(&s.calls) == 0);
	/* block 1 was never cached: it needs the (failing) source */
	CHECK(read_check(bc, f, &s, MiB, 10, &got, &same) == DM_EIO);
	CHECK(atomic_load(&s.calls) == 1);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);

	/* a second cache on the same directory is refused */
	{
		struct fs_bc *bc2 = NULL;
		struct dm_err err;

		CHECK(fs_bc_open(&c, &bc2, &err) == DM_EEXIST);
		CHECK(bc2 == NULL);
	}
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);

	/* reopen with a smaller limit: evicted down to it at open */
	c.max_bytes = MiB;
	bc = open_cache(&c);
	CHECK(STAT(bc, bytes_cached) <= MiB && STAT(bc, bytes_cached) > 0);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);
	fs_bc_close(bc);
	CHECK(data_allocated(dir) <= MiB);

	src_release(&s);
	rm_rf(dir);
	free(dir);
}

/* Cache blocks 0-2 of a 3 MiB file, then close the cache. */
static void fill3(const char *dir, struct src *s)
{
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	size_t got;
	int same;

	cfg_init(&c, dir, 64 * MiB, MiB);
	bc = open_cache(&c);
	f = open_file(bc, "k:corrupt", s, NULL);
	CHECK(read_check(bc, f, s, 0, 3 * MiB, &got, &same) == DM_OK && same);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
}

static void test_corruption(void)
{
	char *dir = tmpdir();
	char path[1024], orphan[1100], *base;
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	size_t got;
	int same, fd;
	unsigned char byte;

	src_init(&s, 3 * MiB, 9);
	cfg_init(&c, dir, 64 * MiB, MiB);

	/* (a) truncated data file: the entry is dropped, reads refetch */
	fill3(dir, &s);
	CHECK(find_cache_file(dir, ".data", path, sizeof path));
	CHECK(truncate(path, MiB) == 0);
	bc = open_cache(&c);
	CHECK(STAT(bc, bytes_cached) == 0 && STAT(bc, files) == 0);
	CHECK(count_cache_files(dir) == 0);
	atomic_store(&s.calls, 0);
	f = open_file(bc, "k:corrupt", &s, NULL);
	CHECK(read_check(bc, f, &s, 5, 100, &got, &same) == DM_OK && same);
	CHECK(atomic_load(&s.calls) == 1);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	rm_rf(dir);
	mkdir(dir, 0700);

	/* (b) one corrupted header byte (in the key) */
	fill3(dir, &s);
	CHECK(find_cache_file(dir, ".meta", path, sizeof path));
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && pread(fd, &byte, 1, 41) == 1);
	byte ^= 0x20;
	CHECK(pwrite(fd, &byte, 1, 41) == 1);
	close(fd);
	bc = open_cache(&c);
	CHECK(STAT(bc, bytes_cached) == 0 && STAT(bc, files) == 0);
	CHECK(count_cache_files(dir) == 0);
	atomic_store(&s.calls, 0);
	f = open_file(bc, "k:corrupt", &s, NULL);
	CHECK(read_check(bc, f, &s, 0, 3 * MiB, &got, &same) == DM_OK && same);
	CHECK(atomic_load(&s.calls) == 3);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);

	/* (b2) a flipped padding byte: only the header checksum can tell */
	CHECK(find_cache_file(dir, ".meta", path, sizeof path));
	fd = open(path, O_RDWR);
	byte = 0x55;
	CHECK(fd >= 0 && pwrite(fd, &byte, 1, 3000) == 1);
	close(fd);
	bc = open_cache(&c);
	CHECK(STAT(bc, bytes_cached) == 0 && STAT(bc, files) == 0);
	f = open_file(bc, "k:corrupt", &s, NULL);
	CHECK(read_check(bc, f, &s, 0, 3 * MiB, &got, &same) == DM_OK && same);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);

	/* (c) a hole in block 1 (an eviction whose slot update was lost in a
	 * crash): only that block is dropped; plus leftovers of a crash */
	CHECK(find_cache_file(dir, ".data", path, sizeof path));
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)MiB + 4096, 4096) == 0);
	close(fd);
	snprintf(orphan, sizeof orphan, "%s", path);
	base = strrchr(orphan, '/') + 1; /* another hash in the same subdirectory */
	base[31] = base[31] == '0' ? '1' : '0';
	fd = open(orphan, O_CREAT | O_WRONLY, 0600); /* data file without metadata */
	CHECK(fd >= 0);
	close(fd);
	snprintf(base + 32, sizeof orphan - (size_t)(base + 32 - orphan), ".meta.tmp");
	fd = open(orphan, O_CREAT | O_WRONLY, 0600); /* unfinished metadata */
	CHECK(fd >= 0);
	close(fd);
	CHECK(count_cache_files(dir) == 4);
	bc = open_cache(&c);
	CHECK(STAT(bc, bytes_cached) == 2 * MiB);
	CHECK(count_cache_files(dir) == 2);
	atomic_store(&s.calls, 0);
	f = open_file(bc, "k:corrupt", &s, NULL);
	CHECK(read_check(bc, f, &s, 0, MiB, &got, &same) == DM_OK && same);
	CHECK(read_check(bc, f, &s, 2 * MiB, MiB, &got, &same) == DM_OK && same);
	CHECK(atomic_load(&s.calls) == 0);
	CHECK(read_check(bc, f, &s, MiB, MiB, &got, &same) == DM_OK && same);
	CHECK(atomic_load(&s.calls) == 1);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);

	/* (d) block 2's bytes never reached the disk although its slot says
	 * PRESENT (blocks are stored without fdatasync; a crash): no hole to
	 * see, so the block is checked against its adler32 at first use and
	 * fetched again; the intact blocks still need no source */
	CHECK(find_cache_file(dir, ".data", path, sizeof path));
	fd = open(path, O_RDWR);
	{
		static char zeros[64 * 1024];

		CHECK(fd >= 0 && pwrite(fd, zeros, sizeof zeros, 2 * MiB + 8192) ==
				     (ssize_t)sizeof zeros);
	}
	close(fd);
	bc = open_cache(&c);
	CHECK(STAT(bc, bytes_cached) == 3 * MiB);
	atomic_store(&s.calls, 0);
	f = open_file(bc, "k:corrupt", &s, NULL);
	CHECK(read_check(bc, f, &s, 0, 2 * MiB, &got, &same) == DM_OK && same);
	CHECK(atomic_load(&s.calls) == 0);
	CHECK(read_check(bc, f, &s, 2 * MiB, MiB, &got, &same) == DM_OK && same);
	CHECK(atomic_load(&s.calls) == 1);
	/* dropped, then cached afresh by the next read */
	CHECK(read_check(bc, f, &s, 2 * MiB + 5, 100, &got, &same) == DM_OK && same);
	CHECK(read_check(bc, f, &s, 2 * MiB + 5, 100, &got, &same) == DM_OK && same);
	CHECK(atomic_load(&s.calls) == 2);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);

	src_release(&s);
	rm_rf(dir);
	free(dir);
}

static void test_sequential_prefetch(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	size_t got;
	int same, all_same = 1;
	unsigned order[16], max_window = 0, steps = 0, last_window = 0, shrank = 0;
	unsigned r = 99;
	uint64_t chunk = 128 * KiB, n = 24 * MiB / chunk;

	cfg_init(&c, dir, 256 * MiB, MiB);
	c.no_prefetch = 0;
	c.prefetch_max_blocks = 8;
	bc = open_cache(&c);
	src_init(&s, 64 * MiB, 10);
	f = open_file(bc, "k:seq", &s, NULL);

	/* 128 KiB reads over 24 MiB, shuffled within windows of 16 reads (2 MiB),
	 * as readahead from several FUSE threads arrives */
	for (uint64_t base = 0; base < n; base += 16) {
		for (unsigned i = 0; i < 16; i++)
			order[i] = i;
		for (unsigned i = 15; i > 0; i--) {
			unsigned j = (unsigned)rand_r(&r) % (i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (unsigned i = 0; i < 16; i++) {
			uint64_t off = (base + order[i]) * chunk;

			unsigned w;

			CHECK(read_check(bc, f, &s, off, chunk, &got, &same) == DM_OK);
			all_same &= same;
			w = fs_bc_file_prefetch_window(bc, f);
			if (w < last_window)
				shrank++;
			if (w > last_window)
				steps++;
			last_window = w;
			if (w > max_window)
				max_window = w;
		}
	}
	quiesce(bc);
	CHECK(all_same);
	CHECK(STAT(bc, prefetch_resets) == 0);
	CHECK(max_window == 8);
	CHECK(shrank == 0);
	CHECK(steps == 4); /* 1, 2, 4, 8 */
	CHECK(STAT(bc, prefetches) >= 8);
	/* shared fetches: never two fetches of one block */
	CHECK(atomic_load(&s.calls) == STAT(bc, fetches));
	CHECK(atomic_load(&s.calls) <= 24 + 8);
	/* most blocks arrived through prefetch, not through the reader's own misses */
	CHECK(STAT(bc, prefetches) >= 16);
	CHECK(STAT(bc, fetches) - STAT(bc, prefetches) <= 8);
	printf("# sequential: %" PRIu64 " prefetches, %" PRIu64 " fetches, %" PRIu64
	       " hits, %" PRIu64 " misses\n", STAT(bc, prefetches), STAT(bc, fetches),
	       STAT(bc, hits), STAT(bc, misses));

	/* a real jump resets the stream */
	CHECK(read_check(bc, f, &s, 60 * MiB, 4096, &got, &same) == DM_OK && same);
	CHECK(fs_bc_file_prefetch_window(bc, f) == 0);
	CHECK(STAT(bc, prefetch_resets) == 1);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

/* Pages of [off, off+len) of the file at path in the kernel's page cache. */
static uint64_t resident_pages(const char *path, uint64_t off, uint64_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	int fd = open(path, O_RDONLY);
	uint64_t n = 0, np = (len + (uint64_t)pg - 1) / (uint64_t)pg;
	unsigned char *vec = calloc(np ? np : 1, 1);
	void *m;

	if (fd < 0)
		return UINT64_MAX;
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
	close(fd);
	if (m == MAP_FAILED || mincore(m, len, vec) != 0)
		n = UINT64_MAX;
	else
		for (uint64_t i = 0; i < np; i++)
			n += vec[i] & 1;
	if (m != MAP_FAILED)
		munmap(m, len);
	free(vec);
	return n;
}

/* Read the whole file in 256 KiB pieces, in order; 1 if every byte matched. */
static int read_through(struct fs_bc *bc, struct fs_bc_file *f, struct src *s)
{
	int ok = 1, same;
	size_t got;

	for (uint64_t off = 0; off < s->size; off += 256 * KiB)
		ok &= read_check(bc, f, s, off, 256 * KiB, &got, &same) == DM_OK && same;
	return ok;
}

/*
 * A sequential stream drops the data file's pages behind it (the FUSE page
 * cache above holds those bytes), reads what it dropped back intact from the
 * disk, and keep_pages keeps them; random reads never drop.
 */
static void test_drop_behind(int keep)
{
	char *dir = tmpdir(), data[4096];
	struct fs_bc_config c;
	struct statfs sf;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	uint64_t behind = 20 * MiB, before;
	int same, dropped = 0;
	size_t got;

	cfg_init(&c, dir, 256 * MiB, MiB);
	c.no_prefetch = 0;
	c.keep_pages = keep;
	bc = open_cache(&c);
	src_init(&s, 24 * MiB, 12);
	f = open_file(bc, "k:drop", &s, NULL);
	CHECK(read_through(bc, f, &s));
	quiesce(bc);
	if (keep)
		CHECK(STAT(bc, pages_dropped) == 0);
	else
		CHECK(STAT(bc, pages_dropped) >= 20);
	CHECK(find_cache_file(dir, ".data", data, sizeof data));
	if (statfs(dir, &sf) == 0 && sf.f_type == 0x01021994 /* TMPFS_MAGIC */) {
		printf("# drop-behind: %s is tmpfs, whose pages cannot be dropped; "
		       "residency not checked\n", dir);
	} else if (keep) {
		/* nothing presses memory here: what was stored stays resident */
		CHECK(resident_pages(data, 0, behind) == behind / 4096);
	} else {
		/* the first pass may meet pages still under writeback (skipped by
		 * the kernel); once written out, a pass drops them all */
		for (int pass = 0; pass < 200 && !dropped; pass++) {
			fs_bc_file_close(bc, f);
			f = open_file(bc, "k:drop", &s, NULL);
			CHECK(read_through(bc, f, &s));
			dropped = resident_pages(data, 0, behind) == 0;
			if (!dropped)
				sleep_ms(100);
		}
		CHECK(dropped);
	}
	/* random reads (a new handle, far jumps) drop nothing */
	fs_bc_file_close(bc, f);
	f = open_file(bc, "k:drop", &s, NULL);
	before = STAT(bc, pages_dropped);
	for (uint64_t i = 0; i < 8; i++) { /* blocks 0 20 1 21 ...: jumps > 16 MiB */
		uint64_t off = ((i % 2) * 20 + i / 2) * MiB + MiB - 4096;

		CHECK(read_check(bc, f, &s, off, 4096, &got, &same) == DM_OK && same);
	}
	CHECK(STAT(bc, pages_dropped) == before);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

static void test_random_no_prefetch(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	size_t got;
	int same, all_same = 1;

	cfg_init(&c, dir, 256 * MiB, MiB);
	c.no_prefetch = 0;
	bc = open_cache(&c);
	src_init(&s, 1024ull * MiB, 11);
	f = open_file(bc, "k:random", &s, NULL);
	/* consecutive reads at least 389 MiB apart: no stream */
	for (uint64_t i = 0; i < 200; i++) {
		uint64_t off = (i * 389 * MiB) % (1024ull * MiB) + (i * 4096) % MiB;

		CHECK(read_check(bc, f, &s, off, 4096, &got, &same) == DM_OK);
		all_same &= same;
		CHECK(fs_bc_file_prefetch_window(bc, f) == 0);
	}
	sleep_ms(50);
	quiesce(bc);
	CHECK(all_same);
	CHECK(STAT(bc, prefetches) == 0);
	CHECK(atomic_load(&s.calls) == STAT(bc, fetches));
	CHECK(atomic_load(&s.bytes) == (uint64_t)atomic_load(&s.calls) * MiB);
	CHECK(STAT(bc, fetches) <= 200);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

/*
 * Prefetch for one stream may not evict blocks another stream prefetched and
 * has not read yet (it would thrash); it gives up instead.
 */
static void test_prefetch_no_thrash(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *fa, *fb, *fc;
	struct src a, b, cc;
	size_t got;
	int same;
	const int corder[] = { 0, 3, 6, 1, 4, 7, 2, 5, 8 };

	cfg_init(&c, dir, 16 * MiB, MiB);
	c.no_prefetch = 0;
	c.prefetch_max_blocks = 4;
	c.seq_tolerance = MiB;
	bc = open_cache(&c);
	src_init(&a, 64 * MiB, 20);
	src_init(&b, 64 * MiB, 21);
	src_init(&cc, 9 * MiB, 22);
	fa = open_file(bc, "k:streamA", &a, NULL);
	fb = open_file(bc, "k:streamB", &b, NULL);
	fc = open_file(bc, "k:randomC", &cc, NULL);

	/* random reads of C: 9 read blocks, the least recent (no prefetch: every
	 * read is a jump) */
	for (int i = 0; i < 9; i++)
		CHECK(read_check(bc, fc, &cc, (uint64_t)corder[i] * MiB, MiB, &got, &same) ==
		      DM_OK && same);
	/* stream A reads blocks 0-2; prefetch stores blocks 3-6 ahead of it */
	for (uint64_t off = 0; off < 3 * MiB; off += 128 * KiB) {
		CHECK(read_check(bc, fa, &a, off, 128 * KiB, &got, &same) == DM_OK && same);
		quiesce(bc);
	}
	/* touch A's read blocks (jumps: no stream): LRU order from the tail is now
	 * C's 9 blocks, A's unread 3-6, A's read 0-2; the cache is full */
	CHECK(read_check(bc, fa, &a, 0, 4096, &got, &same) == DM_OK && same);
	CHECK(read_check(bc, fa, &a, 2 * MiB, 4096, &got, &same) == DM_OK && same);
	CHECK(read_check(bc, fa, &a, MiB, 4096, &got, &same) == DM_OK && same);
	quiesce(bc);
	CHECK(fs_bc_cached_bytes(bc, "k:streamA") == 7 * MiB);
	CHECK(STAT(bc, bytes_cached) == 16 * MiB);
	CHECK(STAT(bc, evictions) == 0);
	/* stream B reads blocks 0-5 and wants up to 9: block 0 (its reader) and
	 * prefetched 1-8 evict C's 9 blocks; block 9 would evict A's unread
	 * block 3, so its prefetch is skipped */
	for (uint64_t off = 0; off < 6 * MiB; off += 128 * KiB) {
		CHECK(read_check(bc, fb, &b, off, 128 * KiB, &got, &same) == DM_OK && same);
		quiesce(bc);
	}
	CHECK(atomic_load(&b.calls) == 9);
	CHECK(STAT(bc, prefetch_skipped) == 1);
	CHECK(STAT(bc, prefetch_wasted) == 0);
	CHECK(fs_bc_cached_bytes(bc, "k:randomC") == 0);
	CHECK(fs_bc_cached_bytes(bc, "k:streamA") == 7 * MiB);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);
	fs_bc_file_close(bc, fa);
	fs_bc_file_close(bc, fb);
	fs_bc_file_close(bc, fc);
	fs_bc_close(bc);
	src_release(&a);
	src_release(&b);
	src_release(&cc);
	rm_rf(dir);
	free(dir);
}

static void test_prefetch_stops_on_close(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	size_t got;
	int same;

	cfg_init(&c, dir, 256 * MiB, MiB);
	c.no_prefetch = 0;
	c.prefetch_threads = 1; /* slow fetches: the queue fills up */
	bc = open_cache(&c);
	src_init(&s, 64 * MiB, 12);
	s.delay_us = 20000;
	f = open_file(bc, "k:close", &s, NULL);
	for (uint64_t off = 0; off < 6 * MiB; off += 512 * KiB)
		CHECK(read_check(bc, f, &s, off, 512 * KiB, &got, &same) == DM_OK && same);
	CHECK(STAT(bc, prefetch_queued) + STAT(bc, prefetch_running) > 0);
	fs_bc_file_close(bc, f);
	atomic_store(&s.closed, 1);
	CHECK(STAT(bc, prefetch_queued) == 0 && STAT(bc, prefetch_running) == 0);
	sleep_ms(100);
	CHECK(atomic_load(&s.late_calls) == 0);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

static void test_checksum_ok(uint64_t max)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	char adler[9];
	size_t got;
	int same;
	uint64_t size = 5 * MiB + 4321;
	const int order[] = { 3, 0, 5, 1, 4, 2 };

	cfg_init(&c, dir, max, MiB);
	bc = open_cache(&c);
	src_init(&s, size, 13);
	adler_hex_of(13, size, adler);
	f = open_file(bc, "k:csum", &s, adler);
	for (int i = 0; i < 6; i++) {
		CHECK(STAT(bc, checksum_ok) == 0);
		CHECK(read_check(bc, f, &s, (uint64_t)order[i] * MiB, MiB, &got, &same) == DM_OK);
		CHECK(same);
	}
	CHECK(STAT(bc, checksum_ok) == 1);
	CHECK(STAT(bc, checksum_failures) == 0);
	if (max < size) { /* verified across evictions: each block's adler32 was kept */
		CHECK(STAT(bc, evictions) > 0);
		/* and now a refetched block is checked against it */
		atomic_store(&s.corrupt, 1);
		CHECK(fs_bc_cached_bytes(bc, "k:csum") < size);
		{
			unsigned char b[10];
			struct dm_err err;

			fs_bc_drop(bc, "k:csum", NULL);
			/* the drop forgot the per-block values too: a fresh start */
			CHECK(fs_bc_read(bc, f, b, 10, 0, &got, &err) == DM_OK);
		}
	}
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

/* A source that changes after the file was verified: the refetched block is refused. */
static void test_checksum_block_changed(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f;
	struct src s;
	char adler[9];
	size_t got;
	int same;
	struct dm_err err;
	unsigned char b[10];

	cfg_init(&c, dir, 2 * MiB, MiB);
	bc = open_cache(&c);
	src_init(&s, 3 * MiB, 14);
	adler_hex_of(14, 3 * MiB, adler);
	f = open_file(bc, "k:changed", &s, adler);
	CHECK(read_check(bc, f, &s, 0, 3 * MiB, &got, &same) == DM_OK && same);
	CHECK(STAT(bc, checksum_ok) == 1);
	CHECK(fs_bc_cached_bytes(bc, "k:changed") == 2 * MiB); /* block 0 was evicted */
	atomic_store(&s.corrupt, 1);
	CHECK(fs_bc_read(bc, f, b, 10, 0, &got, &err) == DM_EIO);
	CHECK_STR(err.cls, "ChecksumMismatch");
	CHECK(STAT(bc, checksum_failures) == 1);
	atomic_store(&s.corrupt, 0);
	CHECK(read_check(bc, f, &s, 0, 10, &got, &same) == DM_OK && same);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

static void test_checksum_mismatch(int prefetch)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc;
	struct fs_bc_file *f, *g;
	struct src s;
	size_t got;
	int same, mismatches = 0, others = 0;
	uint64_t cached_after = UINT64_MAX;
	uint64_t size = 6 * MiB;
	unsigned char b[10];
	struct dm_err err;

	cfg_init(&c, dir, 64 * MiB, MiB);
	c.no_prefetch = !prefetch;
	bc = open_cache(&c);
	src_init(&s, size, 15);
	f = open_file(bc, "k:bad", &s, "0badc0de");
	g = open_file(bc, "k:bad", &s, NULL); /* a second handle on the same file */
	for (uint64_t off = 0; off < size; off += MiB) {
		enum dm_status rc = read_check(bc, f, &s, off, MiB, &got, &same);

		if (rc == DM_EIO) {
			mismatches++;
			cached_after = fs_bc_cached_bytes(bc, "k:bad");
		} else if (rc != DM_OK || !same) {
			others++;
		}
	}
	quiesce(bc);
	CHECK(mismatches == 1);
	CHECK(others == 0);
	CHECK(STAT(bc, checksum_failures) == 1);
	CHECK(STAT(bc, checksum_ok) == 0);
	/* the blocks were dropped (prefetch may have stored some again since) */
	if (prefetch)
		CHECK(cached_after < size);
	else
		CHECK(cached_after == 0);
	/* the other handle hears about it once, on its next read */
	CHECK(fs_bc_read(bc, g, b, 10, 0, &got, &err) == DM_EIO);
	CHECK_STR(err.cls, "ChecksumMismatch");
	CHECK(strstr(err.msg, "0badc0de") != NULL);
	CHECK(read_check(bc, g, &s, 0, 10, &got, &same) == DM_OK && same);
	CHECK(fs_bc_check(bc, NULL) == DM_OK);
	fs_bc_file_close(bc, g);
	fs_bc_file_close(bc, f);
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

static void test_bad_input(void)
{
	char *dir = tmpdir();
	struct fs_bc_config c;
	struct fs_bc *bc = NULL;
	struct fs_bc_file *f = NULL, *g = NULL;
	struct src s;
	struct dm_err err;

	cfg_init(&c, dir, 64 * MiB, 3 * MiB + 1);
	CHECK(fs_bc_open(&c, &bc, &err) == DM_EINVAL && bc == NULL);
	cfg_init(&c, dir, 0, MiB);
	CHECK(fs_bc_open(&c, &bc, &err) == DM_EINVAL);
	cfg_init(&c, dir, 64 * MiB, 32 * MiB);
	CHECK(fs_bc_open(&c, &bc, &err) == DM_EINVAL);
	cfg_init(&c, dir, 64 * MiB, MiB);
	bc = open_cache(&c);
	src_init(&s, MiB, 16);
	CHECK(fs_bc_file_open(bc, "", 10, NULL, src_fetch, &s, &f, &err) == DM_EINVAL);
	CHECK(fs_bc_file_open(bc, "k", 10, "xyz", src_fetch, &s, &f, &err) == DM_EINVAL);
	CHECK(strstr(err.msg, "8 hex digits") != NULL);
	CHECK(fs_bc_file_open(bc, "k", 10, NULL, NULL, &s, &f, &err) == DM_EINVAL);
	/* same key, other size: refused while open */
	f = open_file(bc, "k:size", &s, NULL);
	CHECK(fs_bc_file_open(bc, "k:size", 2 * MiB, NULL, src_fetch, &s, &g, &err) ==
	      DM_ECONFLICT);
	fs_bc_file_close(bc, f);
	/* zero-length files read as empty */
	s.size = 0;
	f = open_file(bc, "k:empty", &s, "00000001");
	{
		unsigned char b[4];
		size_t got = 7;

		CHECK(fs_bc_read(bc, f, b, 4, 0, &got, &err) == DM_OK && got == 0);
	}
	fs_bc_file_close(bc, f);
	CHECK(STAT(bc, files) == 0); /* nothing cached, nothing kept */
	fs_bc_close(bc);
	src_release(&s);
	rm_rf(dir);
	free(dir);
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;

	dm_log_set_level(DM_LOG_ERROR);
	test_bytes_equal();
	test_short_last_block_and_span();
	test_ranged_middle_of_1g();
	test_single_flight(0);
	test_single_flight(1);
	test_wait_timeout();
	test_limit_stress(quick ? 300 : 1500, 8 * MiB);
	test_limit_stress(quick ? 300 : 1500, 3 * MiB);
	test_pinned();
	test_persistence();
	test_corruption();
	test_sequential_prefetch();
	test_random_no_prefetch();
	test_drop_behind(0);
	test_drop_behind(1);
	test_prefetch_no_thrash();
	test_prefetch_stops_on_close();
	test_checksum_ok(64 * MiB);
	test_checksum_ok(2 * MiB);
	test_checksum_block_changed();
	test_checksum_mismatch(0);
	test_checksum_mismatch(1);
	test_bad_input();
	return tap_done();
}
