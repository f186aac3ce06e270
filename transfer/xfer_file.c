/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xfer_file.c - the file:// back-end (Rucio's posix.Default): URLs
 * file:///abs/path and file://host/abs/path both name the local path
 * /abs/path (the host part is ignored, as Rucio's posix protocol does with
 * "localhost").  Every operation is plain POSIX I/O: streamed reads feed
 * the download sink, uploads create missing parent directories, a
 * "third-party copy" between two file:// URLs is a local copy, checksums
 * are computed by reading the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xfer_int.h"

#define FILE_BUF (1u << 20)

static enum dm_status file_path(const char *url, const struct xfer_url *u, struct dm_err *err)
{
	if (u->path[0] != '/')
		return dm_seterr(err, DM_EINVAL, NULL,
				 "%s: a file URL needs an absolute path (file:///path)", url);
	return DM_OK;
}

static enum dm_status errno_err(const char *url, const char *what, int e, int dest,
				struct dm_err *err)
{
	const char *cls;
	enum dm_status st = xfer_errno_status(e, dest, &cls);

	return dm_seterr(err, st, cls, "%s: %s: %s", url, what, strerror(e));
}

static enum dm_status file_stat(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
				struct xfer_stat *st, struct dm_err *err)
{
	struct stat sb;
	enum dm_status rc = file_path(url, u, err);

	if (rc != DM_OK)
		return rc;
	if (stat(u->path, &sb) != 0)
		return errno_err(url, "stat failed", errno, 0, err);
	st->size = (uint64_t)sb.st_size;
	st->is_dir = S_ISDIR(sb.st_mode);
	return DM_OK;
}

static enum dm_status open_read(const char *url, const struct xfer_url *u, int *fd,
				struct dm_err *err)
{
	struct stat sb;
	enum dm_status rc = file_path(url, u, err);

	if (rc != DM_OK)
		return rc;
	*fd = open(u->path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return errno_err(url, "open failed", errno, 0, err);
	if (fstat(*fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		close(*fd);
		*fd = -1;
		return dm_seterr(err, DM_EINVAL, NULL, "%s: is a directory, not a file", url);
	}
	return DM_OK;
}

static enum dm_status file_pread(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
				 void *buf, size_t len, uint64_t off, size_t *got,
				 struct dm_err *err)
{
	int fd = -1;
	size_t done = 0;
	enum dm_status rc = open_read(url, u, &fd, err);

	if (rc != DM_OK)
		return rc;
	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = errno_err(url, "read failed", errno, 0, err);
			goto out;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*got = done;
out:
	close(fd);
	return rc;
}

static enum dm_status file_get(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			       xfer_sink_fn sink, void *arg, struct dm_err *err)
{
	int fd = -1;
	char *buf = NULL;
	enum dm_status rc = open_read(url, u, &fd, err);

	if (rc != DM_OK)
		return rc;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	buf = dm_xmalloc(FILE_BUF);
	for (;;) {
		ssize_t r = read(fd, buf, FILE_BUF);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = errno_err(url, "read failed", errno, 0, err);
			goto out;
		}
		if (r == 0)
			break;
		rc = sink(arg, buf, (size_t)r);
		if (rc != DM_OK)
			goto out;
	}
out:
	free(buf);
	close(fd);
	return rc;
}

/* Copy all of fd into path (created or truncated, parents made). */
static enum dm_status copy_fd_to(int fd, const char *path, const char *url, struct dm_err *err)
{
	enum dm_status rc = DM_OK;
	char *buf = NULL;
	int out = -1, e;

	e = dm_mkdir_parent(path, 0755);
	if (e)
		return errno_err(url, "cannot create parent directories", e, 1, err);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return errno_err(url, "cannot create file", errno, 1, err);
	buf = dm_xmalloc(FILE_BUF);
	for (;;) {
		ssize_t r = read(fd, buf, FILE_BUF), w;
		char *p = buf;

		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = errno_err(url, "reading the source failed", errno, 0, err);
			goto out;
		}
		if (r == 0)
			break;
		while (r > 0) {
			w = write(out, p, (size_t)r);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				rc = errno_err(url, "write failed", errno, 1, err);
				goto out;
			}
			p += w;
			r -= w;
		}
	}
out:
	free(buf);
	if (close(out) != 0 && rc == DM_OK)
		rc = errno_err(url, "close failed", errno, 1, err);
	if (rc != DM_OK)
		unlink(path);
	return rc;
}

