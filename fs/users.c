/* SPDX-License-Identifier: Apache-2.0 */
/*
 * users.c - who a FUSE request comes from and what it may do (issue 11,
 * item 5: each local user acts as themselves), and the per-uid catalog
 * handles that carry out its changes.
 *
 * Roles of a calling uid U (fs_who):
 *   OWNER   U is the user who mounted (root when root mounted; without
 *           --allow-other nobody else reaches the mount).  Acts as the
 *           uid map's account for U if there is one, else as --account;
 *           with the mount's own credentials.
 *   MAPPED  the --uid-map file names an account for U (by uid or user name,
 *           see uidmap.h).  Acts as that account: on a remote catalog with
 *           U's own credentials when U has some, else the mount's.
 *   CREDS   remote catalogs only: U is not mapped but has credentials of
 *           its own; acts as its identity's default account, authenticated
 *           by the server with U's proxy or token.
 *   NONE    anyone else: reads data and metadata (the mount's credentials
 *           and block cache are shared) but every change is refused with
 *           EACCES, the reason in U's own user.rucio.error.  Storage paths
 *           are hidden from NONE (fs_who_sees_pfns): PFNs in
 *           user.rucio.replicas read "-", eos.url.xroot is absent, and
 *           URLs in data-path errors are shown as "<storage URL>".
 * A local catalog cannot verify a certificate or token, so there U's
 * credentials give it nothing; only the map does.  Root is not special
 * unless it mounted (map uid 0 to let it change things on a user's mount).
 *
 * Credentials discovery for U, as WLCG tools look them up:
 *   X.509 proxy   X509_USER_PROXY in the calling process's environment
 *                 (/proc/<pid>/environ, used only when that process runs
 *                 as U), else /tmp/x509up_u<U>
 *   bearer token  BEARER_TOKEN_FILE from that environment, else
 *                 $XDG_RUNTIME_DIR/bt_u<U>, else /tmp/bt_u<U>
 * A candidate is taken only when it is a regular file (not a symbolic
 * link), owned by U, with no group or other permission bits for reading or
 * writing, and at most 64 KiB: uid A can never make the mount use a file of
 * B's, nor B one that A planted for it.  Refused candidates are named in
 * the refusal text.  On a remote catalog the checked content is copied
 * into <cache-dir>/creds/ (0700; files 0600, owned by the mount) and the
 * catalog handle is given that copy, so a file swapped after the check is
 * never read; the copies are removed at unmount.  The result is cached per
 * uid for FS_WHO_TTL seconds.
 *
 * Per-uid handles (fs_user_db): a bounded pool (FS_UPOOL_MAX, least
 * recently used evicted) of catalog handles, each set up with
 * cat_set_creds(account, proxy/token) for one uid, used by one request at a
 * time; when every handle is busy a temporary one is opened.  The owner
 * acting as --account uses the thread's own handle (fs_db).  Lock:
 * fs->users_lock guards the who-cache and the pool list, never held across
 * a catalog call or file I/O.
 */
#include "fs_i.h"
#include "dmcheck.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_WHO_TTL 10.0
#define FS_WHO_SLOTS 64
#define FS_UPOOL_MAX 8
#define FS_CRED_MAX (64u << 10)
#define FS_ENVIRON_MAX (256u << 10)

struct fs_whoslot {
	struct fs_who w;
	double at; /* 0: empty */
};

struct fs_uhandle {
	struct fs_uhandle *next;
	uid_t uid;
	char account[CAT_ACCOUNT_MAX + 1];
	uint64_t cred_gen;
	struct cat_db *db;
	int busy;
	int pooled;
	double used;
};

const char *fs_role_name(enum fs_role r)
{
	switch (r) {
	case FS_ROLE_OWNER: return "owner";
	case FS_ROLE_MAPPED: return "mapped";
	case FS_ROLE_CREDS: return "credentials";
	default: return "none";
	}
}

