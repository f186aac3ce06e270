/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fsmetrics.c - the metrics of `didfs mount --metrics ADDR:PORT`
 * (util/metrics.h is the registry and the exporter thread).
 *
 * Per-operation latency: with metrics on, the session gets a copy of the
 * operations table (fs_metrics_ops) whose lookup, getattr, opendir,
 * readdir(plus), open, getxattr, listxattr, setxattr, removexattr, statfs
 * entries time the call around the real one (these reply before they
 * return); reads reply from an I/O thread when the data is not cached, so
 * data.c times them itself from arrival to reply (fs_metrics_read).  With
 * metrics off the original table is used and a read pays one test.
 *   didfs_mount_operation_duration_seconds{op}
 * Counters read from the block cache and the mount at scrape time (no cost
 * on the data path):
 *   didfs_mount_cache_bytes, _cache_reserved_bytes, _cache_limit_bytes,
 *   _cache_files, _cache_hits_total, _cache_misses_total, _cache_hit_ratio
 *   (hits / (hits + misses) since start), _fetches_total,
 *   _fetch_errors_total, _prefetches_total, _cache_evictions_total,
 *   _checksum_failures_total, _eio_total (reads answered EIO),
 *   _fallovers_total (a fetch moved to the next replica: counted in
 *   data.c)
 * and the process figures.
 */
#include "fs_i.h"
#include "metrics.h"

#include <string.h>

static struct fuse_lowlevel_ops base, wrapped;
static struct fs *mfs;
static struct dm_m_family *op_dur;
static struct dm_m_series *s_read, *s_fallover;
static struct dm_m_family *g_bytes, *g_res, *g_limit, *g_files, *c_hits, *c_miss, *g_ratio,
	*c_fetch, *c_ferr, *c_pref, *c_evict, *c_cksum, *c_eio, *c_fall;

enum { OP_LOOKUP, OP_GETATTR, OP_OPENDIR, OP_READDIR, OP_READDIRPLUS, OP_OPEN, OP_GETXATTR,
       OP_LISTXATTR, OP_SETXATTR, OP_REMOVEXATTR, OP_STATFS, OP_N };
static const char *const op_names[OP_N] = { "lookup", "getattr", "opendir", "readdir",
	"readdirplus", "open", "getxattr", "listxattr", "setxattr", "removexattr", "statfs" };
static struct dm_m_series *op_s[OP_N];

#define TIMED(op, call) do { double t0_ = dm_m_now(); call; \
	dm_m_observe(op_s[op], dm_m_now() - t0_); } while (0)

static void w_lookup(fuse_req_t r, fuse_ino_t p, const char *n)
{ TIMED(OP_LOOKUP, base.lookup(r, p, n)); }
static void w_getattr(fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi)
{ TIMED(OP_GETATTR, base.getattr(r, i, fi)); }
static void w_opendir(fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi)
{ TIMED(OP_OPENDIR, base.opendir(r, i, fi)); }
static void w_readdir(fuse_req_t r, fuse_ino_t i, size_t sz, off_t off, struct fuse_file_info *fi)
{ TIMED(OP_READDIR, base.readdir(r, i, sz, off, fi)); }
static void w_readdirplus(fuse_req_t r, fuse_ino_t i, size_t sz, off_t off,
			  struct fuse_file_info *fi)
{ TIMED(OP_READDIRPLUS, base.readdirplus(r, i, sz, off, fi)); }
static void w_open(fuse_req_t r, fuse_ino_t i, struct fuse_file_info *fi)
{ TIMED(OP_OPEN, base.open(r, i, fi)); }
static void w_getxattr(fuse_req_t r, fuse_ino_t i, const char *n, size_t sz)
{ TIMED(OP_GETXATTR, base.getxattr(r, i, n, sz)); }
static void w_listxattr(fuse_req_t r, fuse_ino_t i, size_t sz)
{ TIMED(OP_LISTXATTR, base.listxattr(r, i, sz)); }
static void w_setxattr(fuse_req_t r, fuse_ino_t i, const char *n, const char *v, size_t sz, int fl)
{ TIMED(OP_SETXATTR, base.setxattr(r, i, n, v, sz, fl)); }
static void w_removexattr(fuse_req_t r, fuse_ino_t i, const char *n)
{ TIMED(OP_REMOVEXATTR, base.removexattr(r, i, n)); }
static void w_statfs(fuse_req_t r, fuse_ino_t i)
{ TIMED(OP_STATFS, base.statfs(r, i)); }

const struct fuse_lowlevel_ops *fs_metrics_ops(const struct fuse_lowlevel_ops *ops)
{
	if (!dm_m_enabled())
		return ops;
	base = *ops;
	wrapped = *ops;
#define W(field) if (base.field) wrapped.field = w_##field
	W(lookup); W(getattr); W(opendir); W(readdir); W(readdirplus); W(open); W(getxattr);
	W(listxattr); W(setxattr); W(removexattr); W(statfs);
#undef W
	return &wrapped;
}

