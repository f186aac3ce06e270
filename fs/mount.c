/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mount.c - the FUSE session of didfs: options, the libfuse3 low-level ops
 * table, thread-local catalog handles, the background thread and the
 * process life cycle of `didfs mount`.
 *
 * Life cycle
 *   1. The mountpoint is checked: a stale mount left by a crashed daemon
 *      (stat fails with ENOTCONN) is lazily unmounted first; a live mount
 *      there is refused.  The catalog must open.
 *   2. Unless --foreground, the process forks; the child opens the block
 *      cache, the transfer context and the FUSE session, mounts, and tells
 *      the parent over a pipe "ready" (the parent exits 0) or why it failed
 *      (the parent prints it and exits 1).  Threads start only after the fork.
 *   3. A multithreaded session loop serves requests with a bounded number of
 *      FUSE workers (--threads, 2 per CPU by default: they do catalog work
 *      and local reads only) plus the I/O pool of data.c (--io-threads, for
 *      reads that wait on storage) and the block cache's prefetch threads.
 *   4. SIGTERM / SIGINT / SIGHUP end the loop (libfuse's handlers), as does
 *      `fusermount3 -u` (the kernel ends the connection).  The background
 *      thread and the I/O pool stop, the mount is removed, files the kernel
 *      never released are closed, then the cache and the catalog handles.
 *      Teardown is bounded: I/O threads stuck on storage are given 2 s and
 *      then left behind, and a timer detaches the mount and exits the
 *      process TEARDOWN_GRACE seconds after the session ended in any case.
 *
 * Kernel settings negotiated in init: readdirplus always (not AUTO, so
 * `ls -l` never falls back to a lookup per entry), no automatic page cache
 * invalidation (file content is immutable), 1 MiB requests (max_write ->
 * max_pages 256, libfuse 3.14's cap), 64 background requests for parallel
 * readahead.  The first request after INIT raises the mount's bdi
 * read_ahead_kb (--read-ahead, 16 MiB) in /sys/class/bdi/<major:minor> when
 * permitted, as gcsfuse does (fs_readahead_once): the kernel's default
 * 128 KiB readahead would cap READs at 128 KiB.
 *
 * The background thread (bg_main) wakes every second: it sends the queued
 * attribute invalidations (fs_inval_later, used after xattr writes: a
 * handler must not notify about its own inode), and every POLL_INTERVAL
 * polls the updated_at of open collections the kernel listed recently
 * (fs_ns_poll), invalidating the kernel's attributes and cached listing of
 * those that changed.
 *
 * The catalog handles of the threads, error texts, the invalidation queue
 * and the readahead are session.c's (below ns.c, data.c and xattr.c, which
 * use them).
 */
#include "fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define POLL_INTERVAL 2.0
#define POLL_MAX 256

/* ------------------------------------------------------------------ */
/* the background thread                                               */

static void poll_changed(struct fs *fs, uint64_t ino, const char *scope, const char *name,
			 int64_t updated_at, int is_open, void *ud)
{
	/* attributes and the cached listing of the collection */
	fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
	dm_log(DM_LOG_DEBUG, WHO_FS, "%s:%s changed: kernel cache dropped", scope, name);
}

static void *bg_main(void *arg)
{
	struct fs *fs = arg;
	double last_poll = 0;

	pthread_mutex_lock(&fs->bg_lock);
	while (!fs->bg_stop) {
		struct timespec ts;
		struct fs_inval *inval = NULL;
		size_t ninval = 0;
		double now;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (!fs->ninval || !fs->init_done)
			pthread_cond_timedwait(&fs->bg_cond, &fs->bg_lock, &ts);
		if (fs->bg_stop)
			break;
		if (!fs->init_done)
			continue;
		if (fs->ninval) {
			inval = fs->inval;
			ninval = fs->ninval;
			fs->inval = NULL;
			fs->ninval = fs->inval_cap = 0;
		}
		pthread_mutex_unlock(&fs->bg_lock);

		for (size_t i = 0; i < ninval; i++)
			fuse_lowlevel_notify_inval_inode(fs->se, inval[i].ino, inval[i].data ? 0 : -1, 0);
		free(inval);
		now = dm_now_f();
		if (now - last_poll >= POLL_INTERVAL) {
			last_poll = now;
			fs_ns_poll(fs, now, POLL_INTERVAL, POLL_MAX, poll_changed, NULL);
		}
		pthread_mutex_lock(&fs->bg_lock);
	}
	pthread_mutex_unlock(&fs->bg_lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* ops                                                                 */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
		conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	conn->max_write = FS_MAX_READ;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1000000000;
	dm_log(DM_LOG_INFO, WHO_FS, "FUSE protocol %u.%u, readdirplus %s, max_readahead %u",
	       conn->proto_major, conn->proto_minor,
	       conn->want & FUSE_CAP_READDIRPLUS ? "on" : "off", conn->max_readahead);
	pthread_mutex_lock(&fs->bg_lock);
	fs->init_done = 1;
	pthread_cond_signal(&fs->bg_cond);
	pthread_mutex_unlock(&fs->bg_lock);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_bc_stats s;
	struct statvfs st;

	fs_bc_get_stats(fs->bc, &s);
	memset(&st, 0, sizeof st);
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_blocks = s.max_bytes / 4096;
	st.f_bfree = st.f_bavail = s.max_bytes > s.bytes_cached ? (s.max_bytes - s.bytes_cached) / 4096 : 0;
	pthread_mutex_lock(&fs->ns_lock);
	st.f_files = fs->nino + fs->nghost;
	pthread_mutex_unlock(&fs->ns_lock);
	st.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &st);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	fuse_reply_err(req, mask & W_OK ? EROFS : 0);
}

/* The tree is read-only: every change of the namespace or of data is EROFS. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = fs_op_lookup,
	.forget = fs_op_forget,
	.forget_multi = fs_op_forget_multi,
	.getattr = fs_op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = op_write,
	.release = fs_op_release,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.readdirplus = fs_op_readdirplus,
	.releasedir = fs_op_releasedir,
	.statfs = op_statfs,
	.setxattr = fs_op_setxattr,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.removexattr = fs_op_removexattr,
	.access = op_access,
	.create = op_create,
	.fallocate = op_fallocate,
};

/* ------------------------------------------------------------------ */
/* start-up                                                            */

/* An absolute path for a mountpoint without touching it (a stale mount
 * fails every access): realpath of its parent + its last component. */
static char *abs_mountpoint(const char *mp)
{
	char *dup = dm_xstrdup(mp), *slash, parent[PATH_MAX], *out = NULL;
	size_t n = strlen(dup);

	while (n > 1 && dup[n - 1] == '/')
		dup[--n] = 0;
	slash = strrchr(dup, '/');
	if (!slash) {
		if (realpath(".", parent))
			out = dm_xstrdup(parent);
	} else if (slash == dup) {
		out = dm_xstrdup("/");
	} else {
		*slash = 0;
		if (realpath(dup, parent))
			out = dm_xstrdup(parent);
		*slash = '/';
	}
	if (out) {
		struct dm_buf b = DM_BUF_INIT;
		const char *base = slash ? slash + 1 : dup;
		if (!*base || !strcmp(base, ".")) {
			dm_buf_adds(&b, out);
		} else {
			dm_buf_adds(&b, out);
			if (b.len > 1)
				dm_buf_addc(&b, '/');
			dm_buf_adds(&b, base);
		}
		free(out);
		out = dm_buf_detach(&b);
	}
	free(dup);
	return out;
}

static int is_mounted(const char *mp)
{
	char bdi[64];

	return fs_find_bdi(mp, bdi, sizeof bdi) == 0;
}

/* A stale mount (ENOTCONN) is lazily unmounted; a live mount refused. */
static enum dm_status check_mountpoint(const char *mp, struct dm_err *err)
{
	struct stat st;

	if (stat(mp, &st) == 0) {
		if (is_mounted(mp))
			return dm_seterr(err, DM_EEXIST, "MountpointBusy",
					 "%s is already a FUSE mount (fusermount3 -u %s first)", mp, mp);
		if (!S_ISDIR(st.st_mode))
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "mountpoint %s is not a directory", mp);
		return DM_OK;
	}
	if (errno != ENOTCONN && errno != ECONNABORTED)
		return dm_seterr(err, DM_ENOENT, "InputValidationError", "mountpoint %s: %s", mp,
				 strerror(errno));
	dm_log(DM_LOG_WARN, WHO_FS, "%s: a stale mount (transport endpoint is not connected): "
	       "unmounting it first", mp);
	if (umount2(mp, MNT_DETACH) != 0) {
		pid_t pid = fork();
		if (pid == 0) {
			execlp("fusermount3", "fusermount3", "-u", "-z", mp, (char *)NULL);
			_exit(127);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	if (stat(mp, &st) != 0 || !S_ISDIR(st.st_mode))
		return dm_seterr(err, DM_EIO, "MountpointBusy",
				 "%s: could not clean up a stale mount: %s", mp, strerror(errno));
	return DM_OK;
}

static char *default_cache_dir(void)
{
	const char *e = getenv("DIDFS_CACHE_DIR");
	struct dm_buf b = DM_BUF_INIT;

	if (e && *e)
		return dm_xstrdup(e);
	if ((e = getenv("XDG_CACHE_HOME")) && *e)
		dm_buf_addf(&b, "%s/didfs", e);
	else if ((e = getenv("HOME")) && *e)
		dm_buf_addf(&b, "%s/.cache/didfs", e);
	else
		dm_buf_adds(&b, "/var/cache/didfs");
	return dm_buf_detach(&b);
}

static void defaults(struct fs_opts *o)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (ncpu < 1)
		ncpu = 1;
	if (!o->cache_size)
		o->cache_size = 10ull << 30;
	if (!o->block_size)
		o->block_size = FS_BC_BLOCK_DEFAULT;
	if (o->timeout_s <= 0)
		o->timeout_s = 60;
	if (o->threads <= 0)
		o->threads = (int)(ncpu * 2 < 2 ? 2 : ncpu * 2 > 16 ? 16 : ncpu * 2);
	if (o->io_threads <= 0)
		o->io_threads = 8; /* as fast as 16 for cold reads, 8 MiB less of reply buffers */
	if (!o->read_ahead_kb)
		o->read_ahead_kb = 16384;
	if (o->dir_ttl <= 0)
		o->dir_ttl = 5.0;
}

/* Memory settings, before any thread starts (issue: RSS grew to ~125 MB
 * over 20 GiB read and kept 52 MB after listing 100,000 files).  glibc
 * gives every thread that allocates its own arena (up to 8 per CPU) and,
 * after the first block-sized buffer is freed, raises its mmap threshold so
 * that later 4 MiB buffers come from those arenas and stay there: two
 * arenas, block-sized buffers always mmapped (and so returned on free), and
 * free tops trimmed from 1 MiB.  SQLite's page caches (one per thread's
 * catalog handle) share one soft limit, so listing a large dataset from
 * several FUSE workers does not keep a full cache per worker.  MALLOC_*
 * variables in the environment are applied by glibc before this and are
 * overridden here. */
#define FS_MALLOC_ARENAS 2
#define FS_MMAP_THRESHOLD (256 << 10)
#define FS_TRIM_THRESHOLD (1 << 20)
#define FS_SQLITE_HEAP ((sqlite3_int64)8 << 20)

static void memory_limits(void)
{
	mallopt(M_ARENA_MAX, FS_MALLOC_ARENAS);
	mallopt(M_MMAP_THRESHOLD, FS_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, FS_TRIM_THRESHOLD);
	sqlite3_soft_heap_limit64(FS_SQLITE_HEAP);
}

/* Tell the waiting parent how the start went (once). */
static void report(int *fd, enum dm_status rc, const struct dm_err *err)
{
	char msg[1300];
	int n;

	if (*fd < 0)
		return;
	if (rc == DM_OK)
		n = snprintf(msg, sizeof msg, "OK\n");
	else
		n = snprintf(msg, sizeof msg, "ERR %s\t%s\n", err->cls[0] ? err->cls : "RucioException",
			     err->msg);
	if (write(*fd, msg, (size_t)n) < 0)
		dm_log(DM_LOG_WARN, WHO_FS, "cannot tell the parent process: %s", strerror(errno));
	close(*fd);
	*fd = -1;
}

/* The parent: wait for the child's word. */
static enum dm_status await_child(int fd, pid_t pid, struct dm_err *err)
{
	char buf[1400];
	size_t got = 0;
	ssize_t r;

	while (got < sizeof buf - 1 && (r = read(fd, buf + got, sizeof buf - 1 - got)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t)r;
		if (memchr(buf, '\n', got))
			break;
	}
	buf[got] = 0;
	close(fd);
	if (strncmp(buf, "OK\n", 3) == 0)
		return DM_OK;
	if (strncmp(buf, "ERR ", 4) == 0) {
		char *tab = strchr(buf, '\t'), *nl = strchr(buf, '\n');
		if (nl)
			*nl = 0;
		if (tab) {
			*tab = 0;
			return dm_seterr(err, DM_EIO, buf + 4, "%s", tab + 1);
		}
	}
	waitpid(pid, NULL, WNOHANG);
	return dm_seterr(err, DM_EIO, "RucioException", "the mount process ended before the mount "
			 "was ready (see its log)");
}

static enum dm_status open_log(struct fs *fs, FILE **logf, struct dm_err *err)
{
	struct dm_buf path = DM_BUF_INIT;

	dm_log_set_level(fs->o.debug ? DM_LOG_DEBUG : DM_LOG_INFO);
	if (fs->o.foreground && !fs->o.log_file)
		return DM_OK;
	if (fs->o.log_file)
		dm_buf_adds(&path, fs->o.log_file);
	else
		dm_buf_addf(&path, "%s/mount.log", fs->cache_dir);
	*logf = fopen(path.s, "a");
	if (!*logf) {
		dm_seterr(err, DM_EIO, "RucioException", "cannot open the log %s: %s", path.s,
			  strerror(errno));
		dm_buf_release(&path);
		return DM_EIO;
	}
	setvbuf(*logf, NULL, _IOLBF, 0);
	dm_log_set_file(*logf);
	dm_buf_release(&path);
	return DM_OK;
}

/* Why fuse_session_mount() failed, named from what can be checked here (the
 * details libfuse and fusermount3 print go to the log): no access to
 * /dev/fuse first, then allow_other without user_allow_other. */
static void mount_failure(struct fs *fs, struct dm_err *err)
{
	int dev_ok = access("/dev/fuse", R_OK | W_OK) == 0;
	int saved = errno;
	int conf_ok = 0;
	FILE *f;

	if (!dev_ok) {
		dm_seterr(err, DM_EIO, "RucioException", "cannot mount on %s: /dev/fuse: %s "
			  "(the user needs read and write access to /dev/fuse)", fs->mountpoint,
			  strerror(saved));
		return;
	}
	if (fs->o.allow_other && geteuid() != 0) {
		if ((f = fopen("/etc/fuse.conf", "r"))) {
			char line[256];
			while (fgets(line, sizeof line, f))
				if (!strncmp(line + strspn(line, " \t"), "user_allow_other", 16))
					conf_ok = 1;
			fclose(f);
		}
		if (!conf_ok) {
			dm_seterr(err, DM_EIO, "RucioException", "cannot mount on %s: --allow-other "
				  "needs user_allow_other in /etc/fuse.conf", fs->mountpoint);
			return;
		}
	}
	dm_seterr(err, DM_EIO, "RucioException", "cannot mount on %s (the log names the cause)",
		  fs->mountpoint);
}

/* Once the session has ended, teardown waits on nothing but storage can
 * hold (I/O threads, prefetches, XrdCl's own threads): if it has not ended
 * after TEARDOWN_GRACE seconds the mount is detached and the process exits,
 * so unmount and SIGTERM take a few seconds whatever storage does. */
#define TEARDOWN_GRACE 4

static void *teardown_timer(void *arg)
{
	struct fs *fs = arg;
	struct timespec ts = { TEARDOWN_GRACE, 0 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	dm_log(DM_LOG_WARN, WHO_FS, "storage still holds threads %d s after the session ended: "
	       "detaching %s and exiting without waiting", TEARDOWN_GRACE, fs->mountpoint);
	if (umount2(fs->mountpoint, MNT_DETACH) != 0) {
		pid_t pid = fork();

		if (pid == 0) {
			execlp("fusermount3", "fusermount3", "-u", "-z", fs->mountpoint, (char *)NULL);
			_exit(127);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	_exit(0);
	return NULL;
}

/* Everything after the fork: open, mount, serve, tear down. */
static enum dm_status serve(struct fs *fs, int *ready_fd, struct dm_err *err)
{
	struct fs_bc_config bcc = { 0 };
	struct xfer_config xc = { 0 };
	struct dm_cred_env ce;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	enum dm_status rc = DM_OK;
	struct dm_buf mopts = DM_BUF_INIT;
	int mounted = 0, handlers = 0, loop_rc;

	bcc.dir = fs->cache_dir;
	bcc.max_bytes = fs->o.cache_size;
	bcc.block_size = fs->o.block_size;
	bcc.prefetch_threads = 4;
	bcc.prefetch_max_blocks = 8;
	/* no read waits on the disk: blocks found at open are verified before use */
	bcc.no_sync = 1;
	bcc.wait_timeout_ms = (unsigned)(2 * fs->o.timeout_s + 30) * 1000u;
	rc = fs_bc_open(&bcc, &fs->bc, err);
	if (rc)
		goto out;
	dm_cred_env(&ce);
	xc.ca_path = fs->o.ca_path ? fs->o.ca_path : ce.ca_dir;
	xc.client_cert = ce.user_cert;
	xc.client_key = ce.user_key;
	xc.bearer_token = ce.bearer_token;
	xc.timeout_s = fs->o.timeout_s;
	xc.stall_timeout_s = fs->o.timeout_s;
	xc.connect_timeout_s = fs->o.timeout_s < 10 ? fs->o.timeout_s : 10;
	rc = xfer_ctx_new(&xc, &fs->xfer, err);
	if (rc)
		goto out;
	if (!fs_db(fs, err)) {
		rc = DM_EIO;
		goto out;
	}
	if (fs_data_init(fs)) {
		rc = dm_seterr(err, DM_EINTERNAL, "RucioException", "cannot start the I/O threads");
		goto out;
	}
	fuse_opt_add_arg(&args, "didfs");
	dm_buf_adds(&mopts, "fsname=didfs,subtype=didfs,noatime");
	if (fs->o.allow_other)
		dm_buf_adds(&mopts, ",allow_other");
	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, mopts.s);
	if (fs->o.debug)
		fuse_opt_add_arg(&args, "-d");
	if (fs->o.metrics && (rc = fs_metrics_start(fs, fs->o.metrics, err)) != DM_OK)
		goto out;
	fs->se = fuse_session_new(&args, fs_metrics_ops(&ops), sizeof ops, fs);
	if (!fs->se) {
		rc = dm_seterr(err, DM_EINVAL, "RucioException", "cannot create the FUSE session "
			       "(is /dev/fuse there?)");
		goto out;
	}
	if (fuse_set_signal_handlers(fs->se) != 0) {
		rc = dm_seterr(err, DM_EINTERNAL, "RucioException", "cannot install signal handlers");
		goto out;
	}
	handlers = 1;
	if (fuse_session_mount(fs->se, fs->mountpoint) != 0) {
		mount_failure(fs, err);
		rc = DM_EIO;
		goto out;
	}
	mounted = 1;
	if (pthread_create(&fs->bg, NULL, bg_main, fs) == 0)
		fs->bg_started = 1;
	char shown[1024];
	cat_uri_shown(fs->catalog, shown, sizeof shown);
	dm_log(DM_LOG_INFO, WHO_FS, "mounted %s on %s (cache %s, %llu bytes, %u-byte blocks, "
	       "%d FUSE threads, %d I/O threads, timeout %d s)", shown, fs->mountpoint,
	       fs->cache_dir, (unsigned long long)fs->o.cache_size, fs->o.block_size, fs->o.threads,
	       fs->o.io_threads, fs->o.timeout_s);
	report(ready_fd, DM_OK, NULL);

	lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, (unsigned)fs->o.threads);
	fuse_loop_cfg_set_idle_threads(lc, (unsigned)fs->o.threads);
	loop_rc = fuse_session_loop_mt(fs->se, lc);
	dm_log(DM_LOG_INFO, WHO_FS, "session ended (%d): unmounting %s", loop_rc, fs->mountpoint);
	{
		pthread_t t;
		pthread_attr_t a;

		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, teardown_timer, fs) != 0)
			dm_log(DM_LOG_WARN, WHO_FS, "cannot start the teardown timer");
		pthread_attr_destroy(&a);
	}
out:
	if (fs->bg_started) {
		pthread_mutex_lock(&fs->bg_lock);
		fs->bg_stop = 1;
		pthread_cond_signal(&fs->bg_cond);
		pthread_mutex_unlock(&fs->bg_lock);
		pthread_join(fs->bg, NULL);
	}
	fs_metrics_stop();
	if (fs->npool || fs->pool)
		fs_data_stop(fs);
	if (mounted)
		fuse_session_unmount(fs->se);
	if (handlers)
		fuse_remove_signal_handlers(fs->se);
	if (fs->se)
		fuse_session_destroy(fs->se);
	if (lc)
		fuse_loop_cfg_destroy(lc);
	fuse_opt_free_args(&args);
	dm_buf_release(&mopts);
	/* an I/O thread still on storage uses the cache and the transfer context */
	if (fs->bc && !fs->pool_stuck)
		fs_bc_close(fs->bc);
	if (fs->xfer && !fs->pool_stuck)
		xfer_ctx_free(fs->xfer);
	if (rc) {
		dm_log(DM_LOG_ERROR, WHO_FS, "mount failed: %s", fs_errmsg(err));
		report(ready_fd, rc, err);
	}
	return rc;
}