static enum dm_status file_put(struct xfer_ctx *ctx, int fd, uint64_t size,
			       const char *local_path, const char *url, const struct xfer_url *u,
			       struct dm_err *err)
{
	enum dm_status rc = file_path(url, u, err);

	if (rc != DM_OK)
		return rc;
	return copy_fd_to(fd, u->path, url, err);
}

static enum dm_status file_del(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			       struct dm_err *err)
{
	enum dm_status rc = file_path(url, u, err);

	if (rc != DM_OK)
		return rc;
	if (unlink(u->path) == 0)
		return DM_OK;
	if (errno == EISDIR && rmdir(u->path) == 0)
		return DM_OK;
	return errno_err(url, "delete failed", errno, 0, err);
}

static enum dm_status file_rename(struct xfer_ctx *ctx, const char *from,
				  const struct xfer_url *fu, const char *to,
				  const struct xfer_url *tu, struct dm_err *err)
{
	enum dm_status rc = file_path(from, fu, err);
	int e;

	if (rc != DM_OK)
		return rc;
	rc = file_path(to, tu, err);
	if (rc != DM_OK)
		return rc;
	if (access(fu->path, F_OK) != 0)
		return errno_err(from, "rename failed", errno, 0, err);
	e = dm_mkdir_parent(tu->path, 0755);
	if (e)
		return errno_err(to, "cannot create parent directories", e, 1, err);
	if (rename(fu->path, tu->path) != 0) {
		e = errno;
		return dm_seterr(err, xfer_errno_status(e, 0, NULL), NULL,
				 "rename %s -> %s failed: %s", from, to, strerror(e));
	}
	return DM_OK;
}

static enum dm_status file_checksum(struct xfer_ctx *ctx, const char *url,
				    const struct xfer_url *u, const char *type, char *out,
				    size_t outlen, struct dm_err *err)
{
	char adler[9], md5[33];
	struct dm_err e2;
	int want_md5 = strcmp(type, "md5") == 0;
	struct stat sb;
	enum dm_status rc = file_path(url, u, err);

	if (rc != DM_OK)
		return rc;
	if (stat(u->path, &sb) != 0)
		return errno_err(url, "checksum failed", errno, 0, err);
	if (S_ISDIR(sb.st_mode))
		return dm_seterr(err, DM_EINVAL, NULL, "%s: is a directory, not a file", url);
	rc = dm_file_checksums(u->path, NULL, adler, want_md5 ? md5 : NULL, &e2);
	if (rc != DM_OK)
		return dm_seterr(err, rc, e2.cls, "%s: checksum failed: %s", url, e2.msg);
	dm_strlcpy(out, want_md5 ? md5 : adler, outlen);
	return DM_OK;
}

static enum dm_status file_tpc(struct xfer_ctx *ctx, const char *src, const struct xfer_url *su,
			       const char *dst, const struct xfer_url *du, struct dm_err *err)
{
	int fd = -1;
	enum dm_status rc = file_path(dst, du, err);
	struct stat a, b;

	if (rc != DM_OK)
		return rc;
	rc = open_read(src, su, &fd, err);
	if (rc != DM_OK)
		return rc;
	if (fstat(fd, &a) == 0 && stat(du->path, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino) {
		close(fd);
		return dm_seterr(err, DM_EINVAL, NULL, "copy %s -> %s: source and destination are the same file",
				 src, dst);
	}
	rc = copy_fd_to(fd, du->path, dst, err);
	close(fd);
	return rc;
}

static enum dm_status file_mkdir_p(struct xfer_ctx *ctx, const char *url,
				   const struct xfer_url *u, struct dm_err *err)
{
	int e;
	enum dm_status rc = file_path(url, u, err);

	if (rc != DM_OK)
		return rc;
	e = dm_mkdir_p(u->path, 0755);
	if (e)
		return errno_err(url, "mkdir failed", e, 1, err);
	return DM_OK;
}

const struct xfer_backend xfer_file_backend = {
	.name = "file",
	.stat = file_stat,
	.pread = file_pread,
	.get = file_get,
	.put = file_put,
	.del = file_del,
	.rename = file_rename,
	.checksum = file_checksum,
	.tpc = file_tpc,
	.mkdir_p = file_mkdir_p,
	.ctx_free = NULL,
};
