/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blockcache.c - persistent block cache with single-flight fetches, a hard
 * size limit, adaptive sequential prefetch and whole-file adler32 checks.
 *
 * On disk, under the cache directory:
 *   LOCK                    flock()ed while a cache has the directory open
 *   <h2>/<h>.data           sparse file, the size of the DID; block i at i*bs
 *   <h2>/<h>.meta           4096-byte header + one 8-byte slot per block
 * where h = md5(key) in hex and h2 its first two characters.  The header
 * (magic, version, block size, size, block count, key, adler32 of the header
 * itself) is written once, to a temporary name that is then renamed, and is
 * never rewritten.  A slot is {adler32 of the block, tag}; the tag holds a
 * state (EMPTY 0, PRESENT 5, KNOWN A: evicted but its adler32 remembered) and
 * the low 28 bits of the block index.  A slot is one aligned 8-byte pwrite
 * inside one sector, which filesystems do not tear.  Order of writes:
 *   store:  pwrite data -> fdatasync(data) -> slot PRESENT
 *   evict:  slot KNOWN/EMPTY -> fdatasync(meta) -> punch hole in data
 * so with the fsyncs a crash can leave unaccounted data (punched at the next
 * open) but never a PRESENT slot over missing data.  The fsyncs are
 * optional (no_sync; the mount runs without them, so that no read waits on
 * the disk): what keeps a crash from serving wrong bytes is that every
 * block found PRESENT at open is read back and compared with its slot's
 * adler32 before its first use (block_intact), and dropped and fetched again
 * when it differs.  On open every PRESENT block is also checked with
 * SEEK_HOLE (which catches truncation), files are size-checked, bad headers
 * and orphans are deleted.
 *
 * In memory: an index of entries (one per cached or open key, hashed by h)
 * and of block nodes (one per block that is stored or being fetched/evicted,
 * hashed by entry and index), so memory follows the cache size, not the size
 * of the files.  Block states:
 *
 *            reserve() ok               fetch + store ok
 *   (no node) ----------> FETCHING ---------------------> PRESENT <-> pinned
 *       ^                     | fetch or store failed       |  (pins > 0:
 *       |                     v                             |  off the LRU)
 *       +--------------- node freed <---- EVICTING <--------+
 *                                 evict_io()     mark_evicting(): LRU victim,
 *                                                drop, damaged, doomed unpin
 *
 * Accounting (under bc->lock): present = bytes of PRESENT nodes, reserved =
 * bytes of FETCHING nodes, lru_bytes = bytes of PRESENT nodes with no pins
 * (exactly the nodes on the LRU list).  Invariant: present + reserved <=
 * max_bytes.  A fetch first reserves its block, evicting LRU victims if
 * needed (they leave the accounting at once and their holes are punched by
 * the same thread before it writes its own data, so the data files never
 * hold more than the limit either, give or take the filesystem's rounding
 * of short last blocks; the metadata files, 8 bytes per block, are not
 * counted); if the unpinned bytes cannot make room the
 * read is served without caching.  Prefetch may not evict prefetched blocks
 * nobody has read yet (it gives up instead), so a fast prefetcher cannot
 * thrash its own stream.
 *
 * Page cache: a block a sequential stream has read to its end is dropped
 * from the kernel's page cache (drop_behind; its writeback was started when
 * it was stored), because the FUSE file above holds the same bytes in its
 * own page cache: without this a cold read keeps two copies in memory and
 * pays twice for allocating them.  Random reads keep their pages.
 *
 * Eviction is LRU by block, not by file: DIDs are often huge and read
 * partially (a ROOT file's footer and a few baskets, an HDF5 chunk index), so
 * whole-file eviction would throw away the hot blocks of a file along with
 * its cold ones, and would overshoot when only one block is needed.  A
 * block-level list costs one node per cached block (bounded by max_bytes /
 * block size).  After a restart the LRU order is approximated by the
 * metadata files' mtimes (touched when a handle closes).
 *
 * Locks: bc->lock protects the index, nodes, LRU, accounting, counters, the
 * prefetch queue and the per-handle stream state; flight conditions wait on
 * it.  entry->mlock serialises the entry's metadata slots, nknown and the
 * checksum state.  bc->pool_lock protects the buffer pool.  Order: never
 * take bc->lock while holding mlock or pool_lock, never hold bc->lock across
 * a fetch, a data write, an fsync or a slot write (only open/close/unlink and
 * small metadata calls happen under it).
 *
 * Lifetimes: an entry lives while it has nodes or references (handles, and
 * evictions in progress hold one); its file descriptors are open only while
 * it has references.  A handle lives until fs_bc_file_close(), which waits
 * for its running prefetch jobs; queued jobs hold a count on the handle.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "blockcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#define WHO "blockcache"
#define HDR_SIZE 4096u
#define HDR_MAGIC "DIDFSBC1"
#define HDR_VERSION 1u
#define HDR_KEY_OFF 40u
#define SLOT_SIZE 8u
#define SLOT_CHUNK 8192u /* slots read at a time */
#define TAG_PRESENT 0x5u
#define TAG_KNOWN 0xAu
#define PF_TRIGGER 2u /* sequential advances before prefetch starts */

enum bstate { B_FETCHING, B_PRESENT, B_EVICTING };
enum sstate { S_EMPTY, S_PRESENT, S_KNOWN };
enum verdict { V_NONE, V_OK, V_BAD, V_BLOCK_BAD, V_IOERR };

/* A fetch or eviction other threads wait for; allocated by the first waiter. */
struct flight {
	pthread_cond_t cond;
	unsigned waiters;
	int done;
	int bad_event; /* the fetch completed a file whose adler32 did not match */
	enum dm_status st;
	struct dm_err err;
};

struct entry;

struct node {
	struct entry *e;
	uint64_t idx;
	uint32_t len;
	uint8_t state;     /* enum bstate */
	uint8_t pf_unread; /* stored by prefetch, not read since */
	uint8_t doomed;    /* drop (slot EMPTY) when it next becomes evictable */
	uint8_t unverified; /* loaded from disk at open: checked against its slot's
			     * adler32 before its first use */
	uint32_t pins;
	struct flight *fl;
	struct node *hnext;
	struct node *lprev, *lnext; /* LRU; NULL when not on it */
	struct node *eprev, *enext; /* the entry's nodes */
	struct node *vnext;         /* victim list of one evict_io() */
};

struct entry {
	char *key;
	char name[33];
	uint64_t size;
	uint32_t bsize;
	uint64_t nblocks;
	/* under bc->lock */
	int dfd, mfd;
	unsigned refs;
	uint64_t nnodes;
	uint64_t present_bytes;
	struct node *nodes;
	uint64_t bad_gen;
	uint32_t bad_adler, bad_expected;
	struct entry *hnext;
	/* under mlock */
	pthread_mutex_t mlock;
	uint64_t nknown; /* slots PRESENT or KNOWN */
	int has_expected;
	uint32_t expected;
	int verified;
};

struct pf_job {
	struct fs_bc_file *f;
	uint64_t idx;
};

struct fs_bc_file {
	struct entry *e;
	fs_bc_fetch_fn fetch;
	void *ud;
	/* under bc->lock */
	uint64_t seen_bad_gen;
	int seen;
	uint64_t hw; /* high-water mark of the stream: end of the furthest read */
	unsigned streak;
	unsigned window;
	uint64_t pf_next; /* first block not yet handed to prefetch */
	unsigned jobs;    /* queued + running prefetch jobs */
	int closing;
};

struct fs_bc {
	char *dir;
	int lockfd;
	uint64_t max_bytes;
	uint32_t bsize;
	unsigned pf_max;
	uint64_t seq_tol;
	unsigned wait_ms;
	int sync;
	int drop_pages; /* drop data-file pages behind sequential streams */

	pthread_mutex_t lock;
	pthread_condattr_t condattr;
	pthread_cond_t qcond; /* workers: queue not empty, or stop */
	pthread_cond_t jcond; /* closers: a job of a closing handle ended */

	struct entry **eb;
	size_t enb, ecount;
	struct node **nb;
	size_t nnb, ncount;
	struct node lru; /* sentinel: lru.lnext is the most recent */
	uint64_t present, reserved, lru_bytes;
	unsigned nhandles;

	struct pf_job *q;
	size_t qcap, qhead, qlen;
	pthread_t *workers;
	unsigned nworkers, running;
	int stop;

	struct fs_bc_stats st;

	pthread_mutex_t pool_lock;
	void **pool;
	unsigned npool, pool_max;
	int punch_warned;
};

/* ---- small helpers ---- */

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO; /* short: the file was truncated */
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

static int parse_adler(const char *s, uint32_t *out)
{
	uint32_t v = 0;

	if (strlen(s) != 8 || !dm_is_hex(s, 8))
		return -1;
	for (int i = 0; i < 8; i++) {
		char c = s[i];
		uint32_t d = (c >= '0' && c <= '9') ? (uint32_t)(c - '0') :
			     (c >= 'a' && c <= 'f') ? (uint32_t)(c - 'a' + 10) :
						      (uint32_t)(c - 'A' + 10);
		v = (v << 4) | d;
	}
	*out = v;
	return 0;
}

static int is_hex_name(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static uint32_t block_len(const struct entry *e, uint64_t idx)
{
	uint64_t rest = e->size - idx * e->bsize;

	return rest < e->bsize ? (uint32_t)rest : e->bsize;
}

static uint64_t slot_off(uint64_t idx)
{
	return HDR_SIZE + idx * SLOT_SIZE;
}

static void deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int entry_path(const struct fs_bc *bc, const char *name, const char *suffix,
		      char *out, size_t n)
{
	int r = snprintf(out, n, "%s/%.2s/%s%s", bc->dir, name, name, suffix);

	return (r < 0 || (size_t)r >= n) ? -1 : 0;
}

/* ---- index: entries by name, nodes by (entry, idx) ---- */

static size_t name_hash(const char *name)
{
	uint64_t h = 0;

	for (int i = 0; i < 16; i++) {
		char c = name[i];
		h = (h << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return (size_t)h;
}

static size_t node_hash(const struct entry *e, uint64_t idx)
{
	uint64_t h = (uint64_t)(uintptr_t)e * 0x9E3779B97F4A7C15ull;

	h ^= (idx + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
	h ^= h >> 29;
	return (size_t)h;
}

static struct entry *entry_find(struct fs_bc *bc, const char *name)
{
	struct entry *e = bc->eb[name_hash(name) & (bc->enb - 1)];

	while (e && strcmp(e->name, name) != 0)
		e = e->hnext;
	return e;
}

static void entry_index(struct fs_bc *bc, struct entry *e)
{
	size_t b;

	if (bc->ecount >= bc->enb * 2) {
		size_t nn = bc->enb * 2;
		struct entry **t = dm_xcalloc(nn, sizeof *t);

		for (size_t i = 0; i < bc->enb; i++) {
			struct entry *x = bc->eb[i], *next;

			for (; x; x = next) {
				next = x->hnext;
				b = name_hash(x->name) & (nn - 1);
				x->hnext = t[b];
				t[b] = x;
			}
		}
		free(bc->eb);
		bc->eb = t;
		bc->enb = nn;
	}
	b = name_hash(e->name) & (bc->enb - 1);
	e->hnext = bc->eb[b];
	bc->eb[b] = e;
	bc->ecount++;
}

static void entry_unindex(struct fs_bc *bc, struct entry *e)
{
	struct entry **pp = &bc->eb[name_hash(e->name) & (bc->enb - 1)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = e->hnext;
		bc->ecount--;
	}
}

static struct node *node_find(struct fs_bc *bc, const struct entry *e, uint64_t idx)
{
	struct node *n = bc->nb[node_hash(e, idx) & (bc->nnb - 1)];

	while (n && !(n->e == e && n->idx == idx))
		n = n->hnext;
	return n;
}

static struct node *node_add(struct fs_bc *bc, struct entry *e, uint64_t idx, uint8_t state)
{
	struct node *n = dm_xcalloc(1, sizeof *n);
	size_t b;

	if (bc->ncount >= bc->nnb * 2) {
		size_t nn = bc->nnb * 2;
		struct node **t = dm_xcalloc(nn, sizeof *t);

		for (size_t i = 0; i < bc->nnb; i++) {
			struct node *x = bc->nb[i], *next;

			for (; x; x = next) {
				next = x->hnext;
				b = node_hash(x->e, x->idx) & (nn - 1);
				x->hnext = t[b];
				t[b] = x;
			}
		}
		free(bc->nb);
		bc->nb = t;
		bc->nnb = nn;
	}
	n->e = e;
	n->idx = idx;
	n->len = block_len(e, idx);
	n->state = state;
	b = node_hash(e, idx) & (bc->nnb - 1);
	n->hnext = bc->nb[b];
	bc->nb[b] = n;
	bc->ncount++;
	n->enext = e->nodes;
	if (e->nodes)
		e->nodes->eprev = n;
	e->nodes = n;
	e->nnodes++;
	return n;
}

/* Unlink n from the index and its entry (not from the LRU); caller frees. */
static void node_unlink(struct fs_bc *bc, struct node *n)
{
	struct node **pp = &bc->nb[node_hash(n->e, n->idx) & (bc->nnb - 1)];
	struct entry *e = n->e;

	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = n->hnext;
		bc->ncount--;
	}
	if (n->eprev)
		n->eprev->enext = n->enext;
	else
		e->nodes = n->enext;
	if (n->enext)
		n->enext->eprev = n->eprev;
	e->nnodes--;
}

static void lru_remove(struct fs_bc *bc, struct node *n)
{
	n->lprev->lnext = n->lnext;
	n->lnext->lprev = n->lprev;
	n->lprev = n->lnext = NULL;
	bc->lru_bytes -= n->len;
}

static void lru_push(struct fs_bc *bc, struct node *n)
{
	n->lnext = bc->lru.lnext;
	n->lprev = &bc->lru;
	bc->lru.lnext->lprev = n;
	bc->lru.lnext = n;
	bc->lru_bytes += n->len;
}

/* ---- entries: files and references ---- */

static struct entry *entry_alloc(const char *key, const char *name, uint64_t size,
				 uint32_t bsize)
{
	struct entry *e = dm_xcalloc(1, sizeof *e);

	e->key = dm_xstrdup(key);
	memcpy(e->name, name, 33);
	e->size = size;
	e->bsize = bsize;
	e->nblocks = size ? (size - 1) / bsize + 1 : 0;
	e->dfd = e->mfd = -1;
	pthread_mutex_init(&e->mlock, NULL);
	return e;
}

static void entry_free(struct entry *e)
{
	if (e->dfd >= 0)
		close(e->dfd);
	if (e->mfd >= 0)
		close(e->mfd);
	pthread_mutex_destroy(&e->mlock);
	free(e->key);
	free(e);
}

static void entry_unlink_files(struct fs_bc *bc, const struct entry *e)
{
	char p[PATH_MAX];

	if (entry_path(bc, e->name, ".meta", p, sizeof p) == 0)
		unlink(p);
	if (entry_path(bc, e->name, ".data", p, sizeof p) == 0)
		unlink(p);
}

/* Under bc->lock. */
static void entry_open_fds(struct fs_bc *bc, struct entry *e)
{
	char p[PATH_MAX];

	if (e->dfd < 0 && entry_path(bc, e->name, ".data", p, sizeof p) == 0)
		e->dfd = open(p, O_RDWR | O_CLOEXEC);
	if (e->mfd < 0 && entry_path(bc, e->name, ".meta", p, sizeof p) == 0)
		e->mfd = open(p, O_RDWR | O_CLOEXEC);
	if (e->dfd < 0 || e->mfd < 0)
		dm_log(DM_LOG_WARN, WHO, "cannot open cache files of %s (%s/%.2s/%s.*): %s",
		       e->key, bc->dir, e->name, e->name, strerror(errno));
}

/* Under bc->lock. */
static void entry_ref(struct fs_bc *bc, struct entry *e)
{
	if (e->refs++ == 0)
		entry_open_fds(bc, e);
}

/* Under bc->lock.  May free e: the last reference to an entry with no
 * blocks removes its files. */
static void entry_unref(struct fs_bc *bc, struct entry *e)
{
	if (--e->refs > 0)
		return;
	if (e->dfd >= 0)
		close(e->dfd);
	if (e->mfd >= 0)
		close(e->mfd);
	e->dfd = e->mfd = -1;
	if (e->nnodes == 0) {
		entry_unlink_files(bc, e);
		entry_unindex(bc, e);
		entry_free(e);
	}
}

static void hdr_build(unsigned char *h, const struct entry *e)
{
	size_t kl = strlen(e->key);

	memset(h, 0, HDR_SIZE);
	memcpy(h, HDR_MAGIC, 8);
	put32(h + 8, HDR_VERSION);
	put32(h + 12, e->bsize);
	put64(h + 16, e->size);
	put64(h + 24, e->nblocks);
	put32(h + 32, (uint32_t)kl);
	memcpy(h + HDR_KEY_OFF, e->key, kl);
	put32(h + 36, dm_adler32_update(DM_ADLER32_INIT, h, HDR_SIZE));
}

/* Under bc->lock: create the data and metadata files of a new entry. */
static enum dm_status entry_create_files(struct fs_bc *bc, struct entry *e, struct dm_err *err)
{
	char sub[PATH_MAX], dpath[PATH_MAX], mpath[PATH_MAX], tpath[PATH_MAX];
	unsigned char *h = dm_xmalloc(HDR_SIZE);
	enum dm_status rc = DM_OK;
	int dfd = -1, mfd = -1, r;
	const char *what = "";

	r = snprintf(sub, sizeof sub, "%s/%.2s", bc->dir, e->name);
	if (r < 0 || (size_t)r >= sizeof sub || entry_path(bc, e->name, ".data", dpath, sizeof dpath) ||
	    entry_path(bc, e->name, ".meta", mpath, sizeof mpath) ||
	    entry_path(bc, e->name, ".meta.tmp", tpath, sizeof tpath)) {
		rc = dm_seterr(err, DM_EINVAL, NULL, "cache path too long under %s", bc->dir);
		goto out;
	}
	if (mkdir(sub, 0700) != 0 && errno != EEXIST) {
		what = sub;
		goto ioerr;
	}
	dfd = open(dpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (dfd < 0 || ftruncate(dfd, (off_t)e->size) != 0) {
		what = dpath;
		goto ioerr;
	}
	mfd = open(tpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	hdr_build(h, e);
	if (mfd < 0 || pwrite_full(mfd, h, HDR_SIZE, 0) != 0 ||
	    ftruncate(mfd, (off_t)slot_off(e->nblocks)) != 0 || rename(tpath, mpath) != 0) {
		what = tpath;
		goto ioerr;
	}
	e->dfd = dfd;
	e->mfd = mfd;
	dfd = mfd = -1;
	goto out;
ioerr:
	rc = dm_seterr(err, DM_EIO, NULL, "cannot create cache file %s for %s: %s", what, e->key,
		       strerror(errno));
	if (dfd >= 0)
		unlink(dpath);
	if (mfd >= 0)
		unlink(tpath);
out:
	if (dfd >= 0)
		close(dfd);
	if (mfd >= 0)
		close(mfd);
	free(h);
	return rc;
}

/* ---- metadata slots (under e->mlock) ---- */

struct slot {
	uint32_t adler;
	enum sstate state;
	int garbage; /* neither empty nor a valid tag for this index */
};

static void slot_decode(const unsigned char *p, uint64_t idx, struct slot *s)
{
	uint32_t tag = get32(p + 4);

	s->adler = get32(p);
	s->state = S_EMPTY;
	s->garbage = 0;
	if (tag == 0 && s->adler == 0)
		return;
	if ((tag & 0x0FFFFFFFu) == (uint32_t)(idx & 0x0FFFFFFFu)) {
		if (tag >> 28 == TAG_PRESENT) {
			s->state = S_PRESENT;
			return;
		}
		if (tag >> 28 == TAG_KNOWN) {
			s->state = S_KNOWN;
			return;
		}
	}
	s->garbage = 1;
}

static int slot_read(const struct entry *e, uint64_t idx, struct slot *s)
{
	unsigned char p[SLOT_SIZE];

	if (e->mfd < 0 || pread_full(e->mfd, p, SLOT_SIZE, slot_off(idx)) != 0)
		return -1;
	slot_decode(p, idx, s);
	return 0;
}

static int slot_write(const struct entry *e, uint64_t idx, enum sstate st, uint32_t adler)
{
	unsigned char p[SLOT_SIZE];
	uint32_t tag = 0;

	if (st == S_PRESENT)
		tag = (TAG_PRESENT << 28) | (uint32_t)(idx & 0x0FFFFFFFu);
	else if (st == S_KNOWN)
		tag = (TAG_KNOWN << 28) | (uint32_t)(idx & 0x0FFFFFFFu);
	else
		adler = 0;
	put32(p, adler);
	put32(p + 4, tag);
	if (e->mfd < 0 || pwrite_full(e->mfd, p, SLOT_SIZE, slot_off(idx)) != 0)
		return -1;
	return 0;
}

/*
 * Combine the adler32 of every block.  1: matches e->expected; 0: mismatch
 * (*got set); -1: some slot not known or unreadable.
 */
static int verify_slots(const struct entry *e, uint32_t *got)
{
	unsigned char *buf = dm_xmalloc(SLOT_CHUNK * SLOT_SIZE);
	uint32_t a = DM_ADLER32_INIT;
	int res = -1;

	for (uint64_t i = 0; i < e->nblocks; i += SLOT_CHUNK) {
		uint64_t n = e->nblocks - i < SLOT_CHUNK ? e->nblocks - i : SLOT_CHUNK;

		if (e->mfd < 0 || pread_full(e->mfd, buf, n * SLOT_SIZE, slot_off(i)) != 0)
			goto out;
		for (uint64_t j = 0; j < n; j++) {
			struct slot s;

			slot_decode(buf + j * SLOT_SIZE, i + j, &s);
			if (s.state == S_EMPTY)
				goto out;
			a = (uint32_t)adler32_combine(a, s.adler, (z_off_t)block_len(e, i + j));
		}
	}
	*got = a;
	res = a == e->expected;
out:
	free(buf);
	return res;
}

/* Under e->mlock: forget every KNOWN adler32 (after a mismatch). */
static void clear_known(struct entry *e)
{
	unsigned char *buf = dm_xmalloc(SLOT_CHUNK * SLOT_SIZE);

	for (uint64_t i = 0; i < e->nblocks; i += SLOT_CHUNK) {
		uint64_t n = e->nblocks - i < SLOT_CHUNK ? e->nblocks - i : SLOT_CHUNK;

		if (e->mfd < 0 || pread_full(e->mfd, buf, n * SLOT_SIZE, slot_off(i)) != 0)
			break;
		for (uint64_t j = 0; j < n; j++) {
			struct slot s;

			slot_decode(buf + j * SLOT_SIZE, i + j, &s);
			if (s.state == S_KNOWN && slot_write(e, i + j, S_EMPTY, 0) == 0)
				e->nknown--;
		}
	}
	e->verified = 0;
	free(buf);
}

/*
 * Under e->mlock: record block idx as PRESENT with adler a, and verify the
 * whole file when this completes its set of known blocks.
 */
static enum verdict slot_store(struct entry *e, uint64_t idx, uint32_t a, uint32_t *got)
{
	struct slot old;

	if (slot_read(e, idx, &old) != 0)
		return V_IOERR;
	if (old.state != S_EMPTY && e->verified && old.adler != a) {
		*got = old.adler;
		return V_BLOCK_BAD;
	}
	if (slot_write(e, idx, S_PRESENT, a) != 0)
		return V_IOERR;
	if (old.state == S_EMPTY)
		e->nknown++;
	if (e->nknown == e->nblocks && e->has_expected && !e->verified) {
		int v = verify_slots(e, got);

		if (v == 1) {
			e->verified = 1;
			return V_OK;
		}
		if (v == 0)
			return V_BAD;
	}
	return V_NONE;
}

/* ---- flights ---- */

static struct flight *flight_get(struct fs_bc *bc, struct node *n)
{
	if (!n->fl) {
		n->fl = dm_xcalloc(1, sizeof *n->fl);
		pthread_cond_init(&n->fl->cond, &bc->condattr);
	}
	return n->fl;
}

static void flight_free(struct flight *fl)
{
	pthread_cond_destroy(&fl->cond);
	free(fl);
}

/*
 * Under bc->lock: the fetch or eviction of n ended.  st DM_OK: n is PRESENT;
 * DM_AGAIN: n is gone, look again; else the fetch's error for every waiter.
 */
static void flight_finish(struct node *n, enum dm_status st, const struct dm_err *err,
			  int bad_event)
{
	struct flight *fl = n->fl;

	if (!fl)
		return;
	n->fl = NULL;
	fl->done = 1;
	fl->st = st;
	fl->bad_event = bad_event;
	if (st != DM_OK && st != DM_AGAIN) {
		if (err && err->code != DM_OK)
			fl->err = *err;
		else
			dm_seterr(&fl->err, st, NULL, "block fetch failed");
	}
	if (fl->waiters == 0)
		flight_free(fl);
	else
		pthread_cond_broadcast(&fl->cond);
}

/*
 * Under bc->lock: wait for the fetch or eviction of n.  DM_OK / DM_AGAIN:
 * look the block up again; anything else is this read's result.
 */
static enum dm_status flight_wait(struct fs_bc *bc, struct fs_bc_file *f, struct node *n,
				  struct dm_err *err)
{
	struct flight *fl = flight_get(bc, n);
	uint64_t idx = n->idx;
	struct timespec dl;
	enum dm_status st;
	int r = 0;

	deadline(&dl, bc->wait_ms);
	fl->waiters++;
	while (!fl->done && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&fl->cond, &bc->lock, &dl);
	fl->waiters--;
	if (!fl->done) /* the flight stays with its node, which frees it */
		return dm_seterr(err, DM_ETIMEDOUT, NULL,
				 "waited %u ms for block %" PRIu64 " of %s, which another "
				 "reader is fetching", bc->wait_ms, idx, f->e->key);
	st = fl->st;
	if (st != DM_OK && st != DM_AGAIN) {
		if (err)
			*err = fl->err;
		if (fl->bad_event)
			f->seen_bad_gen = f->e->bad_gen;
	}
	if (fl->waiters == 0)
		flight_free(fl);
	return st;
}

/* ---- eviction ---- */

/* Under bc->lock: take a PRESENT, unpinned node out of service. */
static void mark_evicting(struct fs_bc *bc, struct node *n, struct node **victims)
{
	if (n->lnext)
		lru_remove(bc, n);
	n->state = B_EVICTING;
	bc->present -= n->len;
	n->e->present_bytes -= n->len;
	bc->st.evictions++;
	if (n->pf_unread)
		bc->st.prefetch_wasted++;
	entry_ref(bc, n->e);
	n->vnext = *victims;
	*victims = n;
}

static void punch(struct fs_bc *bc, const struct entry *e, uint64_t off, uint64_t len)
{
	if (e->dfd < 0 || len == 0)
		return;
	if (fallocate(e->dfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) != 0 &&
	    !__atomic_exchange_n(&bc->punch_warned, 1, __ATOMIC_RELAXED))
		dm_log(DM_LOG_WARN, WHO,
		       "cannot punch holes in %s (%s): evicted blocks keep their disk space "
		       "until their file is dropped", bc->dir, strerror(errno));
}

/*
 * Without bc->lock: finish evicting the EVICTING nodes on the list: mark
 * their slots (KNOWN, or EMPTY if doomed), make that durable, punch the
 * holes, then free the nodes and wake their waiters.
 */
static void evict_io(struct fs_bc *bc, struct node *victims)
{
	struct node *v, *next;
	struct entry *last = NULL;

	for (v = victims; v; v = v->vnext) {
		struct entry *e = v->e;
		struct slot s;

		pthread_mutex_lock(&e->mlock);
		if (slot_read(e, v->idx, &s) == 0 && s.state != S_EMPTY) {
			if (v->doomed) {
				if (slot_write(e, v->idx, S_EMPTY, 0) == 0)
					e->nknown--;
			} else if (s.state == S_PRESENT) {
				slot_write(e, v->idx, S_KNOWN, s.adler);
			}
		}
		pthread_mutex_unlock(&e->mlock);
	}
	if (bc->sync) {
		for (v = victims; v; v = v->vnext) {
			if (v->e != last && v->e->mfd >= 0)
				fdatasync(v->e->mfd);
			last = v->e;
		}
	}
	for (v = victims; v; v = v->vnext)
		punch(bc, v->e, v->idx * v->e->bsize, v->len);

	pthread_mutex_lock(&bc->lock);
	for (v = victims; v; v = next) {
		struct entry *e = v->e;

		next = v->vnext;
		node_unlink(bc, v);
		flight_finish(v, DM_AGAIN, NULL, 0);
		free(v);
		entry_unref(bc, e);
	}
	pthread_mutex_unlock(&bc->lock);
}

/*
 * Under bc->lock: reserve room for a block of blen bytes, marking LRU
 * victims (appended to *victims, to be passed to evict_io()).  Prefetch
 * gives up rather than evict a prefetched block nobody has read.
 * 0: reserved; -1: no room (nothing was evicted).
 */
static int reserve(struct fs_bc *bc, uint32_t blen, int prefetch, struct node **victims)
{
	uint64_t used = bc->present + bc->reserved, need, freed = 0;
	struct node *n;

	if (blen > bc->max_bytes)
		return -1;
	if (used + blen > bc->max_bytes) {
		need = used + blen - bc->max_bytes;
		if (bc->lru_bytes < need)
			return -1;
		if (prefetch) {
			for (n = bc->lru.lprev; n != &bc->lru && freed < need; n = n->lprev) {
				if (n->pf_unread)
					return -1;
				freed += n->len;
			}
			freed = 0;
		}
		while (freed < need) {
			n = bc->lru.lprev;
			freed += n->len;
			mark_evicting(bc, n, victims);
		}
	}
	bc->reserved += blen;
	return 0;
}

/* Under bc->lock: drop every block of e; pinned and in-flight ones go when
 * they are released. */
static void entry_drop_locked(struct fs_bc *bc, struct entry *e, struct node **victims)
{
	for (struct node *n = e->nodes; n; n = n->enext) {
		if (n->state == B_EVICTING)
			continue;
		n->doomed = 1;
		if (n->state == B_PRESENT && n->pins == 0)
			mark_evicting(bc, n, victims);
	}
}

/* Under bc->lock: a whole-file mismatch on e, found by adler got. */
static void whole_file_bad(struct fs_bc *bc, struct entry *e, uint32_t got, uint32_t expected,
			   struct node **victims)
{
	__atomic_store_n(&e->bad_gen, e->bad_gen + 1, __ATOMIC_RELEASE);
	e->bad_adler = got;
	e->bad_expected = expected;
	bc->st.checksum_failures++;
	dm_log(DM_LOG_WARN, WHO, "adler32 of %s is %08x, expected %08x: dropping its cached blocks",
	       e->key, got, expected);
	entry_drop_locked(bc, e, victims);
}

/* Without bc->lock: finish a drop started by entry_drop_locked(). */
static void drop_finish(struct fs_bc *bc, struct entry *e, struct node *victims)
{
	if (victims)
		evict_io(bc, victims);
	pthread_mutex_lock(&e->mlock);
	clear_known(e);
	pthread_mutex_unlock(&e->mlock);
}

static enum dm_status mismatch_err(const struct entry *e, struct dm_err *err)
{
	return dm_seterr(err, DM_EIO, "ChecksumMismatch",
			 "adler32 of %s is %08x but %08x was expected; its cached blocks "
			 "were dropped", e->key, e->bad_adler, e->bad_expected);
}

/* ---- fetching ---- */

/* The adler32 a fetch callback vouched for (fs_bc_fetch_adler), per thread. */
static __thread int tl_have_adler;
static __thread uint32_t tl_adler;

void fs_bc_fetch_adler(uint32_t adler)
{
	tl_have_adler = 1;
	tl_adler = adler;
}

/* Fetch exactly len bytes (looping over short reads); err untouched on
 * success.  *have_adler (if given): the callback returned all len bytes in
 * one call and gave their adler32 in *adler. */
static enum dm_status fetch_full(struct fs_bc_file *f, uint64_t off, void *buf, size_t len,
				 struct dm_err *err, int *have_adler, uint32_t *adler)
{
	struct dm_err lerr;
	size_t done = 0;

	if (have_adler)
		*have_adler = 0;
	while (done < len) {
		size_t got = 0;
		enum dm_status rc;

		dm_err_clear(&lerr);
		tl_have_adler = 0;
		rc = f->fetch(f->ud, off + done, (char *)buf + done, len - done, &got, &lerr);
		if (rc == DM_OK && have_adler && done == 0 && got == len && tl_have_adler) {
			*have_adler = 1;
			*adler = tl_adler;
		}
		tl_have_adler = 0;
		if (rc != DM_OK) {
			if (lerr.code == DM_OK)
				dm_seterr(&lerr, rc, NULL, "fetching %zu bytes at offset %" PRIu64
					  " of %s failed", len - done, off + done, f->e->key);
			*err = lerr;
			return rc;
		}
		if (got == 0 || got > len - done)
			return dm_seterr(err, DM_EIO, NULL,
					 "source of %s returned %zu bytes at offset %" PRIu64
					 " where %zu were expected: is it shorter than %" PRIu64
					 " bytes?", f->e->key, got, off + done, len - done,
					 f->e->size);
		done += got;
	}
	return DM_OK;
}

static void *buf_get(struct fs_bc *bc, uint32_t len)
{
	void *p = NULL;

	if (len > bc->bsize)
		return dm_xmalloc(len);
	pthread_mutex_lock(&bc->pool_lock);
	if (bc->npool)
		p = bc->pool[--bc->npool];
	pthread_mutex_unlock(&bc->pool_lock);
	return p ? p : dm_xmalloc(bc->bsize);
}

static void buf_put(struct fs_bc *bc, void *p, uint32_t len)
{
	if (len <= bc->bsize) {
		pthread_mutex_lock(&bc->pool_lock);
		if (bc->npool < bc->pool_max) {
			bc->pool[bc->npool++] = p;
			p = NULL;
		}
		pthread_mutex_unlock(&bc->pool_lock);
	}
	free(p);
}

/*
 * Without bc->lock: n is FETCHING with its bytes reserved; evict the
 * victims, fetch the block into buf, store it and publish it.  On return n
 * is PRESENT (DM_OK) or gone.  *have_data: buf holds the block's bytes, even
 * when storing them failed (then DM_AGAIN, and waiters retry).
 */
static enum dm_status fill_block(struct fs_bc *bc, struct fs_bc_file *f, struct node *n,
				 struct node *victims, void *buf, int *have_data, int prefetch,
				 struct dm_err *err)
{
	struct entry *e = n->e;
	uint64_t boff = n->idx * e->bsize;
	uint32_t len = n->len, a, got = 0, expected = 0;
	enum verdict vd = V_NONE;
	struct node *victims2 = NULL;
	enum dm_status rc;
	int stored = 0, vouched = 0;

	*have_data = 0;
	if (victims)
		evict_io(bc, victims);
	rc = fetch_full(f, boff, buf, len, err, &vouched, &a);
	if (rc != DM_OK)
		goto publish;
	*have_data = 1;
	if (!vouched)
		a = dm_adler32_update(DM_ADLER32_INIT, buf, len);
	if (e->dfd < 0 || pwrite_full(e->dfd, buf, len, boff) != 0 ||
	    (bc->sync && fdatasync(e->dfd) != 0)) {
		dm_log(DM_LOG_WARN, WHO, "cannot store block %" PRIu64 " of %s: %s", n->idx,
		       e->key, strerror(errno));
		punch(bc, e, boff, len);
		rc = DM_AGAIN;
		goto publish;
	}
	pthread_mutex_lock(&e->mlock);
	vd = slot_store(e, n->idx, a, &got);
	expected = e->expected;
	pthread_mutex_unlock(&e->mlock);
	if (vd == V_IOERR || vd == V_BLOCK_BAD) {
		punch(bc, e, boff, len);
		if (vd == V_IOERR) {
			dm_log(DM_LOG_WARN, WHO, "cannot record block %" PRIu64 " of %s: %s",
			       n->idx, e->key, strerror(errno));
			rc = DM_AGAIN;
		} else {
			*have_data = 0;
			rc = dm_seterr(err, DM_EIO, "ChecksumMismatch",
				       "block %" PRIu64 " of %s has adler32 %08x, but %08x "
				       "when the file was verified", n->idx, e->key, a, got);
		}
		goto publish;
	}
	stored = 1;
	/* start writing the block out now, so that its pages are clean (and
	 * can be dropped) by the time a sequential reader is past them */
	if (bc->drop_pages && !bc->sync)
		(void)sync_file_range(e->dfd, (off64_t)boff, len, SYNC_FILE_RANGE_WRITE);
publish:
	pthread_mutex_lock(&bc->lock);
	bc->reserved -= len;
	if (rc != DM_OK && rc != DM_AGAIN)
		bc->st.fetch_errors++;
	if (vd == V_BLOCK_BAD)
		bc->st.checksum_failures++;
	if (vd == V_OK)
		bc->st.checksum_ok++;
	if (stored) {
		n->state = B_PRESENT;
		n->pf_unread = (uint8_t)prefetch;
		bc->present += len;
		e->present_bytes += len;
		if (vd == V_BAD) {
			whole_file_bad(bc, e, got, expected, &victims2);
			if (!prefetch)
				f->seen_bad_gen = e->bad_gen;
			rc = mismatch_err(e, err);
		} else if (n->doomed) {
			mark_evicting(bc, n, &victims2);
		} else {
			lru_push(bc, n);
		}
		flight_finish(n, rc, err, vd == V_BAD);
	} else {
		node_unlink(bc, n);
		flight_finish(n, rc, err, 0);
		free(n);
	}
	pthread_mutex_unlock(&bc->lock);
	if (vd == V_BAD)
		drop_finish(bc, e, victims2);
	else if (victims2)
		evict_io(bc, victims2);
	return rc;
}

/* ---- prefetch ---- */

/* Under bc->lock. */
static int pf_enqueue(struct fs_bc *bc, struct fs_bc_file *f, uint64_t idx)
{
	if (bc->qlen == bc->qcap || bc->stop || f->closing)
		return 0;
	bc->q[(bc->qhead + bc->qlen) % bc->qcap] = (struct pf_job){ f, idx };
	bc->qlen++;
	f->jobs++;
	pthread_cond_signal(&bc->qcond);
	return 1;
}

/*
 * Under bc->lock: feed a read to the handle's stream detector.  A read is
 * part of the stream when it starts within seq_tol of the high-water mark
 * (the furthest end read so far), so readahead arriving out of order from
 * several FUSE threads does not break it; reads behind the mark change
 * nothing.  PF_TRIGGER advances start prefetching with a window of one
 * block, which doubles each time the stream enters a new block, up to
 * pf_max.  Anything else is a random jump: reset, no prefetch.
 */
static void pf_observe(struct fs_bc *bc, struct fs_bc_file *f, uint64_t off, size_t len)
{
	struct entry *e = f->e;
	uint64_t end = off + len, lo, oldb, newb, b, last;

	if (bc->pf_max == 0)
		return;
	if (!f->seen) {
		f->seen = 1;
		f->hw = end;
		return;
	}
	lo = f->hw > bc->seq_tol ? f->hw - bc->seq_tol : 0;
	if (off < lo || off > f->hw + bc->seq_tol) {
		if (f->streak)
			bc->st.prefetch_resets++;
		f->hw = end;
		f->streak = 0;
		f->window = 0;
		f->pf_next = 0;
		return;
	}
	if (end <= f->hw)
		return;
	oldb = (f->hw - 1) / e->bsize;
	newb = (end - 1) / e->bsize;
	f->hw = end;
	if (f->streak < PF_TRIGGER)
		f->streak++;
	if (f->streak < PF_TRIGGER)
		return;
	if (f->window == 0)
		f->window = 1;
	else if (newb > oldb)
		f->window = f->window * 2 > bc->pf_max ? bc->pf_max : f->window * 2;
	b = f->pf_next > newb + 1 ? f->pf_next : newb + 1;
	last = newb + f->window;
	for (; b <= last && b < e->nblocks; b++) {
		if (!node_find(bc, e, b) && !pf_enqueue(bc, f, b)) {
			bc->st.prefetch_dropped++;
			break;
		}
		f->pf_next = b + 1;
	}
}

/* Under bc->lock (dropped while fetching): run one prefetch job. */
static void pf_run(struct fs_bc *bc, struct fs_bc_file *f, uint64_t idx)
{
	struct entry *e = f->e;
	struct node *n, *victims = NULL;
	struct dm_err lerr;
	int have;
	void *buf;

	if (f->closing || node_find(bc, e, idx))
		return;
	if (reserve(bc, block_len(e, idx), 1, &victims) != 0) {
		bc->st.prefetch_skipped++;
		return;
	}
	n = node_add(bc, e, idx, B_FETCHING);
	bc->st.fetches++;
	bc->st.prefetches++;
	pthread_mutex_unlock(&bc->lock);
	buf = buf_get(bc, n->len);
	if (fill_block(bc, f, n, victims, buf, &have, 1, &lerr) != DM_OK)
		dm_log(DM_LOG_DEBUG, WHO, "prefetch: %s", lerr.msg);
	buf_put(bc, buf, block_len(e, idx));
	pthread_mutex_lock(&bc->lock);
}

static void *pf_worker(void *arg)
{
	struct fs_bc *bc = arg;

	pthread_mutex_lock(&bc->lock);
	for (;;) {
		struct pf_job job;

		while (!bc->stop && bc->qlen == 0)
			pthread_cond_wait(&bc->qcond, &bc->lock);
		if (bc->stop)
			break;
		job = bc->q[bc->qhead];
		bc->qhead = (bc->qhead + 1) % bc->qcap;
		bc->qlen--;
		bc->running++;
		pf_run(bc, job.f, job.idx);
		bc->running--;
		job.f->jobs--;
		if (job.f->closing && job.f->jobs == 0)
			pthread_cond_broadcast(&bc->jcond);
	}
	pthread_mutex_unlock(&bc->lock);
	return NULL;
}

/* ---- reading ---- */

/*
 * Is block idx, as found on disk at open, the block its slot describes?
 * Blocks are stored without fdatasync: after a crash the slot may say
 * PRESENT over bytes that never reached the disk (or a torn write), which
 * SEEK_HOLE at open catches only for holes.  So a block loaded at open is
 * read once and compared with the slot's adler32 before its first use.
 */
static int block_intact(struct entry *e, uint64_t idx, uint32_t blen)
{
	enum { PIECE = 128u << 10 };
	char *buf = dm_xmalloc(PIECE);
	uint32_t a = DM_ADLER32_INIT;
	struct slot s;
	int ok;

	pthread_mutex_lock(&e->mlock);
	ok = slot_read(e, idx, &s) == 0 && s.state == S_PRESENT;
	pthread_mutex_unlock(&e->mlock);
	for (uint32_t done = 0; ok && done < blen; done += PIECE) {
		uint32_t n = blen - done < PIECE ? blen - done : PIECE;

		ok = e->dfd >= 0 && pread_full(e->dfd, buf, n, idx * e->bsize + done) == 0;
		if (ok)
			a = dm_adler32_update(a, buf, n);
	}
	free(buf);
	return ok && a == s.adler;
}

/*
 * A sequential stream has read block idx to its end.  The reader's kernel
 * keeps those bytes in the FUSE file's page cache, so the data file's copy
 * of them in the page cache is a second one: drop it (a data file is read
 * again from the disk only if the FUSE pages go first).  Pages still dirty
 * or under writeback are skipped by the kernel; the block two behind, clean
 * by now, is dropped again to catch them.  No lock; the handle keeps the
 * entry's descriptors open.
 */
static void drop_behind(struct fs_bc *bc, struct entry *e, uint64_t idx)
{
	if (e->dfd < 0)
		return;
	(void)posix_fadvise(e->dfd, (off_t)(idx * e->bsize), block_len(e, idx),
			    POSIX_FADV_DONTNEED);
	if (idx >= 2)
		(void)posix_fadvise(e->dfd, (off_t)((idx - 2) * e->bsize),
				    block_len(e, idx - 2), POSIX_FADV_DONTNEED);
	pthread_mutex_lock(&bc->lock);
	bc->st.pages_dropped++;
	pthread_mutex_unlock(&bc->lock);
}

/* Read n bytes at inoff of block idx into dst.  Called with bc->lock held
 * (so a hit costs one more lock round trip, to unpin); returns without it. */
static enum dm_status read_block(struct fs_bc *bc, struct fs_bc_file *f, uint64_t idx,
				 char *dst, uint32_t inoff, uint32_t n, struct dm_err *err)
{
	struct entry *e = f->e;
	uint64_t boff = idx * e->bsize;
	uint32_t blen = block_len(e, idx);
	struct node *nd, *victims = NULL;
	enum dm_status rc;
	int counted = 0, have, bad, saved_errno, check;
	char *buf;

	for (;;) {
		nd = node_find(bc, e, idx);
		if (!nd || nd->state == B_PRESENT)
			break;
		if (!counted)
			bc->st.misses++;
		counted = 1;
		rc = flight_wait(bc, f, nd, err);
		if (rc != DM_OK && rc != DM_AGAIN) {
			pthread_mutex_unlock(&bc->lock);
			return rc;
		}
	}
	if (nd) {
		if (!counted)
			bc->st.hits++;
		if (nd->pins++ == 0)
			lru_remove(bc, nd);
		nd->pf_unread = 0;
		check = nd->unverified;
		pthread_mutex_unlock(&bc->lock);
		bad = check && !block_intact(e, idx, blen);
		saved_errno = bad ? EILSEQ : 0;
		if (!bad && (e->dfd < 0 || pread_full(e->dfd, dst, n, boff + inoff) != 0)) {
			bad = 1;
			saved_errno = errno;
		}
		pthread_mutex_lock(&bc->lock);
		if (check && !bad)
			nd->unverified = 0;
		if (bad) {
			if (saved_errno == EILSEQ)
				dm_log(DM_LOG_WARN, WHO, "cached block %" PRIu64 " of %s does not "
				       "match its recorded adler32 (a write lost in a crash?): "
				       "fetched again", idx, e->key);
			else
				dm_log(DM_LOG_WARN, WHO, "cannot read cached block %" PRIu64
				       " of %s: %s", idx, e->key, strerror(saved_errno));
			nd->doomed = 1;
		}
		if (--nd->pins == 0) {
			if (nd->doomed)
				mark_evicting(bc, nd, &victims);
			else
				lru_push(bc, nd);
		}
		if (bad) {
			bc->st.fetches++;
			bc->st.passthrough++;
		}
		pthread_mutex_unlock(&bc->lock);
		if (victims)
			evict_io(bc, victims);
		if (!bad)
			return DM_OK;
		goto passthrough;
	}

	if (!counted)
		bc->st.misses++;
	bc->st.fetches++;
	if (reserve(bc, blen, 0, &victims) != 0) {
		bc->st.passthrough++;
		pthread_mutex_unlock(&bc->lock);
		goto passthrough;
	}
	nd = node_add(bc, e, idx, B_FETCHING);
	pthread_mutex_unlock(&bc->lock);

	buf = (inoff == 0 && n == blen) ? dst : buf_get(bc, blen);
	rc = fill_block(bc, f, nd, victims, buf, &have, 0, err);
	if (have && buf != dst)
		memcpy(dst, buf + inoff, n);
	if (buf != dst)
		buf_put(bc, buf, blen);
	if (rc == DM_AGAIN)
		rc = have ? DM_OK : dm_seterr(err, DM_EIO, NULL, "block %" PRIu64 " of %s lost",
					      idx, e->key);
	return rc;

passthrough:
	rc = fetch_full(f, boff + inoff, dst, n, err, NULL, NULL);
	if (rc != DM_OK) {
		pthread_mutex_lock(&bc->lock);
		bc->st.fetch_errors++;
		pthread_mutex_unlock(&bc->lock);
	}
	return rc;
}

enum dm_status fs_bc_read(struct fs_bc *bc, struct fs_bc_file *f, void *buf, size_t len,
			  uint64_t off, size_t *got, struct dm_err *err)
{
	struct entry *e = f->e;
	enum dm_status rc = DM_OK;
	struct dm_err local;
	uint64_t pos, end, gen;
	int seq;

	if (!err) /* inner functions always report into a record */
		err = &local;
	*got = 0;
	if (off >= e->size || len == 0)
		return DM_OK;
	if (len > e->size - off)
		len = (size_t)(e->size - off);
	end = off + len;

	pthread_mutex_lock(&bc->lock);
	if (f->seen_bad_gen != e->bad_gen) {
		f->seen_bad_gen = e->bad_gen;
		rc = mismatch_err(e, err);
		pthread_mutex_unlock(&bc->lock);
		return rc;
	}
	gen = e->bad_gen;
	pf_observe(bc, f, off, len);
	seq = bc->drop_pages && bc->pf_max && f->streak >= PF_TRIGGER;

	for (pos = off; pos < end;) {
		uint64_t idx = pos / e->bsize, bstart = idx * e->bsize;
		uint64_t bend = bstart + block_len(e, idx);
		uint32_t n = (uint32_t)((end < bend ? end : bend) - pos);

		if (pos != off)
			pthread_mutex_lock(&bc->lock);
		rc = read_block(bc, f, idx, (char *)buf + (pos - off), (uint32_t)(pos - bstart), n,
				err);
		if (rc != DM_OK)
			return rc;
		pos += n;
		if (seq && pos == bend)
			drop_behind(bc, e, idx);
	}
	/* A mismatch found meanwhile (say by a prefetch finishing the file)
	 * concerns the bytes just read: report it now, not on the next read. */
	if (__atomic_load_n(&e->bad_gen, __ATOMIC_ACQUIRE) != gen) {
		pthread_mutex_lock(&bc->lock);
		if (f->seen_bad_gen != e->bad_gen) {
			f->seen_bad_gen = e->bad_gen;
			rc = mismatch_err(e, err);
		}
		pthread_mutex_unlock(&bc->lock);
		if (rc != DM_OK)
			return rc;
	}
	*got = len;
	return DM_OK;
}

/* ---- handles ---- */

enum dm_status fs_bc_file_open(struct fs_bc *bc, const char *key, uint64_t size,
			       const char *adler32, fs_bc_fetch_fn fetch, void *ud,
			       struct fs_bc_file **out, struct dm_err *err)
{
	struct fs_bc_file *f = NULL;
	struct entry *e = NULL;
	struct node *victims = NULL;
	enum dm_status rc = DM_OK;
	uint32_t expected = 0, got = 0;
	size_t kl = key ? strlen(key) : 0;
	int v = -1;
	char name[33];

	*out = NULL;
	if (kl == 0 || kl > FS_BC_KEY_MAX)
		return dm_seterr(err, DM_EINVAL, NULL, "cache key must be 1 to %d bytes, got %zu",
				 FS_BC_KEY_MAX, kl);
	if (!fetch)
		return dm_seterr(err, DM_EINVAL, NULL, "no fetch function for %s", key);
	if (adler32 && parse_adler(adler32, &expected) != 0)
		return dm_seterr(err, DM_EINVAL, NULL,
				 "adler32 of %s must be 8 hex digits, got \"%s\"", key, adler32);
	dm_md5_hex(key, kl, name);

	pthread_mutex_lock(&bc->lock);
	e = entry_find(bc, name);
	if (e && strcmp(e->key, key) != 0) {
		rc = dm_seterr(err, DM_EEXIST, NULL, "cache keys %s and %s have the same md5",
			       e->key, key);
		goto out;
	}
	if (e && e->size != size) {
		if (e->refs) {
			rc = dm_seterr(err, DM_ECONFLICT, NULL,
				       "%s is open with size %" PRIu64 ", not %" PRIu64, key,
				       e->size, size);
			goto out;
		}
		dm_log(DM_LOG_WARN, WHO, "cached %s had size %" PRIu64 ", now %" PRIu64
		       ": discarding it", key, e->size, size);
		entry_ref(bc, e);
		entry_drop_locked(bc, e, &victims);
		pthread_mutex_unlock(&bc->lock);
		evict_io(bc, victims);
		victims = NULL;
		pthread_mutex_lock(&bc->lock);
		entry_unref(bc, e); /* no nodes left: removes its files */
		e = entry_find(bc, name);
		if (e) {
			rc = dm_seterr(err, DM_ECONFLICT, NULL, "%s is in use with size %" PRIu64,
				       key, e->size);
			goto out;
		}
	}
	if (!e) {
		e = entry_alloc(key, name, size, bc->bsize);
		rc = entry_create_files(bc, e, err);
		if (rc != DM_OK) {
			entry_free(e);
			goto out;
		}
		entry_index(bc, e);
		e->refs = 1;
	} else {
		entry_ref(bc, e);
		if (e->dfd < 0 || e->mfd < 0) {
			rc = dm_seterr(err, DM_EIO, NULL, "cannot open the cache files of %s: %s",
				       key, strerror(errno));
			entry_unref(bc, e);
			goto out;
		}
	}
	f = dm_xcalloc(1, sizeof *f);
	f->e = e;
	f->fetch = fetch;
	f->ud = ud;
	f->seen_bad_gen = e->bad_gen;
	bc->nhandles++;
	pthread_mutex_unlock(&bc->lock);

	if (adler32) {
		pthread_mutex_lock(&e->mlock);
		if (!e->has_expected || e->expected != expected) {
			e->has_expected = 1;
			e->expected = expected;
			e->verified = 0;
		}
		if (!e->verified && e->nblocks && e->nknown == e->nblocks) {
			v = verify_slots(e, &got);
			if (v == 1)
				e->verified = 1;
		}
		pthread_mutex_unlock(&e->mlock);
		if (v == 0) {
			pthread_mutex_lock(&bc->lock);
			whole_file_bad(bc, e, got, expected, &victims);
			f->seen_bad_gen = e->bad_gen; /* nothing was read through f */
			pthread_mutex_unlock(&bc->lock);
			drop_finish(bc, e, victims);
		} else if (v == 1) {
			pthread_mutex_lock(&bc->lock);
			bc->st.checksum_ok++;
			pthread_mutex_unlock(&bc->lock);
		}
	}
	*out = f;
	return DM_OK;
out:
	pthread_mutex_unlock(&bc->lock);
	return rc;
}

void fs_bc_file_close(struct fs_bc *bc, struct fs_bc_file *f)
{
	size_t kept = 0;

	if (!f)
		return;
	pthread_mutex_lock(&bc->lock);
	f->closing = 1;
	for (size_t i = 0; i < bc->qlen; i++) {
		struct pf_job j = bc->q[(bc->qhead + i) % bc->qcap];

		if (j.f == f)
			f->jobs--;
		else
			bc->q[(bc->qhead + kept++) % bc->qcap] = j;
	}
	bc->qlen = kept;
	while (f->jobs > 0)
		pthread_cond_wait(&bc->jcond, &bc->lock);
	if (f->e->mfd >= 0)
		futimens(f->e->mfd, NULL); /* recency, for the LRU order after a restart */
	bc->nhandles--;
	entry_unref(bc, f->e);
	pthread_mutex_unlock(&bc->lock);
	free(f);
}

unsigned fs_bc_file_prefetch_window(struct fs_bc *bc, struct fs_bc_file *f)
{
	unsigned w;

	pthread_mutex_lock(&bc->lock);
	w = f->window;
	pthread_mutex_unlock(&bc->lock);
	return w;
}

/* ---- whole cache ---- */

void fs_bc_note_checksum_failure(struct fs_bc *bc)
{
	pthread_mutex_lock(&bc->lock);
	bc->st.checksum_failures++;
	pthread_mutex_unlock(&bc->lock);
}

void fs_bc_get_stats(struct fs_bc *bc, struct fs_bc_stats *st)
{
	pthread_mutex_lock(&bc->lock);
	*st = bc->st;
	st->max_bytes = bc->max_bytes;
	st->bytes_cached = bc->present;
	st->bytes_reserved = bc->reserved;
	st->files = bc->ecount;
	st->prefetch_queued = bc->qlen;
	st->prefetch_running = bc->running;
	pthread_mutex_unlock(&bc->lock);
}

uint64_t fs_bc_cached_bytes(struct fs_bc *bc, const char *key)
{
	struct entry *e;
	uint64_t n = 0;
	char name[33];

	if (!key)
		return 0;
	dm_md5_hex(key, strlen(key), name);
	pthread_mutex_lock(&bc->lock);
	e = entry_find(bc, name);
	if (e && strcmp(e->key, key) == 0)
		n = e->present_bytes;
	pthread_mutex_unlock(&bc->lock);
	return n;
}

enum dm_status fs_bc_drop(struct fs_bc *bc, const char *key, struct dm_err *err)
{
	struct node *victims = NULL;
	struct entry *e;
	char name[33];

	if (!key || !*key)
		return dm_seterr(err, DM_EINVAL, NULL, "empty cache key");
	dm_md5_hex(key, strlen(key), name);
	pthread_mutex_lock(&bc->lock);
	e = entry_find(bc, name);
	if (!e || strcmp(e->key, key) != 0) {
		pthread_mutex_unlock(&bc->lock);
		return DM_OK;
	}
	entry_ref(bc, e);
	entry_drop_locked(bc, e, &victims);
	pthread_mutex_unlock(&bc->lock);
	drop_finish(bc, e, victims);
	pthread_mutex_lock(&bc->lock);
	entry_unref(bc, e);
	pthread_mutex_unlock(&bc->lock);
	return DM_OK;
}

enum dm_status fs_bc_check(struct fs_bc *bc, struct dm_err *err)
{
	uint64_t present = 0, reserved = 0, lru = 0, nodes = 0, entries = 0;
	enum dm_status rc = DM_OK;
	struct node *n;

	pthread_mutex_lock(&bc->lock);
	for (n = bc->lru.lnext; n != &bc->lru; n = n->lnext) {
		if (n->state != B_PRESENT || n->pins) {
			rc = dm_seterr(err, DM_EINTERNAL, NULL, "LRU holds block %" PRIu64
				       " of %s in state %d with %u pins", n->idx, n->e->key,
				       n->state, n->pins);
			goto out;
		}
		lru += n->len;
	}
	for (size_t i = 0; i < bc->enb; i++) {
		for (struct entry *e = bc->eb[i]; e; e = e->hnext) {
			uint64_t ep = 0, en = 0;

			entries++;
			for (n = e->nodes; n; n = n->enext) {
				en++;
				if (node_find(bc, e, n->idx) != n || n->idx >= e->nblocks) {
					rc = dm_seterr(err, DM_EINTERNAL, NULL,
						       "block %" PRIu64 " of %s badly indexed",
						       n->idx, e->key);
					goto out;
				}
				if (n->state == B_PRESENT) {
					ep += n->len;
					if (!n->pins && !n->lnext) {
						rc = dm_seterr(err, DM_EINTERNAL, NULL,
							       "unpinned block %" PRIu64 " of %s "
							       "not on the LRU", n->idx, e->key);
						goto out;
					}
				} else if (n->state == B_FETCHING) {
					reserved += n->len;
				}
			}
			if (ep != e->present_bytes || en != e->nnodes) {
				rc = dm_seterr(err, DM_EINTERNAL, NULL,
					       "%s: %" PRIu64 " bytes in %" PRIu64 " nodes, "
					       "accounted %" PRIu64 " in %" PRIu64, e->key, ep, en,
					       e->present_bytes, e->nnodes);
				goto out;
			}
			present += ep;
			nodes += en;
		}
	}
	if (present != bc->present || reserved != bc->reserved || lru != bc->lru_bytes ||
	    nodes != bc->ncount || entries != bc->ecount) {
		rc = dm_seterr(err, DM_EINTERNAL, NULL,
			       "accounting: present %" PRIu64 "/%" PRIu64 " reserved %" PRIu64
			       "/%" PRIu64 " lru %" PRIu64 "/%" PRIu64 " nodes %" PRIu64 "/%zu "
			       "entries %" PRIu64 "/%zu", present, bc->present, reserved,
			       bc->reserved, lru, bc->lru_bytes, nodes, bc->ncount, entries,
			       bc->ecount);
		goto out;
	}
	if (bc->present + bc->reserved > bc->max_bytes)
		rc = dm_seterr(err, DM_EINTERNAL, NULL, "%" PRIu64 " bytes cached + %" PRIu64
			       " reserved exceed the limit %" PRIu64, bc->present, bc->reserved,
			       bc->max_bytes);
out:
	pthread_mutex_unlock(&bc->lock);
	return rc;
}

/* ---- opening: the on-disk scan ---- */

struct loaded {
	struct entry *e;
	struct timespec mtime;
};

static int block_has_hole(int dfd, uint64_t off, uint64_t len)
{
	off_t h = lseek(dfd, (off_t)off, SEEK_HOLE);

	if (h < 0)
		return errno == ENXIO;
	return (uint64_t)h < off + len;
}

/*
 * Load one entry from <sub>/<name>.meta; anything inconsistent is deleted.
 * Returns the entry (indexed, nodes not yet on the LRU) or NULL.
 */
static struct entry *load_entry(struct fs_bc *bc, const char *name, struct timespec *mtime)
{
	char mpath[PATH_MAX], dpath[PATH_MAX], key[FS_BC_KEY_MAX + 1], kname[33];
	unsigned char *h = dm_xmalloc(HDR_SIZE), *sb = NULL;
	struct entry *e = NULL;
	const char *why = NULL;
	struct stat mst, dst;
	uint32_t bsize, kl, crc;
	uint64_t size, nblocks, run = 0, damaged = 0;
	int mfd = -1, dfd = -1;

	if (entry_path(bc, name, ".meta", mpath, sizeof mpath) ||
	    entry_path(bc, name, ".data", dpath, sizeof dpath))
		goto done;
	mfd = open(mpath, O_RDWR | O_CLOEXEC);
	if (mfd < 0 || fstat(mfd, &mst) != 0 || pread_full(mfd, h, HDR_SIZE, 0) != 0) {
		why = "unreadable header";
		goto bad;
	}
	*mtime = mst.st_mtim;
	crc = get32(h + 36);
	put32(h + 36, 0);
	bsize = get32(h + 12);
	size = get64(h + 16);
	nblocks = get64(h + 24);
	kl = get32(h + 32);
	if (memcmp(h, HDR_MAGIC, 8) != 0 || get32(h + 8) != HDR_VERSION ||
	    crc != dm_adler32_update(DM_ADLER32_INIT, h, HDR_SIZE)) {
		why = "bad header";
		goto bad;
	}
	if (bsize < FS_BC_BLOCK_MIN || bsize > FS_BC_BLOCK_MAX || bsize % 4096 ||
	    nblocks != (size ? (size - 1) / bsize + 1 : 0) || kl == 0 || kl > FS_BC_KEY_MAX ||
	    HDR_KEY_OFF + kl > HDR_SIZE) {
		why = "inconsistent header";
		goto bad;
	}
	memcpy(key, h + HDR_KEY_OFF, kl);
	key[kl] = 0;
	dm_md5_hex(key, kl, kname);
	if (strlen(key) != kl || strcmp(kname, name) != 0) {
		why = "key does not match the file name";
		goto bad;
	}
	if ((uint64_t)mst.st_size < slot_off(nblocks)) {
		why = "truncated metadata";
		goto bad;
	}
	dfd = open(dpath, O_RDWR | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &dst) != 0) {
		why = "missing data file";
		goto bad;
	}
	if ((uint64_t)dst.st_size != size) {
		why = "data file has the wrong size";
		goto bad;
	}

	e = entry_alloc(key, name, size, bsize);
	e->dfd = dfd;
	e->mfd = mfd;
	dfd = mfd = -1;
	sb = dm_xmalloc(SLOT_CHUNK * SLOT_SIZE);
	for (uint64_t i = 0; i < nblocks; i += SLOT_CHUNK) {
		uint64_t n = nblocks - i < SLOT_CHUNK ? nblocks - i : SLOT_CHUNK;

		if (pread_full(e->mfd, sb, n * SLOT_SIZE, slot_off(i)) != 0) {
			why = "unreadable slots";
			goto bad;
		}
		for (uint64_t j = 0; j < n; j++) {
			uint64_t idx = i + j, boff = idx * bsize;
			uint32_t blen = block_len(e, idx);
			struct slot s;

			slot_decode(sb + j * SLOT_SIZE, idx, &s);
			if (s.garbage)
				slot_write(e, idx, S_EMPTY, 0);
			if (s.state == S_PRESENT && block_has_hole(e->dfd, boff, blen)) {
				slot_write(e, idx, S_KNOWN, s.adler);
				s.state = S_KNOWN;
				damaged++;
			}
			if (s.state != S_EMPTY)
				e->nknown++;
			if (s.state == S_PRESENT) {
				node_add(bc, e, idx, B_PRESENT)->unverified = 1;
				e->present_bytes += blen;
				bc->present += blen;
				if (run < idx) /* free leftovers of unrecorded writes */
					punch(bc, e, run * bsize, (idx - run) * bsize);
				run = idx + 1;
			}
		}
	}
	if (run < nblocks)
		punch(bc, e, run * bsize, size - run * bsize);
	if (damaged)
		dm_log(DM_LOG_WARN, WHO, "%s: %" PRIu64 " cached blocks had holes (crash or "
		       "truncation); they will be fetched again", key, damaged);
	if (e->nnodes == 0) { /* nothing cached: do not keep the entry */
		entry_free(e);
		e = NULL;
		unlink(mpath);
		unlink(dpath);
		goto done;
	}
	close(e->dfd);
	close(e->mfd);
	e->dfd = e->mfd = -1;
	entry_index(bc, e);
	goto done;
bad:
	dm_log(DM_LOG_WARN, WHO, "dropping cache entry %s: %s", mpath, why);
	if (e) {
		while (e->nodes) {
			struct node *n = e->nodes;

			bc->present -= n->len;
			node_unlink(bc, n);
			free(n);
		}
		entry_free(e);
		e = NULL;
	}
	unlink(mpath);
	unlink(dpath);
done:
	if (mfd >= 0)
		close(mfd);
	if (dfd >= 0)
		close(dfd);
	free(h);
	free(sb);
	return e;
}

static int cmp_loaded(const void *a, const void *b)
{
	const struct loaded *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return 0;
}

static int ends_with(const char *s, size_t n, const char *suf)
{
	size_t m = strlen(suf);

	return n >= m && memcmp(s + n - m, suf, m) == 0;
}

static void load_dir(struct fs_bc *bc)
{
	struct loaded *arr = NULL;
	size_t narr = 0, cap = 0;
	struct node *victims = NULL;
	DIR *top = opendir(bc->dir);
	struct dirent *de;

	if (!top)
		return;
	while ((de = readdir(top))) {
		char sub[PATH_MAX];
		struct dirent *fe;
		DIR *sd;
		int r;

		if (strlen(de->d_name) != 2 || !is_hex_name(de->d_name, 2))
			continue;
		r = snprintf(sub, sizeof sub, "%s/%s", bc->dir, de->d_name);
		if (r < 0 || (size_t)r >= sizeof sub || !(sd = opendir(sub)))
			continue;
		while ((fe = readdir(sd))) {
			const char *fn = fe->d_name;
			size_t fl = strlen(fn);
			char name[33];

			if (fl < 32 || !is_hex_name(fn, 32) || strncmp(fn, de->d_name, 2) != 0)
				continue;
			memcpy(name, fn, 32);
			name[32] = 0;
			if (ends_with(fn, fl, ".tmp")) {
				unlinkat(dirfd(sd), fn, 0);
			} else if (fl == 37 && ends_with(fn, fl, ".meta")) {
				struct timespec mt = { 0, 0 };
				struct entry *e = load_entry(bc, name, &mt);

				if (!e)
					continue;
				if (narr == cap) {
					cap = cap ? cap * 2 : 64;
					arr = dm_xrealloc(arr, cap * sizeof *arr);
				}
				arr[narr].e = e;
				arr[narr].mtime = mt;
				narr++;
			} else if (fl == 37 && ends_with(fn, fl, ".data")) {
				char meta[40];

				snprintf(meta, sizeof meta, "%s.meta", name);
				if (faccessat(dirfd(sd), meta, F_OK, 0) != 0)
					unlinkat(dirfd(sd), fn, 0);
			}
		}
		closedir(sd);
	}
	closedir(top);

	/* Oldest first, so the most recently used file ends at the LRU head. */
	if (narr)
		qsort(arr, narr, sizeof *arr, cmp_loaded);
	for (size_t i = 0; i < narr; i++)
		for (struct node *n = arr[i].e->nodes; n; n = n->enext)
			lru_push(bc, n);
	free(arr);

	/* The limit may have been lowered since the last run. */
	pthread_mutex_lock(&bc->lock);
	while (bc->present > bc->max_bytes && bc->lru.lprev != &bc->lru)
		mark_evicting(bc, bc->lru.lprev, &victims);
	pthread_mutex_unlock(&bc->lock);
	if (victims)
		evict_io(bc, victims);
}

enum dm_status fs_bc_open(const struct fs_bc_config *cfg, struct fs_bc **out,
			  struct dm_err *err)
{
	struct fs_bc *bc = NULL;
	enum dm_status rc = DM_OK;
	char lpath[PATH_MAX];
	uint32_t bsize;
	unsigned nthreads;
	int r;

	*out = NULL;
	if (!cfg || !cfg->dir || !*cfg->dir)
		return dm_seterr(err, DM_EINVAL, NULL, "no cache directory given");
	if (strlen(cfg->dir) > PATH_MAX - 128)
		return dm_seterr(err, DM_EINVAL, NULL, "cache directory path too long: %s",
				 cfg->dir);
	if (cfg->max_bytes == 0)
		return dm_seterr(err, DM_EINVAL, NULL, "cache size limit must be > 0");
	bsize = cfg->block_size ? cfg->block_size : FS_BC_BLOCK_DEFAULT;
	if (bsize < FS_BC_BLOCK_MIN || bsize > FS_BC_BLOCK_MAX || bsize % 4096)
		return dm_seterr(err, DM_EINVAL, NULL,
				 "cache block size must be 1-16 MiB and a multiple of 4 KiB, "
				 "got %" PRIu32, bsize);

	bc = dm_xcalloc(1, sizeof *bc);
	bc->lockfd = -1;
	bc->dir = dm_xstrdup(cfg->dir);
	bc->max_bytes = cfg->max_bytes;
	bc->bsize = bsize;
	bc->seq_tol = cfg->seq_tolerance ? cfg->seq_tolerance : 16u << 20;
	bc->wait_ms = cfg->wait_timeout_ms ? cfg->wait_timeout_ms : 600000;
	bc->sync = !cfg->no_sync;
	bc->drop_pages = !cfg->keep_pages;
	bc->pf_max = cfg->prefetch_max_blocks ? cfg->prefetch_max_blocks : 8;
	/* a handle's window may use at most a quarter of the cache */
	if ((uint64_t)bc->pf_max > bc->max_bytes / bsize / 4)
		bc->pf_max = (unsigned)(bc->max_bytes / bsize / 4);
	nthreads = cfg->prefetch_threads ? cfg->prefetch_threads : 2;
	if (cfg->no_prefetch || bc->pf_max == 0) {
		bc->pf_max = 0;
		nthreads = 0;
	}
	bc->qcap = cfg->prefetch_queue ? cfg->prefetch_queue : 64;
	bc->q = dm_xcalloc(bc->qcap, sizeof *bc->q);
	bc->enb = 64;
	bc->eb = dm_xcalloc(bc->enb, sizeof *bc->eb);
	bc->nnb = 256;
	bc->nb = dm_xcalloc(bc->nnb, sizeof *bc->nb);
	bc->lru.lnext = bc->lru.lprev = &bc->lru;
	bc->pool_max = 2; /* idle block buffers kept (the rest go back to the system) */
	bc->pool = dm_xcalloc(bc->pool_max, sizeof *bc->pool);
	pthread_mutex_init(&bc->lock, NULL);
	pthread_mutex_init(&bc->pool_lock, NULL);
	pthread_condattr_init(&bc->condattr);
	pthread_condattr_setclock(&bc->condattr, CLOCK_MONOTONIC);
	pthread_cond_init(&bc->qcond, NULL);
	pthread_cond_init(&bc->jcond, NULL);

	if (dm_mkdir_p(bc->dir, 0700) != 0) {
		rc = dm_seterr(err, DM_EIO, NULL, "cannot create cache directory %s: %s", bc->dir,
			       strerror(errno));
		goto fail;
	}
	r = snprintf(lpath, sizeof lpath, "%s/LOCK", bc->dir);
	if (r < 0 || (size_t)r >= sizeof lpath)
		DM_BUG("lock path too long");
	bc->lockfd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (bc->lockfd < 0) {
		rc = dm_seterr(err, DM_EIO, NULL, "cannot open %s: %s", lpath, strerror(errno));
		goto fail;
	}
	if (flock(bc->lockfd, LOCK_EX | LOCK_NB) != 0) {
		rc = dm_seterr(err, errno == EWOULDBLOCK ? DM_EEXIST : DM_EIO, NULL,
			       "cache directory %s is in use by another cache (%s)", bc->dir,
			       strerror(errno));
		goto fail;
	}
	load_dir(bc);

	bc->workers = dm_xcalloc(nthreads ? nthreads : 1, sizeof *bc->workers);
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&bc->workers[bc->nworkers], NULL, pf_worker, bc) != 0) {
			dm_log(DM_LOG_WARN, WHO, "could only start %u of %u prefetch threads",
			       bc->nworkers, nthreads);
			break;
		}
		bc->nworkers++;
	}
	if (bc->nworkers == 0)
		bc->pf_max = 0;
	dm_log(DM_LOG_INFO, WHO, "cache %s: %" PRIu64 " of %" PRIu64 " bytes in %zu files, "
	       "blocks of %" PRIu32 " bytes", bc->dir, bc->present, bc->max_bytes, bc->ecount,
	       bc->bsize);
	*out = bc;
	return DM_OK;
fail:
	fs_bc_close(bc);
	return rc;
}

void fs_bc_close(struct fs_bc *bc)
{
	if (!bc)
		return;
	pthread_mutex_lock(&bc->lock);
	bc->stop = 1;
	for (size_t i = 0; i < bc->qlen; i++)
		bc->q[(bc->qhead + i) % bc->qcap].f->jobs--;
	bc->qlen = 0;
	pthread_cond_broadcast(&bc->qcond);
	pthread_mutex_unlock(&bc->lock);
	for (unsigned i = 0; i < bc->nworkers; i++)
		pthread_join(bc->workers[i], NULL);
	if (bc->nhandles)
		DM_BUG("block cache %s closed with %u open handles", bc->dir, bc->nhandles);

	for (size_t i = 0; bc->eb && i < bc->enb; i++) {
		struct entry *e = bc->eb[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			while (e->nodes) {
				struct node *n = e->nodes;

				node_unlink(bc, n);
				if (n->fl)
					flight_free(n->fl);
				free(n);
			}
			entry_free(e);
		}
	}
	for (unsigned i = 0; i < bc->npool; i++)
		free(bc->pool[i]);
	if (bc->lockfd >= 0)
		close(bc->lockfd); /* releases the flock */
	pthread_cond_destroy(&bc->qcond);
	pthread_cond_destroy(&bc->jcond);
	pthread_condattr_destroy(&bc->condattr);
	pthread_mutex_destroy(&bc->pool_lock);
	pthread_mutex_destroy(&bc->lock);
	free(bc->pool);
	free(bc->workers);
	free(bc->q);
	free(bc->eb);
	free(bc->nb);
	free(bc->dir);
	free(bc);
}