enum dm_status fs_users_init(struct fs *fs, struct dm_err *err)
{
	pthread_mutex_init(&fs->users_lock, NULL);
	fs->whos = dm_xcalloc(FS_WHO_SLOTS, sizeof *fs->whos);
	if (fs->o.uid_map) {
		enum dm_status rc = fs_uidmap_load(fs->o.uid_map, fs->uid, &fs->umap, err);
		if (rc)
			return rc;
		dm_log(DM_LOG_INFO, WHO_FS, "uid map %s: %zu entr%s", fs->o.uid_map, fs->umap.n,
		       fs->umap.n == 1 ? "y" : "ies");
	}
	return DM_OK;
}

/* The private copies of callers' credentials do not outlive the mount. */
static void creds_forget(struct fs *fs)
{
	char dir[PATH_MAX];
	DIR *dp;
	struct dirent *e;

	if (!fs->remote || !fs->cache_dir)
		return;
	snprintf(dir, sizeof dir, "%s/creds", fs->cache_dir);
	dp = opendir(dir);
	if (!dp)
		return;
	while ((e = readdir(dp))) {
		if (!strncmp(e->d_name, "proxy_u", 7) || !strncmp(e->d_name, "token_u", 7) ||
		    !strncmp(e->d_name, ".proxy_u", 8) || !strncmp(e->d_name, ".token_u", 8))
			unlinkat(dirfd(dp), e->d_name, 0);
	}
	closedir(dp);
}

void fs_users_destroy(struct fs *fs)
{
	creds_forget(fs);
	while (fs->uhandles) {
		struct fs_uhandle *h = fs->uhandles;
		fs->uhandles = h->next;
		cat_close(h->db);
		free(h);
	}
	fs_uidmap_free(&fs->umap);
	free(fs->whos);
	fs->whos = NULL;
	pthread_mutex_destroy(&fs->users_lock);
}

/* ---- credentials discovery ---- */