/* The background process: stdin and stdout to /dev/null, stderr to the log
 * (libfuse and XrdCl write there).  Libraries that kept copies of the
 * caller's stdout/stderr (XrdCl's logger dups fd 2 when it loads) get the
 * same treatment, or they would hold the caller's pipe open for good. */
static void detach_stdio(FILE *logf)
{
	int nul = open("/dev/null", O_RDWR);
	struct stat out, err, st;
	int have_out = fstat(1, &out) == 0, have_err = fstat(2, &err) == 0;

	if (nul < 0)
		return;
	for (int fd = 3; fd < 1024; fd++) {
		if (fd == nul || (logf && fd == fileno(logf)) || fstat(fd, &st))
			continue;
		if ((have_out && st.st_dev == out.st_dev && st.st_ino == out.st_ino) ||
		    (have_err && st.st_dev == err.st_dev && st.st_ino == err.st_ino))
			dup2(logf ? fileno(logf) : nul, fd);
	}
	dup2(nul, 0);
	dup2(nul, 1);
	dup2(logf ? fileno(logf) : nul, 2);
	if (nul > 2)
		close(nul);
}

enum dm_status fs_mount(const struct fs_opts *opts, int *is_child, struct dm_err *err)
{
	struct fs *fs = dm_xcalloc(1, sizeof *fs);
	struct cat_db *probe = NULL;
	enum dm_status rc = DM_OK;
	FILE *logf = NULL;
	int pipefd[2] = { -1, -1 }, ready_fd = -1, users = 0;
	char path[PATH_MAX];

