/* SPDX-License-Identifier: Apache-2.0 */
/*
 * uidmap.c - the --uid-map file of the mount (uid or user name -> account)
 * and the environment-block lookup used to find a caller's credentials; see
 * uidmap.h for the format.  Pure functions plus one loader that does the
 * file's safety checks; no FUSE, so the fuzz target links this alone.
 */
#include "uidmap.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp_ent(const void *a, const void *b)
{
	const struct fs_uidmap_ent *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* A uid in decimal, 0 .. 2^32-2 ((uid_t)-1 means "no uid"). */
static int parse_uid(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v >= UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return n > 0;
}

/* A printable copy of a field for an error message. */
static void shown(char *dst, size_t size, const char *s, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; i < n && j + 5 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x7f)
			dst[j++] = (char)ch;
		else
			j += (size_t)snprintf(dst + j, size - j, "\\x%02x", ch);
	}
	dst[j] = 0;
}

enum dm_status fs_uidmap_parse(const char *text, size_t len, const char *origin,
			       fs_uidmap_resolve_fn resolve, void *ud, struct fs_uidmap *out,
			       struct dm_err *err)
{
	struct fs_uidmap m = { 0 };
	size_t cap = 0, pos = 0, lineno = 0;
	char show[256];

	out->v = NULL;
	out->n = 0;
	if (len > FS_UIDMAP_MAX_BYTES)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "%s: larger than %u bytes", origin, FS_UIDMAP_MAX_BYTES);
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		const char *f[3];
		size_t fl[3];
		int nf = 0;
		size_t i = 0;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n && line[n - 1] == '\r')
			n--;
		if (n > FS_UIDMAP_MAX_LINE) {
			dm_seterr(err, DM_EINVAL, "InputValidationError",
				  "%s line %zu: longer than %u characters", origin, lineno,
				  FS_UIDMAP_MAX_LINE);
			goto fail;
		}
		for (size_t k = 0; k < n; k++) {
			if (line[k] == '#') {
				n = k;
				break;
			}
			if (line[k] == '\0' || line[k] == '\r') {
				dm_seterr(err, DM_EINVAL, "InputValidationError",
					  "%s line %zu: holds a %s character", origin, lineno,
					  line[k] ? "CR" : "NUL");
				goto fail;
			}
		}
		while (i < n) {
			while (i < n && (line[i] == ' ' || line[i] == '\t'))
				i++;
			if (i == n)
				break;
			if (nf == 3)
				break;
			f[nf] = line + i;
			while (i < n && line[i] != ' ' && line[i] != '\t')
				i++;
			fl[nf] = (size_t)(line + i - f[nf]);
			nf++;
		}
		if (nf == 0)
			continue;
		if (nf != 2) {
			dm_seterr(err, DM_EINVAL, "InputValidationError",
				  "%s line %zu: expected \"<uid-or-user> <account>\", found %s field%s",
				  origin, lineno, nf == 1 ? "one" : "more than two", nf == 1 ? "" : "s");
			goto fail;
		}
		{
			struct fs_uidmap_ent e = { 0 };
			struct dm_err ae = { 0 };
			char user[256];

			if (all_digits(f[0], fl[0])) {
				if (parse_uid(f[0], fl[0], &e.uid)) {
					shown(show, sizeof show, f[0], fl[0]);
					dm_seterr(err, DM_EINVAL, "InputValidationError",
						  "%s line %zu: uid '%s' is out of range", origin, lineno,
						  show);
					goto fail;
				}
			} else {
				if (fl[0] >= sizeof user || !resolve) {
					shown(show, sizeof show, f[0], fl[0]);
					dm_seterr(err, DM_EINVAL, "InputValidationError",
						  "%s line %zu: unknown user '%s'", origin, lineno, show);
					goto fail;
				}
				memcpy(user, f[0], fl[0]);
				user[fl[0]] = 0;
				if (resolve(user, &e.uid, ud)) {
					shown(show, sizeof show, f[0], fl[0]);
					dm_seterr(err, DM_EINVAL, "InputValidationError",
						  "%s line %zu: unknown user '%s'", origin, lineno, show);
					goto fail;
				}
			}
			if (fl[1] > CAT_ACCOUNT_MAX) {
				shown(show, sizeof show, f[1], fl[1]);
				dm_seterr(err, DM_EINVAL, "InvalidObject",
					  "%s line %zu: invalid account '%s': must match ^[a-z0-9-_]+$"
					  " and be at most %d characters", origin, lineno, show,
					  CAT_ACCOUNT_MAX);
				goto fail;
			}
			memcpy(e.account, f[1], fl[1]);
			e.account[fl[1]] = 0;
			if (cat_validate_account(e.account, &ae)) {
				dm_seterr(err, DM_EINVAL, ae.cls, "%s line %zu: %s", origin, lineno, ae.msg);
				goto fail;
			}
			e.line = (unsigned)lineno;
			if (m.n == cap) {
				cap = cap ? cap * 2 : 16;
				m.v = dm_xrealloc(m.v, cap * sizeof *m.v);
			}
			m.v[m.n++] = e;
		}
	}
	if (m.n)
		qsort(m.v, m.n, sizeof *m.v, cmp_ent);
	for (size_t k = 1; k < m.n; k++) {
		if (m.v[k].uid == m.v[k - 1].uid) {
			unsigned a = m.v[k - 1].line, b = m.v[k].line;
			dm_seterr(err, DM_EINVAL, "InputValidationError",
				  "%s line %u: uid %u is mapped twice (also on line %u)", origin,
				  a > b ? a : b, (unsigned)m.v[k].uid, a > b ? b : a);
			goto fail;
		}
	}
	*out = m;
	return DM_OK;