static void why_add(struct fs_who *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_add(struct fs_who *w, const char *fmt, ...)
{
	size_t len = strlen(w->why);
	va_list ap;

	if (len + 3 >= sizeof w->why)
		return;
	if (len) {
		memcpy(w->why + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(w->why + len, sizeof w->why - len, fmt, ap);
	va_end(ap);
}

/* The environment of the calling process, when it runs as uid (its /proc
 * directory is owned by it); NULL otherwise.  *len set. */
static char *caller_environ(pid_t pid, uid_t uid, size_t *len)
{
	char path[64], *buf;
	struct stat st;
	size_t got = 0;
	int dfd, fd;

	*len = 0;
	if (pid <= 0)
		return NULL;
	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return NULL;
	if (fstat(dfd, &st) || st.st_uid != uid) {
		close(dfd);
		return NULL;
	}
	fd = openat(dfd, "environ", O_RDONLY | O_CLOEXEC);
	close(dfd);
	if (fd < 0)
		return NULL;
	buf = dm_xmalloc(FS_ENVIRON_MAX);
	while (got < FS_ENVIRON_MAX) {
		ssize_t r = read(fd, buf + got, FS_ENVIRON_MAX - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
}

/* An absolute path from the environment block into out ("" if none). */
static void env_path(const char *env, size_t len, const char *key, char *out, size_t size)
{
	size_t vlen = 0;
	const char *v = env ? fs_environ_find(env, len, key, &vlen) : NULL;

	out[0] = 0;
	if (!v || vlen == 0 || vlen >= size || v[0] != '/')
		return;
	memcpy(out, v, vlen);
	out[vlen] = 0;
}

/* Write data to dir/name atomically, mode 0600; 0 on success. */
static int write_private(const char *dir, const char *name, const char *data, size_t n)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	size_t off = 0;
	int fd;

	snprintf(tmp, sizeof tmp, "%s/.%s.%d", dir, name, (int)gettid());
	snprintf(dst, sizeof dst, "%s/%s", dir, name);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	while (off < n) {
		ssize_t r = write(fd, data + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)r;
	}
	if (close(fd) || rename(tmp, dst)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* The private directory for copies of callers' credentials. */
static int creds_dir(struct fs *fs, char *out, size_t size)
{
	struct stat st;

	snprintf(out, size, "%s/creds", fs->cache_dir);
	if (mkdir(out, 0700) && errno != EEXIST)
		return -1;
	if (lstat(out, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return -1;
	if ((st.st_mode & 077) && chmod(out, 0700))
		return -1;
	return 0;
}

/*
 * Take path as uid's credential of `kind` ("proxy", "token") if it passes
 * the checks: 1 taken (copy set to the private copy on a remote catalog,
 * else to path; *gen mixed with its content), 0 not there or refused (the
 * reason added to w->why).
 */
static int take_file(struct fs *fs, struct fs_who *w, const char *path, const char *kind,
		     char *copy, size_t copysz, uint64_t *gen)
{
	struct stat st;
	char *data;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP)
			why_add(w, "%s is a symbolic link: ignored", path);
		else if (errno != ENOENT && errno != ENOTDIR)
			why_add(w, "%s cannot be read by the mount: %s", path, strerror(errno));
		return 0;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		why_add(w, "%s is not a regular file: ignored", path);
		goto refuse;
	}
	if (st.st_uid != w->uid) {
		why_add(w, "%s is owned by uid %u, not by uid %u: ignored", path,
			(unsigned)st.st_uid, (unsigned)w->uid);
		goto refuse;
	}
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		why_add(w, "%s can be read or written by others (mode %04o): ignored", path,
			(unsigned)(st.st_mode & 07777));
		goto refuse;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > FS_CRED_MAX) {
		why_add(w, "%s is empty or larger than %u bytes: ignored", path, FS_CRED_MAX);
		goto refuse;
	}
	data = dm_xmalloc((size_t)st.st_size);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got != (size_t)st.st_size) {
		why_add(w, "%s could not be read whole: ignored", path);
		free(data);
		return 0;
	}
	for (size_t i = 0; i < got; i++) /* FNV-1a over the content */
		*gen = (*gen ^ (unsigned char)data[i]) * 1099511628211ull;
	if (fs->remote) {
		char dir[PATH_MAX], name[64];
		snprintf(name, sizeof name, "%s_u%u", kind, (unsigned)w->uid);
		if (creds_dir(fs, dir, sizeof dir) || write_private(dir, name, data, got)) {
			why_add(w, "cannot keep a private copy of %s in %s/creds: %s", path,
				fs->cache_dir, strerror(errno));
			free(data);
			return 0;
		}
		snprintf(copy, copysz, "%s/%s", dir, name);
	} else {
		dm_strlcpy(copy, path, copysz);
	}
	dm_strlcpy(w->found, path, sizeof w->found);
	free(data);
	return 1;
refuse:
	close(fd);
	return 0;
}

static void discover(struct fs *fs, struct fs_who *w, pid_t pid)
{
	size_t elen = 0;
	char *env = caller_environ(pid, w->uid, &elen);
	char p[PATH_MAX], xdg[PATH_MAX];

	w->cred_gen = 1469598103934665603ull;
	env_path(env, elen, "X509_USER_PROXY", p, sizeof p);
	if (!(p[0] && take_file(fs, w, p, "proxy", w->proxy, sizeof w->proxy, &w->cred_gen))) {
		snprintf(p, sizeof p, "/tmp/x509up_u%u", (unsigned)w->uid);
		take_file(fs, w, p, "proxy", w->proxy, sizeof w->proxy, &w->cred_gen);
	}
	env_path(env, elen, "BEARER_TOKEN_FILE", p, sizeof p);
	if (!(p[0] && take_file(fs, w, p, "token", w->token, sizeof w->token, &w->cred_gen))) {
		int taken = 0;
		env_path(env, elen, "XDG_RUNTIME_DIR", xdg, sizeof xdg);
		if (xdg[0] && snprintf(p, sizeof p, "%s/bt_u%u", xdg, (unsigned)w->uid) < (int)sizeof p) {
			taken = take_file(fs, w, p, "token", w->token, sizeof w->token, &w->cred_gen);
		}
		if (!taken) {
			snprintf(p, sizeof p, "/tmp/bt_u%u", (unsigned)w->uid);
			take_file(fs, w, p, "token", w->token, sizeof w->token, &w->cred_gen);
		}
	}
	free(env);
}

/* ---- who is asking ---- */

static void resolve(struct fs *fs, uid_t uid, pid_t pid, struct fs_who *w)
{
	const char *acc = fs_uidmap_find(&fs->umap, (uint32_t)uid);

	memset(w, 0, sizeof *w);
	w->uid = uid;
	if (uid == fs->uid) {
		w->role = FS_ROLE_OWNER;
		if (acc)
			dm_strlcpy(w->account, acc, sizeof w->account);
		return; /* the mount's own credentials */
	}
	discover(fs, w, pid);
	if (acc) {
		w->role = FS_ROLE_MAPPED;
		dm_strlcpy(w->account, acc, sizeof w->account);
	} else if (fs->remote && (w->proxy[0] || w->token[0])) {
		w->role = FS_ROLE_CREDS;
	} else {
		w->role = FS_ROLE_NONE;
	}
	if (!fs->remote) { /* nothing to authenticate with */
		w->proxy[0] = w->token[0] = 0;
	}
}

void fs_who_get(struct fs *fs, fuse_req_t req, struct fs_who *w)
{
	const struct fuse_ctx *ctx = req ? fuse_req_ctx(req) : NULL;
	uid_t uid = ctx ? ctx->uid : fs->uid;
	pid_t pid = ctx ? ctx->pid : 0;
	double now = dm_now_f();
	size_t slot = (size_t)uid % FS_WHO_SLOTS;

	if (uid == fs->uid && !fs->umap.n) { /* the common case: no lookup */
		memset(w, 0, sizeof *w);
		w->uid = uid;
		w->role = FS_ROLE_OWNER;
		return;
	}
	pthread_mutex_lock(&fs->users_lock);
	if (fs->whos[slot].at && fs->whos[slot].w.uid == uid && now - fs->whos[slot].at < FS_WHO_TTL) {
		*w = fs->whos[slot].w;
		pthread_mutex_unlock(&fs->users_lock);
		return;
	}
	pthread_mutex_unlock(&fs->users_lock);
	resolve(fs, uid, pid, w);
	dm_log(DM_LOG_DEBUG, WHO_FS, "uid %u: %s%s%s%s%s%s%s", (unsigned)uid, fs_role_name(w->role),
	       w->account[0] ? " as " : "", w->account, w->found[0] ? ", credentials " : "",
	       w->found, w->why[0] ? "; " : "", w->why);
	pthread_mutex_lock(&fs->users_lock);
	fs->whos[slot].w = *w;
	fs->whos[slot].at = now;
	pthread_mutex_unlock(&fs->users_lock);
}

int fs_who_may_change(const struct fs *fs, const struct fs_who *w)
{
	(void)fs;
	return w->role != FS_ROLE_NONE;
}

int fs_who_sees_pfns(const struct fs *fs, const struct fs_who *w)
{
	return fs_who_may_change(fs, w);
}

void fs_who_refusal(const struct fs *fs, const struct fs_who *w, struct dm_err *err)
{
	char where[PATH_MAX + 64];

	if (fs->o.uid_map)
		snprintf(where, sizeof where, "has no entry in the uid map %s", fs->o.uid_map);
	else
		snprintf(where, sizeof where, "the mount has no uid map (--uid-map FILE)");
	dm_seterr(err, DM_EPERM, "AccessDenied",
		  "uid %u may not change the catalog through this mount: it is not the mount's"
		  " owner (uid %u), %s%s%s%s", (unsigned)w->uid, (unsigned)fs->uid, where,
		  fs->remote ? ", and no credentials of its own were found (X509_USER_PROXY,"
			       " /tmp/x509up_u<uid>, BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u<uid>,"
			       " /tmp/bt_u<uid>)"
			     : w->found[0] ? " (credentials cannot be checked by a local catalog:"
					     " only the map decides)" : "",
		  w->why[0] ? "; " : "", w->why);
}

void fs_redact_pfns(const char *in, struct dm_buf *out)
{
	const char *p = in;

	while (*p) {
		const char *s = strstr(p, "://");
		const char *b, *e;
		if (!s) {
			dm_buf_adds(out, p);
			return;
		}
		for (b = s; b > p && (isalnum((unsigned char)b[-1]) || b[-1] == '+'); b--)
			;
		for (e = s + 3; *e && *e != ' ' && *e != '\t' && *e != '\n' && *e != '\'' &&
				*e != '"' && *e != ','; e++)
			;
		dm_buf_add(out, p, (size_t)(b - p));
		dm_buf_adds(out, "<storage URL>");
		p = e;
	}
}

/* ---- per-uid catalog handles ---- */

static enum dm_status setup(struct fs *fs, struct cat_db *db, const struct fs_who *w)
{
	struct cat_creds c = { 0 };

	c.account = w->account[0] ? w->account : NULL;
	if (!c.account && w->role == FS_ROLE_OWNER)
		c.account = fs->o.account;
	if (w->proxy[0])
		c.x509_proxy = w->proxy;
	if (w->token[0])
		c.token_file = w->token;
	return cat_set_creds(db, &c);
}

struct cat_db *fs_user_db(struct fs *fs, const struct fs_who *w, struct fs_uhandle **hp,
			  struct dm_err *err)
{
	struct fs_uhandle *h = NULL, *lru = NULL, **pp, *evict = NULL;
	size_t n = 0;
	int fresh = 0;

	*hp = NULL;
	if (w->role == FS_ROLE_OWNER && !w->account[0])
		return fs_db(fs, err);
	pthread_mutex_lock(&fs->users_lock);
	for (pp = &fs->uhandles; *pp; pp = &(*pp)->next) {
		n++;
		if ((*pp)->uid == w->uid && !(*pp)->busy && !h)
			h = *pp;
		if (!(*pp)->busy && (!lru || (*pp)->used < lru->used))
			lru = *pp;
	}
	if (h) {
		h->busy = 1;
	} else {
		if (n >= FS_UPOOL_MAX && lru) { /* make room: the least recently used */
			for (pp = &fs->uhandles; *pp != lru; pp = &(*pp)->next)
				;
			*pp = lru->next;
			evict = lru;
			n--;
		}
		h = dm_xcalloc(1, sizeof *h);
		h->uid = w->uid;
		h->busy = 1;
		if (n < FS_UPOOL_MAX) {
			h->pooled = 1;
			h->next = fs->uhandles;
			fs->uhandles = h;
		}
		fresh = 1;
	}
	h->used = dm_now_f();
	pthread_mutex_unlock(&fs->users_lock);
	if (evict) {
		cat_close(evict->db);
		free(evict);
	}
	if (!fresh && (strcmp(h->account, w->account) || h->cred_gen != w->cred_gen)) {
		/* other credentials: a new handle (a REST handle keeps what it
		 * was given when a field is NULL) */
		cat_close(h->db);
		h->db = NULL;
		fresh = 1;
	}
	if (fresh) {
		struct dm_err e = { 0 };
		if (cat_open(fs->catalog, 0, &h->db, &e)) {
			if (err)
				*err = e;
			goto fail;
		}
	}
	if (fresh) {
		if (setup(fs, h->db, w)) {
			if (err)
				*err = *cat_error(h->db);
			goto fail;
		}
		dm_strlcpy(h->account, w->account, sizeof h->account);
		h->cred_gen = w->cred_gen;
	}
	*hp = h;
	return h->db;
fail:
	dm_log(DM_LOG_WARN, WHO_FS, "catalog handle for uid %u: %s", (unsigned)w->uid,
	       err ? fs_errmsg(err) : "failed");
	/* a handle that failed its setup is not kept: it would act as someone */
	pthread_mutex_lock(&fs->users_lock);
	if (h->pooled) {
		for (pp = &fs->uhandles; *pp && *pp != h; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = h->next;
	}
	pthread_mutex_unlock(&fs->users_lock);
	cat_close(h->db);
	free(h);
	return NULL;
}

void fs_user_db_put(struct fs *fs, struct fs_uhandle *h)
{
	if (!h)
		return;
	if (!h->pooled) {
		cat_close(h->db);
		free(h);
		return;
	}
	pthread_mutex_lock(&fs->users_lock);
	h->busy = 0;
	h->used = dm_now_f();
	pthread_mutex_unlock(&fs->users_lock);
}