	*is_child = 0;
	fs->o = *opts;
	defaults(&fs->o);
	fs->uid = getuid();
	fs->gid = getgid();
	fs->started = dm_now_f();
	fs->ttl = fs->o.dir_ttl;
	fs->cache_dir = fs->o.cache_dir ? dm_xstrdup(fs->o.cache_dir) : default_cache_dir();
	if (dm_mkdir_p(fs->cache_dir, 0755)) {
		rc = dm_seterr(err, DM_EIO, "RucioException", "cache directory %s: %s", fs->cache_dir,
			       strerror(errno));
		goto out;
	}
	if (realpath(fs->cache_dir, path)) {
		free(fs->cache_dir);
		fs->cache_dir = dm_xstrdup(path);
	}
	if (!strncmp(fs->o.catalog, "https://", 8) || !strncmp(fs->o.catalog, "http://", 7)) {
		/* a REST catalog (catalog/rest/): its local catalog cache lives in
		 * the mount's cache directory, and each call ends within --timeout */
		char t[16];
		snprintf(t, sizeof t, "%d", fs->o.timeout_s);
		setenv("DIDFS_CACHE_DIR", fs->cache_dir, 1);
		setenv("DIDFS_TIMEOUT", t, 1);
	}
	/* The catalog as the user named it (a path or a URI); the threads
	 * reopen it by the location the catalog gives, valid after the mount
	 * changed directory. */
	if (cat_open(fs->o.catalog, 0, &probe, err)) {
		rc = err->code;
		goto out;
	}
	{
		struct dm_buf loc = DM_BUF_INIT;
		cat_location(probe, &loc);
		fs->catalog = dm_buf_detach(&loc);
		fs->remote = !strncmp(fs->catalog, "https://", 8) || !strncmp(fs->catalog, "http://", 7);
	}
	if (fs->o.account && cat_set_issuer(probe, fs->o.account)) {
		*err = *cat_error(probe);
		rc = err->code;
		cat_close(probe);
		goto out;
	}
	cat_close(probe);
	fs->mountpoint = abs_mountpoint(fs->o.mountpoint);
	if (!fs->mountpoint) {
		rc = dm_seterr(err, DM_ENOENT, "InputValidationError", "mountpoint %s: %s",
			       fs->o.mountpoint, strerror(errno));
		goto out;
	}
	rc = open_log(fs, &logf, err);
	if (rc)
		goto out;
	rc = fs_users_init(fs, err); /* the uid map: refused before the mount starts */
	users = 1;
	if (rc)
		goto out;
	rc = check_mountpoint(fs->mountpoint, err);
	if (rc)
		goto out;
	if (!fs->o.foreground) {
		pid_t pid;
		if (pipe(pipefd)) {
			rc = dm_seterr(err, DM_EIO, "RucioException", "pipe: %s", strerror(errno));
			goto out;
		}
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			rc = dm_seterr(err, DM_EIO, "RucioException", "fork: %s", strerror(errno));
			goto out;
		}
		if (pid > 0) {
			close(pipefd[1]);
			rc = await_child(pipefd[0], pid, err);
			goto out;
		}
		*is_child = 1;
		close(pipefd[0]);
		ready_fd = pipefd[1];
		detach_stdio(logf);
		setsid();
		if (chdir("/"))
			dm_log(DM_LOG_WARN, WHO_FS, "chdir /: %s", strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
	memory_limits();
	fs_db_init(fs);
	pthread_mutex_init(&fs->bg_lock, NULL);
	pthread_cond_init(&fs->bg_cond, NULL);
	fs_ns_init(fs);
	rc = serve(fs, &ready_fd, err);
	fs_ns_destroy(fs);
	fs_db_close_all(fs);
	pthread_mutex_destroy(&fs->bg_lock);
	pthread_cond_destroy(&fs->bg_cond);
	free(fs->inval);
out:
	if (users)
		fs_users_destroy(fs);
	if (logf) {
		dm_log_set_file(stderr);
		fclose(logf);
	}
	free(fs->catalog);
	free(fs->mountpoint);
	free(fs->cache_dir);
	free(fs);
	return rc;
}
