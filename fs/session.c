/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session.c - what every part of the mount uses (ns.c, data.c, xattr.c,
 * users.c and mount.c itself), kept below them so none of them calls back
 * up into mount.c: the thread-local catalog handles, the error texts and
 * errnos of catalog failures, the queue of kernel cache invalidations the
 * background thread sends (fs_inval_later) and raising the mount's bdi
 * readahead once (fs_readahead_once).
 *
 * Catalog handles: one per thread (pthread key, opened lazily on the
 * catalog's URI: for SQLite the same file, WAL lets them read while the
 * daemons write), closed by the key's destructor when a thread exits and at
 * unmount for the rest.  No handle is ever used across a network fetch:
 * data.c resolves replicas before the block cache fetches.
 *
 * Readahead: the first request after INIT raises the mount's bdi
 * read_ahead_kb (--read-ahead, 16 MiB) in /sys/class/bdi/<major:minor> when
 * permitted, as gcsfuse does: the kernel's default 128 KiB readahead would
 * cap READs at 128 KiB.
 */
#include "fs_i.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fs_dbslot {
	struct fs_dbslot *next;
	struct fs *fs;
	struct cat_db *db;
};

const char *fs_errmsg(const struct dm_err *e)
{
	static __thread char buf[1200];

	if (!e || !e->code)
		return "unknown error";
	snprintf(buf, sizeof buf, "%s: %s", e->cls[0] ? e->cls : dm_status_class(e->code), e->msg);
	return buf;
}

int fs_cat_errno(const struct dm_err *e)
{
	if (!e || !e->code)
		return EIO;
	if (!strcmp(e->cls, "ServerUnreachable"))
		return ENOTCONN; /* a remote catalog that cannot be reached (offline) */
	if (e->code == DM_ENOENT)
		return ENOENT;
	if (e->code == DM_ETIMEDOUT)
		return ETIMEDOUT;
	return EIO;
}

/* ------------------------------------------------------------------ */
/* thread-local catalog handles                                        */

static void db_slot_free(void *p)
{
	struct fs_dbslot *s = p, **pp;
	struct fs *fs = s->fs;

	pthread_mutex_lock(&fs->db_lock);
	for (pp = &fs->dbs; *pp && *pp != s; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = s->next;
	pthread_mutex_unlock(&fs->db_lock);
	cat_close(s->db);
	free(s);
}

void fs_db_init(struct fs *fs)
{
	pthread_mutex_init(&fs->db_lock, NULL);
	pthread_key_create(&fs->db_key, db_slot_free);
}

struct cat_db *fs_db(struct fs *fs, struct dm_err *err)
{
	struct fs_dbslot *s = pthread_getspecific(fs->db_key);
	struct cat_db *db = NULL;
	struct dm_err e = { 0 };

	if (s)
		return s->db;
	if (cat_open(fs->catalog, 0, &db, &e) ||
	    (fs->o.account && cat_set_issuer(db, fs->o.account))) {
		if (db)
			e = *cat_error(db);
		cat_close(db);
		char shown[1024];
		cat_uri_shown(fs->catalog, shown, sizeof shown);
		dm_log(DM_LOG_ERROR, WHO_FS, "opening the catalog %s: %s", shown, fs_errmsg(&e));
		if (err)
			*err = e;
		return NULL;
	}
	s = dm_xcalloc(1, sizeof *s);
	s->fs = fs;
	s->db = db;
	pthread_mutex_lock(&fs->db_lock);
	s->next = fs->dbs;
	fs->dbs = s;
	pthread_mutex_unlock(&fs->db_lock);
	pthread_setspecific(fs->db_key, s);
	return db;
}

void fs_db_close_all(struct fs *fs)
{
	pthread_setspecific(fs->db_key, NULL);
	while (fs->dbs) {
		struct fs_dbslot *s = fs->dbs;
		fs->dbs = s->next;
		cat_close(s->db);
		free(s);
	}
	pthread_key_delete(fs->db_key);
	pthread_mutex_destroy(&fs->db_lock);
}

/* ------------------------------------------------------------------ */
/* kernel caches and readahead                                         */

void fs_inval_later(struct fs *fs, uint64_t ino, int data)
{
	pthread_mutex_lock(&fs->bg_lock);
	if (fs->ninval == fs->inval_cap) {
		fs->inval_cap = fs->inval_cap ? fs->inval_cap * 2 : 16;
		fs->inval = dm_xrealloc(fs->inval, fs->inval_cap * sizeof *fs->inval);
	}
	fs->inval[fs->ninval].ino = ino;
	fs->inval[fs->ninval++].data = data;
	pthread_cond_signal(&fs->bg_cond);
	pthread_mutex_unlock(&fs->bg_lock);
}

/* "major:minor" of our mount from /proc/self/mountinfo. */
int fs_find_bdi(const char *mountpoint, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	int found = 0;

	if (!f)
		return -1;
	while (!found && fgets(line, sizeof line, f)) {
		char mnt[PATH_MAX], dev[64], *p = mnt;
		const char *s;
		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %63s %*s %4095s", dev, mnt) != 2)
			continue;
		/* undo the octal escapes (\040 ...) in place */
		for (s = mnt; *s; s++) {
			if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
				*p++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
				s += 3;
			} else {
				*p++ = *s;
			}
		}
		*p = 0;
		if (strcmp(mnt, mountpoint) == 0 && strstr(line, " - fuse")) {
			dm_strlcpy(out, dev, size);
			found = 1;
		}
	}
	fclose(f);
	return found ? 0 : -1;
}

static unsigned read_ra(const char *bdi)
{
	char path[128], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", bdi);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof buf, f))
		buf[0] = 0;
	fclose(f);
	return (unsigned)strtoul(buf, NULL, 10);
}

static int write_ra(const char *bdi, unsigned kb)
{
	char path[128];
	FILE *f;
	int rc;

	snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", bdi);
	f = fopen(path, "w");
	if (!f)
		return -1;
	rc = fprintf(f, "%u\n", kb) < 0;
	rc |= fclose(f) != 0;
	return rc ? -1 : 0;
}

/*
 * Raise the mount's readahead (once).  Called at the top of the first
 * handlers: any request after INIT runs after the kernel applied the INIT
 * reply (which would lower the value again), and before any file is opened
 * (a file's readahead window is set from the bdi at open).
 */
void fs_readahead_once(struct fs *fs)
{
	int expected = 0;

	if (__atomic_load_n(&fs->ra_state, __ATOMIC_ACQUIRE) == 2 || !fs->o.read_ahead_kb)
		return;
	if (!__atomic_compare_exchange_n(&fs->ra_state, &expected, 1, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		/* another thread is at it: a few sysfs calls, wait for them */
		for (int i = 0; i < 10000 && __atomic_load_n(&fs->ra_state, __ATOMIC_ACQUIRE) != 2; i++)
			sched_yield();
		return;
	}
	if (fs_find_bdi(fs->mountpoint, fs->bdi, sizeof fs->bdi) == 0) {
		if (read_ra(fs->bdi) == fs->o.read_ahead_kb)
			;
		else if (write_ra(fs->bdi, fs->o.read_ahead_kb))
			dm_log(DM_LOG_INFO, WHO_FS, "cannot raise read_ahead_kb of bdi %s (not "
			       "permitted): reads stay at the kernel's default size", fs->bdi);
		else
			dm_log(DM_LOG_INFO, WHO_FS, "bdi %s read_ahead_kb = %u", fs->bdi,
			       fs->o.read_ahead_kb);
	}
	__atomic_store_n(&fs->ra_state, 2, __ATOMIC_RELEASE);
}