fail:
	free(m.v);
	return err->code;
}

static int resolve_pw(const char *user, uint32_t *uid, void *ud)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];

	(void)ud;
	if (getpwnam_r(user, &pw, buf, sizeof buf, &pwp) != 0 || !pwp)
		return -1;
	*uid = (uint32_t)pwp->pw_uid;
	return 0;
}

enum dm_status fs_uidmap_load(const char *path, uid_t owner, struct fs_uidmap *out,
			      struct dm_err *err)
{
	struct stat st;
	char *text;
	size_t got = 0;
	enum dm_status rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	out->v = NULL;
	out->n = 0;
	if (fd < 0)
		return dm_seterr(err, DM_ENOENT, "InputValidationError", "--uid-map %s: %s", path,
				 strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "--uid-map %s: not a regular file", path);
	}
	if (st.st_uid != 0 && st.st_uid != owner) {
		close(fd);
		return dm_seterr(err, DM_EPERM, "AccessDenied",
				 "--uid-map %s is owned by uid %u: it must belong to root or to the"
				 " user who mounts (uid %u)", path, (unsigned)st.st_uid, (unsigned)owner);
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		close(fd);
		return dm_seterr(err, DM_EPERM, "AccessDenied",
				 "--uid-map %s is writable by %s (mode %04o): others could choose"
				 " which account they act as; chmod go-w it", path,
				 st.st_mode & S_IWOTH ? "everyone" : "its group",
				 (unsigned)(st.st_mode & 07777));
	}
	if ((uint64_t)st.st_size > FS_UIDMAP_MAX_BYTES) {
		close(fd);
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "--uid-map %s: larger than %u bytes", path, FS_UIDMAP_MAX_BYTES);
	}
	text = dm_xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	rc = fs_uidmap_parse(text, got, path, resolve_pw, NULL, out, err);
	free(text);
	return rc;
}

const char *fs_uidmap_find(const struct fs_uidmap *m, uint32_t uid)
{
	size_t lo = 0, hi = m ? m->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->v[mid].uid == uid)
			return m->v[mid].account;
		if (m->v[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void fs_uidmap_free(struct fs_uidmap *m)
{
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

const char *fs_environ_find(const char *buf, size_t len, const char *key, size_t *vlen)
{
	size_t klen = strlen(key), pos = 0;

	while (pos < len) {
		const char *e = buf + pos, *z = memchr(e, '\0', len - pos);
		size_t n = z ? (size_t)(z - e) : len - pos;

		if (n > klen && e[klen] == '=' && memcmp(e, key, klen) == 0) {
			*vlen = n - klen - 1;
			return e + klen + 1;
		}
		pos += n + 1;
	}
	return NULL;
}