double fs_metrics_t0(void)
{
	return s_read ? dm_m_now() : 0;
}

void fs_metrics_read(double t0)
{
	if (t0 > 0)
		dm_m_observe(s_read, dm_m_now() - t0);
}

void fs_metrics_fallover(void)
{
	dm_m_add(s_fallover, 1);
}

static void collect(void *ud)
{
	struct fs_bc_stats st;
	uint64_t eio;

	if (!mfs || !mfs->bc)
		return;
	fs_bc_get_stats(mfs->bc, &st);
	eio = __atomic_load_n(&mfs->n_read_err, __ATOMIC_RELAXED);
	dm_m_set(dm_m_series(g_bytes), (double)st.bytes_cached);
	dm_m_set(dm_m_series(g_res), (double)st.bytes_reserved);
	dm_m_set(dm_m_series(g_limit), (double)st.max_bytes);
	dm_m_set(dm_m_series(g_files), (double)st.files);
	dm_m_set(dm_m_series(c_hits), (double)st.hits);
	dm_m_set(dm_m_series(c_miss), (double)st.misses);
	dm_m_set(dm_m_series(g_ratio), st.hits + st.misses ? (double)st.hits / (double)(st.hits + st.misses) : 0);
	dm_m_set(dm_m_series(c_fetch), (double)st.fetches);
	dm_m_set(dm_m_series(c_ferr), (double)st.fetch_errors);
	dm_m_set(dm_m_series(c_pref), (double)st.prefetches);
	dm_m_set(dm_m_series(c_evict), (double)st.evictions);
	dm_m_set(dm_m_series(c_cksum), (double)st.checksum_failures);
	dm_m_set(dm_m_series(c_eio), (double)eio);
}

static struct dm_m_family *fam(enum dm_m_type t, const char *name, const char *help)
{
	return dm_m_family(t, name, help, NULL, NULL, 0);
}

enum dm_status fs_metrics_start(struct fs *fs, const char *addr, struct dm_err *err)
{
	static const char *const lop[] = { "op", NULL };
	enum dm_status rc;

	op_dur = dm_m_family(DM_M_HISTOGRAM, "didfs_mount_operation_duration_seconds",
			     "Time from a FUSE request's arrival to its reply, by operation.", lop, NULL, 0);
	g_bytes = fam(DM_M_GAUGE, "didfs_mount_cache_bytes", "Bytes of blocks stored in the cache.");
	g_res = fam(DM_M_GAUGE, "didfs_mount_cache_reserved_bytes", "Cache bytes reserved by fetches in progress.");
	g_limit = fam(DM_M_GAUGE, "didfs_mount_cache_limit_bytes", "The cache's size limit (--cache-size).");
	g_files = fam(DM_M_GAUGE, "didfs_mount_cache_files", "Files with blocks in the cache.");
	c_hits = fam(DM_M_COUNTER, "didfs_mount_cache_hits_total", "Block accesses served from the cache.");
	c_miss = fam(DM_M_COUNTER, "didfs_mount_cache_misses_total", "Block accesses that fetched or waited for a fetch.");
	g_ratio = fam(DM_M_GAUGE, "didfs_mount_cache_hit_ratio", "hits / (hits + misses) since the mount started.");
	c_fetch = fam(DM_M_COUNTER, "didfs_mount_fetches_total", "Block fetches from storage (readers, prefetch, pass-through).");
	c_ferr = fam(DM_M_COUNTER, "didfs_mount_fetch_errors_total", "Block fetches that failed.");
	c_pref = fam(DM_M_COUNTER, "didfs_mount_prefetches_total", "Block fetches started by prefetch.");
	c_evict = fam(DM_M_COUNTER, "didfs_mount_cache_evictions_total", "Blocks evicted from the cache.");
	c_cksum = fam(DM_M_COUNTER, "didfs_mount_checksum_failures_total", "Whole-file or per-piece checksum mismatches.");
	c_eio = fam(DM_M_COUNTER, "didfs_mount_eio_total", "Reads answered with EIO.");
	c_fall = fam(DM_M_COUNTER, "didfs_mount_fallovers_total", "Fetches that moved on to the next replica.");
	mfs = fs;
	rc = dm_m_http_start(addr, err);
	if (rc != DM_OK) {
		mfs = NULL;
		return rc;
	}
	for (int i = 0; i < OP_N; i++)
		op_s[i] = dm_m_series(op_dur, op_names[i]);
	s_read = dm_m_series(op_dur, "read");
	s_fallover = dm_m_series(c_fall);
	dm_m_collector_add(collect, NULL);
	return DM_OK;
}

void fs_metrics_stop(void)
{
	if (!mfs)
		return;
	dm_m_http_stop();
	dm_m_collector_remove(collect, NULL);
	mfs = NULL;
}
