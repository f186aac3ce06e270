/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ingest.c - watch-folder ingest (daemons/ingest.h; the command is
 * `didfs ingest`, tools/cli_ingest.c): files an acquisition system drops
 * into interface directories of an RSE's storage are verified, described
 * by an extractor, registered with their metadata, attached to a dataset
 * named from a pattern, and the dataset given the configured rules once.
 *
 * Where files live.  The interface directories are part of the RSE's
 * storage as seen locally (`root` is the directory the RSE's protocol
 * prefix points at, as `add-replicas --walk` takes it), and a file is
 * registered where it was dropped: the RSE must be non-deterministic, the
 * replica's path is the file's path relative to `root` and the DID's name
 * that path (or its base name, `name = basename`).  Nothing is moved or
 * copied on success, so a crash can never leave a registered replica
 * whose bytes are elsewhere.
 *
 * When a file is taken.  With a trigger suffix (default ".trigger"), DATA
 * is taken once DATA.trigger exists; the trigger may hold bytes, adler32,
 * md5 and metadata (key=value lines or JSON, ingest_parse.c) and is
 * removed once the file is registered.  Without one (trigger_suffix =
 * none) a file is taken when it has not changed for quiet_time seconds.
 * Names starting with '.' (files still being written under a temporary
 * name, .failed/), *.rucio.upload and symbolic links are never taken.
 * inotify (IN_CLOSE_WRITE, IN_MOVED_TO, new directories) takes files as
 * they come; a full rescan at start and every `rescan` seconds catches
 * whatever happened while nothing watched (a restart, a full event queue).
 *
 * State and restarts.  Ingest keeps no state of its own: a file is
 * registered because its DID and replica exist in the catalog; a trigger
 * still present means "not yet acknowledged".  Each batch (at most `batch`
 * files) is ONE catalog transaction: datasets created with their rules,
 * replicas and DIDs (cat_bulk_*, the calls add-replicas --walk uses),
 * attachments and every metadata key.  Files are read, hashed and
 * described before the transaction opens, never inside it.  Killed at any
 * point: a batch is in the catalog whole or not at all; a trigger whose
 * file is already registered (killed between commit and removal) goes
 * through again: the file verified against it, cat_bulk_add skipping the
 * replica it has with the same checksums (refusing other ones), the trigger
 * removed: nothing registered twice.  A failure never moves a registered
 * file (only its trigger is set aside).
 *
 * Failures.  A file failing verification (size, adler32, md5), an
 * extractor failure or timeout, a malformed trigger, a name or metadata
 * Rucio refuses, a catalog refusal of that one file (e.g. the DID exists
 * with other checksums): the data file and its trigger are moved into
 * <dir>/.failed/ (same relative path) beside a .reason file saying why, and
 * never registered.  A trigger without its data file waits missing_grace
 * seconds and is then set aside the same way.  A catalog that cannot be
 * used (busy, a rule that cannot be placed, an unknown scope) leaves the
 * files where they are to be retried.  A failed batch is retried file by
 * file, so one bad file never sets its neighbours aside.
 *
 * Configuration keys (key = value, '#' comments):
 *   catalog          catalog URI (else --catalog / $DIDFS_CATALOG)
 *   account          the issuer (default root)
 *   rse              the non-deterministic RSE (required)
 *   root             local view of the RSE's storage at its prefix (required)
 *   dir              a watched directory under root (repeatable; default root)
 *   scope            scope of the files (required)
 *   name             path | basename (default path)
 *   trigger_suffix   ".trigger" (default) or "none"
 *   quiet_time       seconds unchanged before a file is taken without trigger (60)
 *   missing_grace    seconds a trigger waits for its data file (60)
 *   md5              true: compute and record md5 even without a trigger's (false)
 *   extractor        none | fits | hdf5 | command (none)
 *   extractor_command  program and arguments, "{}" replaced by the file (else appended)
 *   extractor_timeout  seconds before the command is killed (30)
 *   meta_keys        comma-separated keys kept from the extractor (default all)
 *   dataset          pattern: [SCOPE:]NAME with {KEY} from the metadata and
 *                    {date} {year} {month} {day} (the file's mtime, UTC), {dir}
 *                    (its directory under root, '/' as '.'), {scope}
 *   rule             COPIES RSE_EXPRESSION [lifetime=S] [grouping=G]
 *                    [activity=A] [comment=C] [purge_replicas=true] (repeatable)
 *   batch            files per transaction (1000)
 *   rescan           seconds between full rescans (300)
 */
#include "ingest.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"

#ifdef HAVE_CFITSIO
#include <fitsio.h>
#endif
#ifdef HAVE_HDF5
#include <hdf5.h>
#endif

#define WHO "ingest"
#define MAX_DIRS 16
#define MAX_RULES 8
#define MAX_META_KEYS 64

enum extractor { EX_NONE, EX_FITS, EX_HDF5, EX_COMMAND };

struct rule_cfg {
	int copies;
	char *expression;
	int64_t lifetime;
	enum cat_grouping grouping;
	char *activity;
	char *comment;
	int purge;
};

struct ing_config {
	char *catalog, *account, *rse, *root, *scope;
	char *dirs[MAX_DIRS];
	size_t ndirs;
	int basename_names;
	char *suffix; /* NULL: quiet mode */
	int quiet_time, missing_grace, md5, batch, rescan;
	enum extractor extractor;
	char **cmd;   /* argv of extractor_command */
	size_t ncmd;
	double extractor_timeout;
	char *meta_keys[MAX_META_KEYS];
	size_t nmeta_keys;
	char *dataset;
	struct rule_cfg rules[MAX_RULES];
	size_t nrules;
};

/* ------------------------------------------------------------------ */
/* configuration                                                        */

void ing_config_free(struct ing_config *c)
{
	if (!c)
		return;
	free(c->catalog);
	free(c->account);
	free(c->rse);
	free(c->root);
	free(c->scope);
	for (size_t i = 0; i < c->ndirs; i++)
		free(c->dirs[i]);
	free(c->suffix);
	for (size_t i = 0; i < c->ncmd; i++)
		free(c->cmd[i]);
	free(c->cmd);
	for (size_t i = 0; i < c->nmeta_keys; i++)
		free(c->meta_keys[i]);
	free(c->dataset);
	for (size_t i = 0; i < c->nrules; i++) {
		free(c->rules[i].expression);
		free(c->rules[i].activity);
		free(c->rules[i].comment);
	}
	free(c);
}

const char *ing_config_catalog(const struct ing_config *c)
{
	return c->catalog;
}

static int parse_bool(const char *v, int *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
		*out = 1;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
		*out = 0;
	else
		return -1;
	return 0;
}

static int parse_secs(const char *v, int lo, int hi, int *out)
{
	int64_t x;

	if (dm_parse_i64(v, &x) || x < lo || x > hi)
		return -1;
	*out = (int)x;
	return 0;
}

/* Split on whitespace (no quoting). */
static size_t split_words(const char *v, char ***out)
{
	char *copy = dm_xstrdup(v), *save = NULL, *w;
	size_t n = 0;

	*out = NULL;
	for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		*out = dm_xrealloc(*out, (n + 2) * sizeof **out);
		(*out)[n++] = dm_xstrdup(w);
		(*out)[n] = NULL;
	}
	free(copy);
	return n;
}

static enum dm_status parse_rule(struct rule_cfg *r, const char *v, const char *where,
				 struct dm_err *err)
{
	char **w;
	size_t n = split_words(v, &w);
	enum dm_status rc = DM_OK;
	int64_t copies;

	memset(r, 0, sizeof *r);
	r->grouping = CAT_GROUPING_DATASET;
	if (n < 2 || dm_parse_i64(w[0], &copies) || copies < 1 || copies > 100) {
		rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
			       "%s: rule must be 'COPIES RSE_EXPRESSION [key=value...]'", where);
		goto out;
	}
	r->copies = (int)copies;
	r->expression = dm_xstrdup(w[1]);
	for (size_t i = 2; i < n && !rc; i++) {
		char *eq = strchr(w[i], '=');
		const char *val;
		if (!eq) {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s: rule option '%s' is not key=value", where, w[i]);
			break;
		}
		*eq = 0;
		val = eq + 1;
		if (!strcmp(w[i], "lifetime")) {
			if (dm_parse_i64(val, &r->lifetime) || r->lifetime < 0)
				rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
					       "%s: bad rule lifetime '%s'", where, val);
		} else if (!strcmp(w[i], "grouping")) {
			if (cat_grouping_parse(val, &r->grouping))
				rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
					       "%s: bad rule grouping '%s'", where, val);
		} else if (!strcmp(w[i], "activity")) {
			free(r->activity);
			r->activity = dm_xstrdup(val);
		} else if (!strcmp(w[i], "comment")) {
			free(r->comment);
			r->comment = dm_xstrdup(val);
		} else if (!strcmp(w[i], "purge_replicas")) {
			if (parse_bool(val, &r->purge))
				rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
					       "%s: bad purge_replicas '%s'", where, val);
		} else {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s: unknown rule option '%s'", where, w[i]);
		}
	}
out:
	for (size_t i = 0; i < n; i++)
		free(w[i]);
	free(w);
	return rc;
}

static enum dm_status config_set(struct ing_config *c, const char *k, const char *v,
				 const char *where, struct dm_err *err)
{
	char **slot = NULL;

	if (!strcmp(k, "catalog")) slot = &c->catalog;
	else if (!strcmp(k, "account")) slot = &c->account;
	else if (!strcmp(k, "rse")) slot = &c->rse;
	else if (!strcmp(k, "root")) slot = &c->root;
	else if (!strcmp(k, "scope")) slot = &c->scope;
	else if (!strcmp(k, "dataset")) slot = &c->dataset;
	if (slot) {
		free(*slot);
		*slot = dm_xstrdup(v);
		return DM_OK;
	}
	if (!strcmp(k, "dir")) {
		if (c->ndirs == MAX_DIRS)
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "%s: more than %d dirs", where, MAX_DIRS);
		c->dirs[c->ndirs++] = dm_xstrdup(v);
	} else if (!strcmp(k, "name")) {
		if (!strcmp(v, "path"))
			c->basename_names = 0;
		else if (!strcmp(v, "basename"))
			c->basename_names = 1;
		else
			goto bad;
	} else if (!strcmp(k, "trigger_suffix")) {
		free(c->suffix);
		c->suffix = strcmp(v, "none") && *v ? dm_xstrdup(v) : NULL;
		if (c->suffix && strchr(c->suffix, '/'))
			goto bad;
	} else if (!strcmp(k, "quiet_time")) {
		if (parse_secs(v, 0, 86400 * 30, &c->quiet_time))
			goto bad;
	} else if (!strcmp(k, "missing_grace")) {
		if (parse_secs(v, 0, 86400 * 30, &c->missing_grace))
			goto bad;
	} else if (!strcmp(k, "md5")) {
		if (parse_bool(v, &c->md5))
			goto bad;
	} else if (!strcmp(k, "batch")) {
		if (parse_secs(v, 1, 10000, &c->batch))
			goto bad;
	} else if (!strcmp(k, "rescan")) {
		if (parse_secs(v, 1, 86400 * 30, &c->rescan))
			goto bad;
	} else if (!strcmp(k, "extractor")) {
		if (!strcmp(v, "none"))
			c->extractor = EX_NONE;
		else if (!strcmp(v, "fits"))
			c->extractor = EX_FITS;
		else if (!strcmp(v, "hdf5"))
			c->extractor = EX_HDF5;
		else if (!strcmp(v, "command"))
			c->extractor = EX_COMMAND;
		else
			goto bad;
#ifndef HAVE_CFITSIO
		if (c->extractor == EX_FITS)
			return dm_seterr(err, DM_ENOTSUP, "InputValidationError",
					 "%s: this didfs was built without FITS support (libcfitsio-dev)",
					 where);
#endif
#ifndef HAVE_HDF5
		if (c->extractor == EX_HDF5)
			return dm_seterr(err, DM_ENOTSUP, "InputValidationError",
					 "%s: this didfs was built without HDF5 support (libhdf5-dev)",
					 where);
#endif
	} else if (!strcmp(k, "extractor_command")) {
		for (size_t i = 0; i < c->ncmd; i++)
			free(c->cmd[i]);
		free(c->cmd);
		c->ncmd = split_words(v, &c->cmd);
		if (!c->ncmd)
			goto bad;
	} else if (!strcmp(k, "extractor_timeout")) {
		int t;
		if (parse_secs(v, 1, 86400, &t))
			goto bad;
		c->extractor_timeout = t;
	} else if (!strcmp(k, "meta_keys")) {
		char *copy = dm_xstrdup(v), *save = NULL;
		for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
			if (c->nmeta_keys == MAX_META_KEYS) {
				free(copy);
				goto bad;
			}
			c->meta_keys[c->nmeta_keys++] = dm_xstrdup(w);
		}
		free(copy);
	} else if (!strcmp(k, "rule")) {
		if (c->nrules == MAX_RULES)
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "%s: more than %d rules", where, MAX_RULES);
		if (parse_rule(&c->rules[c->nrules], v, where, err)) {
			free(c->rules[c->nrules].expression);
			free(c->rules[c->nrules].activity);
			free(c->rules[c->nrules].comment);
			return DM_EINVAL;
		}
		c->nrules++;
	} else {
		return dm_seterr(err, DM_EINVAL, "InputValidationError", "%s: unknown key '%s'",
				 where, k);
	}
	return DM_OK;
bad:
	return dm_seterr(err, DM_EINVAL, "InputValidationError", "%s: bad value '%s' for %s",
			 where, v, k);
}

struct ing_config *ing_config_load(const char *path, struct dm_err *err)
{
	FILE *f = fopen(path, "r");
	struct ing_config *c;
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	enum dm_status rc = DM_OK;

	if (!f) {
		dm_seterr(err, DM_ENOENT, "InputValidationError", "cannot read '%s': %s", path,
			  strerror(errno));
		return NULL;
	}
	c = dm_xcalloc(1, sizeof *c);
	c->suffix = dm_xstrdup(".trigger");
	c->quiet_time = 60;
	c->missing_grace = 60;
	c->batch = 1000;
	c->rescan = 300;
	c->extractor_timeout = 30;
	while (!rc && getline(&line, &cap, f) > 0) {
		char *s = line, *e, *eq, where[1100];
		lineno++;
		snprintf(where, sizeof where, "%s:%ld", path, lineno);
		while (isspace((unsigned char)*s))
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = 0;
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s: not a 'key = value' line", where);
			break;
		}
		*eq = 0;
		for (e = eq; e > s && isspace((unsigned char)e[-1]);)
			*--e = 0;
		eq++;
		while (isspace((unsigned char)*eq))
			eq++;
		rc = config_set(c, s, eq, where, err);
	}
	free(line);
	fclose(f);
	if (!rc) {
		const char *missing = !c->rse ? "rse" : !c->root ? "root" : !c->scope ? "scope" : NULL;
		if (missing)
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError", "%s: '%s' is required",
				       path, missing);
		else if (c->extractor == EX_COMMAND && !c->ncmd)
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s: extractor = command needs extractor_command", path);
	}
	if (!rc) {
		/* root without trailing '/', dirs absolute and under root */
		size_t rl = strlen(c->root);
		while (rl > 1 && c->root[rl - 1] == '/')
			c->root[--rl] = 0;
		if (c->root[0] != '/')
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s: root must be an absolute path", path);
		if (!c->ndirs)
			c->dirs[c->ndirs++] = dm_xstrdup(c->root);
		for (size_t i = 0; i < c->ndirs && !rc; i++) {
			char *d = c->dirs[i];
			size_t dl;
			if (d[0] != '/') {
				struct dm_buf b = DM_BUF_INIT;
				dm_buf_addf(&b, "%s/%s", c->root, d);
				free(d);
				d = c->dirs[i] = dm_buf_detach(&b);
			}
			dl = strlen(d);
			while (dl > 1 && d[dl - 1] == '/')
				d[--dl] = 0;
			if (strstr(d, "/../") || strstr(d, "/./") ||
			    strncmp(d, c->root, rl) || (d[rl] && d[rl] != '/'))
				rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
					       "%s: dir '%s' is not under root '%s'", path, d, c->root);
		}
	}
	if (rc) {
		ing_config_free(c);
		return NULL;
	}
	return c;
}

/* ------------------------------------------------------------------ */
/* extractors                                                           */

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

enum dm_status ing_run_extractor(char *const argv[], double timeout, struct ing_meta *m,
				 struct dm_err *err)
{
	int out[2], errp[2], status = 0;
	pid_t pid;
	struct dm_buf o = DM_BUF_INIT, e = DM_BUF_INIT;
	double deadline = mono_now() + timeout;
	int open_fds = 2, timed_out = 0, too_big = 0;
	enum dm_status rc;

	if (pipe2(out, O_CLOEXEC))
		return dm_seterr(err, DM_EIO, NULL, "extractor: pipe: %s", strerror(errno));
	if (pipe2(errp, O_CLOEXEC)) {
		close(out[0]);
		close(out[1]);
		return dm_seterr(err, DM_EIO, NULL, "extractor: pipe: %s", strerror(errno));
	}
	pid = fork();
	if (pid < 0) {
		close(out[0]); close(out[1]); close(errp[0]); close(errp[1]);
		return dm_seterr(err, DM_EIO, NULL, "extractor: fork: %s", strerror(errno));
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		sigset_t none;
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(out[1], 1);
		dup2(errp[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	close(out[1]);
	close(errp[1]);
	struct pollfd pf[2] = { { out[0], POLLIN, 0 }, { errp[0], POLLIN, 0 } };
	while (open_fds > 0) {
		double left = deadline - mono_now();
		int n;
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		n = poll(pf, 2, (int)(left * 1000) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		for (int i = 0; i < 2; i++) {
			char buf[8192];
			ssize_t r;
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(pf[i].fd, buf, sizeof buf);
			if (r <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0) {
				if (o.len + (size_t)r > ING_EXTRACT_MAX)
					too_big = 1;
				else
					dm_buf_add(&o, buf, (size_t)r);
			} else if (e.len < 4096) {
				dm_buf_add(&e, buf, (size_t)r);
			}
		}
		if (too_big)
			break;
	}
	if (timed_out || too_big)
		kill(-pid, SIGKILL);
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* whatever it started in its group goes with it */
	kill(-pid, SIGKILL);
	e.s[strcspn(e.s, "\n")] = 0;
	if (timed_out)
		rc = dm_seterr(err, DM_ETIMEDOUT, "InputValidationError",
			       "extractor '%s' did not finish within %.0f s: killed", argv[0], timeout);
	else if (too_big)
		rc = dm_seterr(err, DM_EIO, "InputValidationError",
			       "extractor '%s' printed more than %d bytes: killed", argv[0],
			       ING_EXTRACT_MAX);
	else if (WIFSIGNALED(status))
		rc = dm_seterr(err, DM_EIO, "InputValidationError",
			       "extractor '%s' died of signal %d%s%s", argv[0], WTERMSIG(status),
			       e.len ? ": " : "", e.s);
	else if (!WIFEXITED(status) || WEXITSTATUS(status))
		rc = dm_seterr(err, DM_EIO, "InputValidationError",
			       "extractor '%s' failed with exit status %d%s%s", argv[0],
			       WEXITSTATUS(status), e.len ? ": " : "", e.s);
	else
		rc = ing_kv_parse(o.s, o.len, "extractor output line", m, err);
	dm_buf_release(&o);
	dm_buf_release(&e);
	return rc;
}

#ifdef HAVE_CFITSIO
/* The primary header's keywords (COMMENT, HISTORY and blank cards
 * skipped; string values unquoted). */
static enum dm_status extract_fits(const char *path, struct ing_meta *m, struct dm_err *err)
{
	fitsfile *f = NULL;
	int status = 0, nkeys = 0;
	enum dm_status rc = DM_OK;

	if (fits_open_diskfile(&f, path, READONLY, &status)) {
		char msg[FLEN_STATUS];
		fits_get_errstatus(status, msg);
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "FITS extractor: cannot open: %s", msg);
	}
	fits_get_hdrspace(f, &nkeys, NULL, &status);
	for (int i = 1; i <= nkeys && !status && !rc; i++) {
		char key[FLEN_KEYWORD], val[FLEN_VALUE], com[FLEN_COMMENT], str[FLEN_VALUE];
		struct dm_err e = { 0 };
		if (fits_read_keyn(f, i, key, val, com, &status))
			break;
		if (!key[0] || !strcmp(key, "COMMENT") || !strcmp(key, "HISTORY") ||
		    !strcmp(key, "END") || !val[0])
			continue;
		if (val[0] == '\'') {
			int s2 = 0;
			fits_read_key_str(f, key, str, NULL, &s2);
			if (s2)
				continue;
		} else {
			dm_strlcpy(str, val, sizeof str);
		}
		if (ing_meta_set(m, key, str, &e))
			dm_log(DM_LOG_DEBUG, WHO, "%s: FITS key '%s' skipped: %s", path, key, e.msg);
	}
	if (status && !rc) {
		char msg[FLEN_STATUS];
		fits_get_errstatus(status, msg);
		rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
			       "FITS extractor: bad header: %s", msg);
	}
	status = 0;
	fits_close_file(f, &status);
	return rc;
}
#endif

#ifdef HAVE_HDF5
struct h5ctx {
	struct ing_meta *m;
	const char *path;
};

static herr_t h5_attr(hid_t loc, const char *name, const H5A_info_t *info, void *ud)
{
	struct h5ctx *x = ud;
	hid_t a = H5Aopen(loc, name, H5P_DEFAULT), t, s;
	char num[64];
	char *val = NULL;
	struct dm_err e = { 0 };

	if (a < 0)
		return 0;
	t = H5Aget_type(a);
	s = H5Aget_space(a);
	if (H5Sget_simple_extent_npoints(s) == 1) {
		H5T_class_t cls = H5Tget_class(t);
		if (cls == H5T_INTEGER) {
			long long v;
			if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0) {
				snprintf(num, sizeof num, "%lld", v);
				val = dm_xstrdup(num);
			}
		} else if (cls == H5T_FLOAT) {
			double v;
			if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) {
				snprintf(num, sizeof num, "%.17g", v);
				val = dm_xstrdup(num);
			}
		} else if (cls == H5T_STRING) {
			hid_t mt = H5Tcopy(H5T_C_S1);
			if (H5Tis_variable_str(t) > 0) {
				char *p = NULL;
				H5Tset_size(mt, H5T_VARIABLE);
				if (H5Aread(a, mt, &p) >= 0 && p) {
					val = dm_xstrdup(p);
					H5free_memory(p);
				}
			} else {
				size_t n = H5Tget_size(t);
				if (n > 0 && n <= ING_VALUE_MAX) {
					val = dm_xcalloc(1, n + 1);
					H5Tset_size(mt, n);
					if (H5Aread(a, mt, val) < 0) {
						free(val);
						val = NULL;
					} else {
						size_t l = strnlen(val, n);
						while (l > 0 && val[l - 1] == ' ')
							l--;
						val[l] = 0;
					}
				}
			}
			H5Tclose(mt);
		}
	}
	if (val && ing_meta_set(x->m, name, val, &e))
		dm_log(DM_LOG_DEBUG, WHO, "%s: HDF5 attribute '%s' skipped: %s", x->path, name,
		       e.msg);
	free(val);
	H5Sclose(s);
	H5Tclose(t);
	H5Aclose(a);
	return 0;
}

/* Scalar attributes (integers, floats, strings) of the root group. */
static enum dm_status extract_hdf5(const char *path, struct ing_meta *m, struct dm_err *err)
{
	hid_t f, g;
	struct h5ctx x = { m, path };
	hsize_t idx = 0;
	enum dm_status rc = DM_OK;

	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	if (H5Fis_hdf5(path) <= 0)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "HDF5 extractor: not an HDF5 file");
	f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (f < 0)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "HDF5 extractor: cannot open the file");
	g = H5Gopen2(f, "/", H5P_DEFAULT);
	if (g < 0 || H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &idx, h5_attr, &x) < 0)
		rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
			       "HDF5 extractor: cannot read the root group's attributes");
	if (g >= 0)
		H5Gclose(g);
	H5Fclose(f);
	return rc;
}
#endif

/* Metadata of one file from the configured extractor, filtered by meta_keys. */
static enum dm_status extract(const struct ing_config *c, const char *path, struct ing_meta *out,
			      struct dm_err *err)
{
	struct ing_meta m = { 0 };
	enum dm_status rc = DM_OK;

	switch (c->extractor) {
	case EX_NONE:
		return DM_OK;
	case EX_FITS:
#ifdef HAVE_CFITSIO
		rc = extract_fits(path, &m, err);
#endif
		break;
	case EX_HDF5:
#ifdef HAVE_HDF5
		rc = extract_hdf5(path, &m, err);
#endif
		break;
	case EX_COMMAND: {
		char **argv = dm_xcalloc(c->ncmd + 2, sizeof *argv);
		size_t n = 0;
		int placed = 0;
		for (size_t i = 0; i < c->ncmd; i++) {
			if (!strcmp(c->cmd[i], "{}")) {
				argv[n++] = (char *)path;
				placed = 1;
			} else {
				argv[n++] = c->cmd[i];
			}
		}
		if (!placed)
			argv[n++] = (char *)path;
		rc = ing_run_extractor(argv, c->extractor_timeout, &m, err);
		free(argv);
		break;
	}
	}
	for (size_t i = 0; !rc && i < m.n; i++) {
		int keep = c->nmeta_keys == 0;
		for (size_t k = 0; k < c->nmeta_keys && !keep; k++)
			keep = !strcmp(c->meta_keys[k], m.key[i]);
		if (keep)
			rc = ing_meta_set(out, m.key[i], m.value[i], err);
	}
	ing_meta_free(&m);
	return rc;
}

/* ------------------------------------------------------------------ */
/* acknowledgements: removing trigger files                             */

/* A trigger is removed only after its file's batch committed.  Removing
 * files is a journal operation whose latency, not CPU, bounds it (measured
 * on the test VM: 30,000 unlinks 19.6 s one at a time, 5.5 s from 8 at
 * once), so ACK_THREADS threads do it while the next batch is read.  A
 * process killed with removals pending leaves those triggers: their files
 * are found registered at the next scan and the triggers removed then. */
#define ACK_THREADS 8
#define ACK_QUEUE 4096

struct ackq {
	pthread_mutex_t mu;
	pthread_cond_t nonempty, space, idle;
	char *items[ACK_QUEUE];
	size_t head, count, busy;
	int stop, nth;
	pthread_t th[ACK_THREADS];
};

static void *ack_worker(void *arg)
{
	struct ackq *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		char *path;
		while (!q->count && !q->stop)
			pthread_cond_wait(&q->nonempty, &q->mu);
		if (!q->count)
			break;
		path = q->items[q->head];
		q->head = (q->head + 1) % ACK_QUEUE;
		q->count--;
		q->busy++;
		pthread_cond_signal(&q->space);
		pthread_mutex_unlock(&q->mu);
		if (unlink(path) && errno != ENOENT)
			dm_log(DM_LOG_WARN, "ingest", "cannot remove %s: %s", path, strerror(errno));
		free(path);
		pthread_mutex_lock(&q->mu);
		q->busy--;
		if (!q->count && !q->busy)
			pthread_cond_broadcast(&q->idle);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

static void ack_init(struct ackq *q)
{
	sigset_t all, old;

	memset(q, 0, sizeof *q);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->nonempty, NULL);
	pthread_cond_init(&q->space, NULL);
	pthread_cond_init(&q->idle, NULL);
	/* signals stay with the main thread */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < ACK_THREADS; i++)
		if (pthread_create(&q->th[q->nth], NULL, ack_worker, q) == 0)
			q->nth++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Remove a trigger (path is taken over). */
static void ack_push(struct ackq *q, char *path)
{
	if (!q->nth) {
		if (unlink(path) && errno != ENOENT)
			dm_log(DM_LOG_WARN, "ingest", "cannot remove %s: %s", path, strerror(errno));
		free(path);
		return;
	}
	pthread_mutex_lock(&q->mu);
	while (q->count == ACK_QUEUE)
		pthread_cond_wait(&q->space, &q->mu);
	q->items[(q->head + q->count) % ACK_QUEUE] = path;
	q->count++;
	pthread_cond_signal(&q->nonempty);
	pthread_mutex_unlock(&q->mu);
}

/* Wait until every queued removal is done. */
static void ack_drain(struct ackq *q)
{
	pthread_mutex_lock(&q->mu);
	while (q->count || q->busy)
		pthread_cond_wait(&q->idle, &q->mu);
	pthread_mutex_unlock(&q->mu);
}

static void ack_fini(struct ackq *q)
{
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_broadcast(&q->nonempty);
	pthread_mutex_unlock(&q->mu);
	for (int i = 0; i < q->nth; i++)
		pthread_join(q->th[i], NULL);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->nonempty);
	pthread_cond_destroy(&q->space);
	pthread_cond_destroy(&q->idle);
}

/* ------------------------------------------------------------------ */
/* the engine                                                           */

struct entry {
	char *data, *trigger; /* paths; trigger NULL in quiet mode */
	size_t dir;           /* index of its watched directory */
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	char ds_scope[CAT_SCOPE_MAX + 1], ds_name[CAT_NAME_MAX + 1];
	uint64_t bytes;
	char adler32[9], md5[33];
	char *pfn;
	struct ing_meta meta;
};

struct eng {
	struct cat_db *db;
	struct ing_config *c;
	struct ing_stats *st;
	volatile int *stop;
	struct cat_protocol proto;
	struct dm_buf proto_strs;
	size_t root_len;
	struct entry *batch;
	size_t n;
	int inotify;
	struct { int wd; char *path; } *watches;
	size_t nwatches;
	int catalog_trouble; /* the last commit failed for the catalog's reasons */
	struct dm_err last;  /* why the last commit failed */
	struct ackq ack;     /* trigger removals */
	/* datasets seen to exist by a committed batch: no lookup per batch
	 * (cat_did_get sums a collection's files); forgotten on any failure */
	char *known[64];
	size_t nknown;
};

static void entry_free(struct entry *e)
{
	free(e->data);
	free(e->trigger);
	free(e->pfn);
	ing_meta_free(&e->meta);
	memset(e, 0, sizeof *e);
}

static int is_transient(struct cat_db *db)
{
	const struct dm_err *e = cat_error(db);
	return e->code == DM_EIO || e->code == DM_AGAIN || e->code == DM_ETIMEDOUT ||
	       e->code == DM_ENOMEM || e->code == DM_EINTERNAL ||
	       !strcmp(e->cls, "DatabaseException");
}

/* <dir>/.failed/<path relative to dir> */
static void failed_path(const struct eng *g, size_t dir, const char *path, struct dm_buf *out)
{
	const char *d = g->c->dirs[dir];
	size_t dl = strlen(d);
	const char *rel = !strncmp(path, d, dl) && path[dl] == '/' ? path + dl + 1 : path;

	dm_buf_addf(out, "%s/.failed/%s", d, rel);
}

/* Move a data file (or NULL) and its trigger (or NULL) into .failed/ with a
 * .reason beside them: the reason first, so that whatever a crash leaves
 * says why. */
static void set_aside(struct eng *g, size_t dir, const char *data, const char *trigger,
		      const char *reason)
{
	struct dm_buf base = DM_BUF_INIT, p = DM_BUF_INIT;
	const char *what = data ? data : trigger;
	char *slash;
	FILE *f;

	if (data) {
		failed_path(g, dir, data, &base);
	} else {
		/* a lone trigger: named after the data file it announced */
		failed_path(g, dir, trigger, &base);
		base.len -= strlen(g->c->suffix);
		base.s[base.len] = 0;
	}
	/* an earlier failure of the same name is kept: NAME.1, NAME.2, ... */
	{
		size_t len0 = base.len;
		for (int i = 1; i < 10000; i++) {
			dm_buf_reset(&p);
			dm_buf_addf(&p, "%s.reason", base.s);
			if (access(base.s, F_OK) && access(p.s, F_OK))
				break;
			base.len = len0;
			base.s[len0] = 0;
			dm_buf_addf(&base, ".%d", i);
		}
		dm_buf_reset(&p);
	}
	dm_log(DM_LOG_WARN, WHO, "set aside %s: %s", what, reason);
	slash = strrchr(base.s, '/');
	*slash = 0;
	if (dm_mkdir_p(base.s, 0755))
		dm_log(DM_LOG_ERROR, WHO, "cannot create %s: %s", base.s, strerror(errno));
	*slash = '/';
	dm_buf_addf(&p, "%s.reason.tmp", base.s);
	f = fopen(p.s, "w");
	if (f) {
		char t[40];
		dm_fmt_time(dm_now(), t);
		fprintf(f, "%s\nfile: %s\ntime: %s\n", reason, what, t);
		if (fclose(f) == 0) {
			struct dm_buf q = DM_BUF_INIT;
			dm_buf_addf(&q, "%s.reason", base.s);
			rename(p.s, q.s);
			dm_buf_release(&q);
		}
	}
	if (data && rename(data, base.s) && errno != ENOENT)
		dm_log(DM_LOG_ERROR, WHO, "cannot move %s to %s: %s", data, base.s, strerror(errno));
	if (trigger) {
		dm_buf_reset(&p);
		dm_buf_addf(&p, "%s%s", base.s, g->c->suffix);
		if (rename(trigger, p.s) && errno != ENOENT)
			dm_log(DM_LOG_ERROR, WHO, "cannot move %s to %s: %s", trigger, p.s,
			       strerror(errno));
	}
	g->st->failed++;
	dm_buf_release(&base);
	dm_buf_release(&p);
}

struct lookup_ud {
	const struct entry *e;
	const struct stat *sb;
	const char *rel; /* the file's path under root */
	char tmp[CAT_NAME_MAX + 1];
};

static const char *pattern_lookup(void *ud, const char *key)
{
	struct lookup_ud *u = ud;
	const char *v = ing_meta_get(&u->e->meta, key);
	struct tm tm;
	time_t t = u->sb->st_mtime;

	if (v)
		return v;
	gmtime_r(&t, &tm);
	if (!strcmp(key, "date"))
		strftime(u->tmp, sizeof u->tmp, "%Y%m%d", &tm);
	else if (!strcmp(key, "year"))
		strftime(u->tmp, sizeof u->tmp, "%Y", &tm);
	else if (!strcmp(key, "month"))
		strftime(u->tmp, sizeof u->tmp, "%m", &tm);
	else if (!strcmp(key, "day"))
		strftime(u->tmp, sizeof u->tmp, "%d", &tm);
	else if (!strcmp(key, "scope"))
		dm_strlcpy(u->tmp, u->e->scope, sizeof u->tmp);
	else if (!strcmp(key, "dir")) {
		const char *slash = strrchr(u->rel, '/');
		size_t n = slash ? (size_t)(slash - u->rel) : 0;
		if (!n)
			return "root";
		if (n >= sizeof u->tmp)
			n = sizeof u->tmp - 1;
		memcpy(u->tmp, u->rel, n);
		u->tmp[n] = 0;
		for (char *p = u->tmp; *p; p++)
			if (*p == '/')
				*p = '.';
	} else
		return NULL;
	return u->tmp;
}

struct rep_found {
	int found;
	char adler32[9];
	uint64_t bytes;
};

static int rep_cb(void *ud, const struct cat_replica *r)
{
	struct rep_found *f = ud;
	f->found = 1;
	f->bytes = r->bytes;
	dm_strlcpy(f->adler32, r->adler32 ? r->adler32 : "", sizeof f->adler32);
	return 1;
}

static enum dm_status flush(struct eng *g);

/* Whether scope:name has a replica on the RSE (a failure then sets aside
 * only the trigger: the registered file stays where its replica says). */
static int registered(struct eng *g, const char *scope, const char *name)
{
	struct rep_found rf = { 0 };
	if (cat_replica_list(g->db, scope, name, g->c->rse, ~0u, rep_cb, &rf))
		return 0;
	return rf.found;
}

/* Set a file aside, or only its trigger when the file is registered. */
static void fail_file(struct eng *g, size_t dir, const char *scope, const char *name,
		      const char *data, const char *trigger, const char *reason)
{
	if (trigger && registered(g, scope, name))
		set_aside(g, dir, NULL, trigger, reason);
	else
		set_aside(g, dir, data, trigger, reason);
}

static int in_batch(const struct eng *g, const char *data)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->batch[i].data, data))
			return 1;
	return 0;
}

/* Look at one file (data path; trigger path or NULL): verify, describe and
 * queue it, or set it aside, or leave it for later. */
static enum dm_status take(struct eng *g, size_t dir, const char *data, const char *trigger)
{
	const struct ing_config *c = g->c;
	struct entry e = { 0 };
	struct ing_trigger t = { 0 };
	struct stat sb;
	struct dm_err err = { 0 };
	struct dm_buf ds = DM_BUF_INIT;
	struct rep_found rf = { 0 };
	const char *rel;
	enum dm_status rc;
	char reason[1400];

	if (in_batch(g, data))
		return DM_OK;
	/* lstat: a symbolic link is never taken (it could name any file) */
	if (lstat(data, &sb) || !S_ISREG(sb.st_mode)) {
		struct stat tb;
		struct dm_buf fp = DM_BUF_INIT, ft = DM_BUF_INIT;
		int moved;
		if (!trigger || lstat(trigger, &tb))
			return DM_OK; /* both gone: someone else's business */
		/* killed between moving a failed file and its trigger? */
		failed_path(g, dir, data, &fp);
		dm_buf_addf(&ft, "%s%s", fp.s, c->suffix);
		moved = access(fp.s, F_OK) == 0 && access(ft.s, F_OK) != 0;
		if (moved && rename(trigger, ft.s) == 0) {
			dm_buf_release(&fp);
			dm_buf_release(&ft);
			return DM_OK;
		}
		dm_buf_release(&fp);
		dm_buf_release(&ft);
		if (lstat(data, &sb) == 0) {
			snprintf(reason, sizeof reason,
				 "InputValidationError: '%s' is not a regular file (symbolic links,"
				 " directories and devices are never taken)", data);
			set_aside(g, dir, NULL, trigger, reason);
			return DM_OK;
		}
		if (dm_now() - tb.st_mtime < c->missing_grace) {
			g->st->waiting++;
			return DM_OK;
		}
		snprintf(reason, sizeof reason,
			 "InputValidationError: trigger file without its data file '%s'", data);
		set_aside(g, dir, NULL, trigger, reason);
		return DM_OK;
	}
	rel = data + g->root_len + 1;
	e.dir = dir;
	dm_strlcpy(e.scope, c->scope, sizeof e.scope);
	{
		const char *nm = c->basename_names ? strrchr(rel, '/') : NULL;
		nm = nm ? nm + 1 : rel;
		if (strlen(nm) > CAT_NAME_MAX || cat_validate_name(nm, &err)) {
			snprintf(reason, sizeof reason, "%s: %s", err.cls[0] ? err.cls : "InvalidObject",
				 err.msg[0] ? err.msg : "name too long");
			set_aside(g, dir, data, trigger, reason);
			return DM_OK;
		}
		dm_strlcpy(e.name, nm, sizeof e.name);
	}
	if (trigger) {
		char buf[ING_TRIGGER_MAX + 1];
		int fd = open(trigger, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
		if (fd >= 0)
			close(fd);
		if (n < 0)
			return DM_OK; /* gone meanwhile: nothing to do */
		if (ing_trigger_parse(buf, (size_t)n, &t, &err)) {
			snprintf(reason, sizeof reason, "%s: malformed trigger file: %s", err.cls, err.msg);
			set_aside(g, dir, data, trigger, reason);
			return DM_OK;
		}
	}
	/* Without a trigger, registered already?  (With one, the file goes
	 * through: cat_bulk_add skips a replica registered with the same
	 * checksums, and a failure never moves a registered file.) */
	rc = trigger ? DM_OK : cat_replica_list(g->db, e.scope, e.name, c->rse, ~0u, rep_cb, &rf);
	if (rc && rc != DM_ENOENT) {
		dm_log(DM_LOG_ERROR, WHO, "%s: cannot ask the catalog, retried later: %s: %s", data,
		       cat_error(g->db)->cls, cat_error(g->db)->msg);
		g->catalog_trouble = 1;
		g->st->waiting++;
		ing_trigger_free(&t);
		return DM_OK;
	}
	if (rf.found) {
		if ((t.has_bytes && t.bytes != rf.bytes) || (t.adler32[0] && strcmp(t.adler32, rf.adler32))) {
			snprintf(reason, sizeof reason,
				 "FileConsistencyMismatch: '%s:%s' is registered on %s with %llu bytes,"
				 " adler32 %s; the trigger says otherwise", e.scope, e.name, c->rse,
				 (unsigned long long)rf.bytes, rf.adler32);
			/* the registered file stays where its replica says it is */
			set_aside(g, dir, NULL, trigger, reason);
		} else {
			if (trigger)
				ack_push(&g->ack, dm_xstrdup(trigger));
			g->st->already++;
		}
		ing_trigger_free(&t);
		return DM_OK;
	}
	if (!trigger && dm_now() - sb.st_mtime < c->quiet_time) {
		g->st->waiting++;
		return DM_OK;
	}
	/* verify: size, adler32, md5 (no transaction open) */
	{
		char md5[33];
		rc = dm_file_checksums(data, &e.bytes, e.adler32, md5, &err);
		if (rc) {
			ing_trigger_free(&t);
			dm_log(DM_LOG_WARN, WHO, "%s: %s (retried later)", data, err.msg);
			return DM_OK;
		}
		if (t.has_bytes && t.bytes != e.bytes)
			snprintf(reason, sizeof reason,
				 "FileConsistencyMismatch: %llu bytes, the trigger says %llu",
				 (unsigned long long)e.bytes, (unsigned long long)t.bytes);
		else if (t.adler32[0] && strcmp(t.adler32, e.adler32))
			snprintf(reason, sizeof reason,
				 "FileConsistencyMismatch: adler32 %s, the trigger says %s", e.adler32,
				 t.adler32);
		else if (t.md5[0] && strcmp(t.md5, md5))
			snprintf(reason, sizeof reason,
				 "FileConsistencyMismatch: md5 %s, the trigger says %s", md5, t.md5);
		else
			reason[0] = 0;
		if (reason[0]) {
			ing_trigger_free(&t);
			fail_file(g, dir, e.scope, e.name, data, trigger, reason);
			return DM_OK;
		}
		if (t.md5[0] || c->md5)
			memcpy(e.md5, md5, sizeof e.md5);
	}
	/* describe: the extractor's keys, then the trigger's (which win) */
	if (extract(c, data, &e.meta, &err)) {
		ing_trigger_free(&t);
		snprintf(reason, sizeof reason, "%s: %s", err.cls[0] ? err.cls : "InputValidationError",
			 err.msg);
		entry_free(&e);
		fail_file(g, dir, c->scope, e.name, data, trigger, reason);
		return DM_OK;
	}
	for (size_t i = 0; i < t.meta.n; i++)
		ing_meta_set(&e.meta, t.meta.key[i], t.meta.value[i], NULL);
	ing_trigger_free(&t);
	if (c->dataset) {
		struct lookup_ud u = { &e, &sb, rel, "" };
		const char *colon;
		rc = ing_pattern_expand(c->dataset, pattern_lookup, &u, &ds, &err);
		colon = strchr(ds.s, ':');
		if (!rc) {
			if (colon)
				rc = cat_parse_did(ds.s, e.ds_scope, e.ds_name, &err);
			else if (strlen(ds.s) > CAT_NAME_MAX || cat_validate_name(ds.s, &err))
				rc = err.code ? err.code : DM_EINVAL;
			else {
				dm_strlcpy(e.ds_scope, c->scope, sizeof e.ds_scope);
				dm_strlcpy(e.ds_name, ds.s, sizeof e.ds_name);
			}
		}
		if (rc) {
			snprintf(reason, sizeof reason, "%s: dataset name: %s",
				 err.cls[0] ? err.cls : "InvalidObject", err.msg[0] ? err.msg : ds.s);
			dm_buf_release(&ds);
			entry_free(&e);
			fail_file(g, dir, c->scope, e.name, data, trigger, reason);
			return DM_OK;
		}
		dm_buf_release(&ds);
	}
	{
		struct dm_buf pfn = DM_BUF_INIT;
		cat_pfn_join(&g->proto, rel, &pfn);
		e.pfn = dm_buf_detach(&pfn);
	}
	e.data = dm_xstrdup(data);
	e.trigger = trigger ? dm_xstrdup(trigger) : NULL;
	g->batch[g->n++] = e;
	if (g->n == (size_t)c->batch)
		return flush(g);
	return DM_OK;
}

/* Dataset of a batch: created with its rules when missing, in the batch's
 * transaction.  *created: 1 if this call made it. */
static int did_exists(void *ud, const struct cat_did *d)
{
	(void)d;
	*(int *)ud = 1;
	return 0;
}

static void forget_datasets(struct eng *g)
{
	for (size_t i = 0; i < g->nknown; i++)
		free(g->known[i]);
	g->nknown = 0;
}

static int known_dataset(struct eng *g, const char *scope, const char *name, int add)
{
	struct dm_buf b = DM_BUF_INIT;
	int found = 0;

	dm_buf_addf(&b, "%s:%s", scope, name);
	for (size_t i = 0; i < g->nknown && !found; i++)
		found = !strcmp(g->known[i], b.s);
	if (!found && add) {
		if (g->nknown == DM_ARRAY_SIZE(g->known))
			forget_datasets(g);
		g->known[g->nknown++] = dm_buf_detach(&b);
	}
	dm_buf_release(&b);
	return found;
}

static enum dm_status ensure_dataset(struct eng *g, const char *scope, const char *name,
				     int *created)
{
	int found = 0;
	enum dm_status rc;

	*created = 0;
	if (known_dataset(g, scope, name, 0))
		return DM_OK;
	rc = cat_did_get(g->db, scope, name, did_exists, &found);
	if (rc != DM_ENOENT)
		return rc;
	rc = cat_did_add(g->db, scope, name, CAT_DID_DATASET, 0);
	for (size_t i = 0; !rc && i < g->c->nrules; i++) {
		const struct rule_cfg *r = &g->c->rules[i];
		struct cat_rule_opts o;
		char id[33];
		cat_rule_opts_init(&o);
		o.copies = r->copies;
		o.rse_expression = r->expression;
		o.grouping = r->grouping;
		o.lifetime = r->lifetime;
		o.purge_replicas = r->purge;
		if (r->activity)
			o.activity = r->activity;
		if (r->comment)
			o.comment = r->comment;
		rc = cat_rule_add(g->db, scope, name, &o, id);
		if (!rc)
			dm_log(DM_LOG_INFO, WHO, "dataset %s:%s: rule %s (%d x %s)", scope, name, id,
			       r->copies, r->expression);
	}
	if (!rc)
		*created = 1;
	return rc;
}

/* One transaction for entries[0..n): 0 done; 1 the catalog refused one of
 * the files (perm); -1 the catalog itself is in the way (retry later). */
static int commit(struct eng *g, struct entry *en, size_t n, uint64_t *created,
		  uint64_t *added)
{
	enum dm_status rc;
	int perm = 0;
	char *done = dm_xcalloc(n, 1);

	*created = 0;
	*added = 0;
	memset(&g->last, 0, sizeof g->last);
	rc = cat_batch_begin(g->db);
	for (size_t i = 0; !rc && i < n; i++) {
		struct cat_bulk *b = NULL;
		const char *dss = en[i].ds_name[0] ? en[i].ds_scope : NULL;
		const char *dsn = en[i].ds_name[0] ? en[i].ds_name : NULL;
		int made = 0;
		if (done[i])
			continue;
		if (dsn) {
			rc = ensure_dataset(g, dss, dsn, &made);
			if (rc)
				break;
			*created += (uint64_t)made;
		}
		rc = cat_bulk_begin(g->db, g->c->rse, dss, dsn, 0, &b);
		if (rc)
			break;
		for (size_t j = i; j < n; j++) {
			struct cat_file_in f;
			if (done[j] || strcmp(en[j].ds_scope, en[i].ds_scope) ||
			    strcmp(en[j].ds_name, en[i].ds_name))
				continue;
			f = (struct cat_file_in){ en[j].scope, en[j].name, en[j].bytes, en[j].adler32,
						  en[j].md5[0] ? en[j].md5 : NULL, en[j].pfn, -1 };
			rc = cat_bulk_add(b, &f);
			if (rc) {
				g->last = *cat_error(g->db);
				perm = !is_transient(g->db);
				cat_bulk_abort(b);
				b = NULL;
				break;
			}
			done[j] = 1;
		}
		if (b) {
			uint64_t k = 0;
			rc = cat_bulk_commit(b, &k);
			*added += k;
		}
	}
	for (size_t i = 0; !rc && i < n; i++)
		for (size_t k = 0; !rc && k < en[i].meta.n; k++) {
			rc = cat_did_meta_set(g->db, en[i].scope, en[i].name, en[i].meta.key[k],
					      en[i].meta.value[k]);
			if (rc)
				perm = !is_transient(g->db);
		}
	free(done);
	if (rc) {
		if (!perm || !g->last.code)
			g->last = *cat_error(g->db);
		cat_batch_end(g->db, rc); /* rolls everything back */
		forget_datasets(g);
		return perm ? 1 : -1;
	}
	rc = cat_batch_end(g->db, DM_OK);
	if (rc) {
		g->last = *cat_error(g->db);
		forget_datasets(g);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (en[i].ds_name[0])
			known_dataset(g, en[i].ds_scope, en[i].ds_name, 1);
	return 0;
}

static void acknowledge(struct eng *g, struct entry *e)
{
	if (e->trigger) {
		ack_push(&g->ack, e->trigger);
		e->trigger = NULL;
	}
	dm_log(DM_LOG_DEBUG, WHO, "registered %s:%s (%llu bytes)%s%s:%s", e->scope, e->name,
	       (unsigned long long)e->bytes, e->ds_name[0] ? " in " : "", e->ds_scope, e->ds_name);
	g->st->bytes += e->bytes;
}

/* n files committed, added of them new replicas: the others were
 * registered already (seen again). */
static void count(struct eng *g, size_t n, uint64_t added)
{
	g->st->registered += added;
	g->st->already += n - (added < n ? added : n);
}

static enum dm_status flush(struct eng *g)
{
	uint64_t created = 0, added = 0;
	int r;

	if (!g->n)
		return DM_OK;
	r = commit(g, g->batch, g->n, &created, &added);
	if (r == 0) {
		g->st->datasets += created;
		count(g, g->n, added);
		for (size_t i = 0; i < g->n; i++)
			acknowledge(g, &g->batch[i]);
		g->catalog_trouble = 0;
	} else {
		/* one file at a time: the one the catalog refuses is set aside */
		if (g->n > 1)
			dm_log(DM_LOG_INFO, WHO, "batch of %zu refused (%s: %s): file by file", g->n,
			       g->last.cls, g->last.msg);
		g->catalog_trouble = 0;
		for (size_t i = 0; i < g->n; i++) {
			r = commit(g, &g->batch[i], 1, &created, &added);
			if (r == 0) {
				g->st->datasets += created;
				count(g, 1, added);
				acknowledge(g, &g->batch[i]);
			} else if (r > 0) {
				char reason[1200];
				struct entry *x = &g->batch[i];
				snprintf(reason, sizeof reason, "%s: %s", g->last.cls, g->last.msg);
				fail_file(g, x->dir, x->scope, x->name, x->data, x->trigger, reason);
			} else {
				dm_log(DM_LOG_ERROR, WHO, "%s: not registered now, retried later: %s: %s",
				       g->batch[i].data, g->last.cls, g->last.msg);
				g->st->waiting++;
				g->catalog_trouble = 1;
			}
		}
	}
	for (size_t i = 0; i < g->n; i++)
		entry_free(&g->batch[i]);
	g->n = 0;
	return DM_OK;
}

static int has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

/* A name the scan looks at: no dot files (.failed/, temporary files),
 * no upload leftovers, no .reason files. */
static int ignored_name(const char *n)
{
	return n[0] == '.' || has_suffix(n, ".rucio.upload") || has_suffix(n, ".reason") ||
	       has_suffix(n, ".reason.tmp");
}

/* One regular file seen (by a scan, or an event: event = 1). */
static enum dm_status seen(struct eng *g, size_t dir, const char *path, int event)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (ignored_name(base))
		return DM_OK;
	if (g->c->suffix) {
		struct dm_buf b = DM_BUF_INIT;
		enum dm_status rc = DM_OK;
		if (has_suffix(base, g->c->suffix)) {
			if (strlen(base) == strlen(g->c->suffix))
				return DM_OK;
			dm_buf_add(&b, path, strlen(path) - strlen(g->c->suffix));
			rc = take(g, dir, b.s, path);
		} else if (event) {
			/* the data file came after its trigger (a scan sees the trigger) */
			dm_buf_addf(&b, "%s%s", path, g->c->suffix);
			if (access(b.s, F_OK) == 0)
				rc = take(g, dir, path, b.s);
		}
		dm_buf_release(&b);
		return rc;
	}
	return take(g, dir, path, NULL);
}

static void add_watch(struct eng *g, const char *path)
{
	int wd;

	if (g->inotify < 0)
		return;
	wd = inotify_add_watch(g->inotify, path,
			       IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ONLYDIR);
	if (wd < 0) {
		dm_log(DM_LOG_WARN, WHO, "cannot watch %s (%s): rescans only", path, strerror(errno));
		return;
	}
	for (size_t i = 0; i < g->nwatches; i++)
		if (g->watches[i].wd == wd)
			return;
	g->watches = dm_xrealloc(g->watches, (g->nwatches + 1) * sizeof *g->watches);
	g->watches[g->nwatches].wd = wd;
	g->watches[g->nwatches].path = dm_xstrdup(path);
	g->nwatches++;
}

/* Depth-first over a directory (streamed: no listing held in memory). */
static enum dm_status scan_dir(struct eng *g, size_t dir, struct dm_buf *path)
{
	DIR *d = opendir(path->s);
	struct dirent *de;
	size_t base = path->len;
	enum dm_status rc = DM_OK;

	if (!d) {
		dm_log(DM_LOG_WARN, WHO, "cannot read %s: %s", path->s, strerror(errno));
		return DM_OK;
	}
	add_watch(g, path->s);
	while (!rc && !*g->stop && (de = readdir(d))) {
		struct stat sb;
		if (ignored_name(de->d_name))
			continue;
		path->len = base;
		path->s[base] = 0;
		dm_buf_addf(path, "/%s", de->d_name);
		/* the directory says what an entry is; stat only when it does not */
		if (de->d_type == DT_REG)
			sb.st_mode = S_IFREG;
		else if (de->d_type == DT_DIR)
			sb.st_mode = S_IFDIR;
		else if (de->d_type != DT_UNKNOWN || lstat(path->s, &sb))
			continue;
		if (S_ISDIR(sb.st_mode)) {
			int nested = 0;
			/* another watched directory below this one is scanned as itself */
			for (size_t i = 0; i < g->c->ndirs; i++)
				nested |= i != dir && !strcmp(g->c->dirs[i], path->s);
			if (!nested)
				rc = scan_dir(g, dir, path);
		} else if (S_ISREG(sb.st_mode)) {
			rc = seen(g, dir, path->s, 0);
		}
	}
	closedir(d);
	path->len = base;
	path->s[base] = 0;
	return rc;
}

static enum dm_status scan_all(struct eng *g)
{
	enum dm_status rc = DM_OK;

	/* a trigger whose removal is pending is not to be seen again */
	ack_drain(&g->ack);
	g->st->waiting = 0;
	for (size_t i = 0; i < g->c->ndirs && !rc && !*g->stop; i++) {
		struct dm_buf p = DM_BUF_INIT;
		dm_buf_adds(&p, g->c->dirs[i]);
		rc = scan_dir(g, i, &p);
		dm_buf_release(&p);
	}
	if (!rc)
		rc = flush(g);
	return rc;
}

static size_t dir_of(const struct eng *g, const char *path)
{
	size_t best = 0, bl = 0;
	for (size_t i = 0; i < g->c->ndirs; i++) {
		size_t l = strlen(g->c->dirs[i]);
		if (l > bl && !strncmp(path, g->c->dirs[i], l) && (path[l] == '/' || !path[l])) {
			best = i;
			bl = l;
		}
	}
	return best;
}

/* Read pending inotify events; 1 when a full rescan is due (overflow). */
static int events(struct eng *g)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n = read(g->inotify, buf, sizeof buf);
	int rescan = 0;

	if (n <= 0)
		return 0;
	for (char *p = buf; p < buf + n;) {
		struct inotify_event *ev = (struct inotify_event *)p;
		const char *dpath = NULL;
		p += sizeof *ev + ev->len;
		if (ev->mask & IN_Q_OVERFLOW) {
			rescan = 1;
			continue;
		}
		for (size_t i = 0; i < g->nwatches && !dpath; i++)
			if (g->watches[i].wd == ev->wd)
				dpath = g->watches[i].path;
		if (!dpath || !ev->len || ignored_name(ev->name))
			continue;
		struct dm_buf path = DM_BUF_INIT;
		dm_buf_addf(&path, "%s/%s", dpath, ev->name);
		if (ev->mask & IN_ISDIR) {
			/* a new directory: watch it and look at what it already holds */
			scan_dir(g, dir_of(g, path.s), &path);
		} else if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) {
			seen(g, dir_of(g, path.s), path.s, 1);
		}
		dm_buf_release(&path);
	}
	return rescan;
}

static int rse_det(void *ud, const struct cat_rse *r)
{
	*(int *)ud = r->deterministic;
	return 0;
}

enum dm_status ing_run(struct cat_db *db, struct ing_config *c, int once, volatile int *stop,
		       struct ing_stats *st, struct dm_err *err)
{
	struct eng g = { .db = db, .c = c, .st = st, .stop = stop, .proto_strs = DM_BUF_INIT,
			 .inotify = -1 };
	int det = -1;
	enum dm_status rc;
	double last_scan, next_scan;

	memset(st, 0, sizeof *st);
	if (c->account && cat_set_issuer(db, c->account))
		return dm_seterr(err, cat_error(db)->code, cat_error(db)->cls, "%s",
				 cat_error(db)->msg);
	rc = cat_rse_get(db, c->rse, rse_det, &det);
	if (rc)
		return dm_seterr(err, rc, cat_error(db)->cls, "%s", cat_error(db)->msg);
	if (det == 1)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "RSE '%s' is deterministic: ingest registers files where they were"
				 " dropped, which needs a non-deterministic RSE (add-rse"
				 " --non-deterministic)", c->rse);
	rc = cat_rse_protocol_for(db, c->rse, CAT_OP_WRITE, NULL, &g.proto, &g.proto_strs);
	if (rc) {
		dm_buf_release(&g.proto_strs);
		return dm_seterr(err, rc, rc == DM_ENOTSUP ? "RSEProtocolNotSupported" : cat_error(db)->cls,
				 "RSE '%s' has no protocol to build the replicas' PFNs from%s%s", c->rse,
				 rc == DM_ENOTSUP ? "" : ": ", rc == DM_ENOTSUP ? "" : cat_error(db)->msg);
	}
	g.root_len = strlen(c->root);
	for (size_t i = 0; i < c->ndirs; i++) {
		struct stat sb;
		if (stat(c->dirs[i], &sb) || !S_ISDIR(sb.st_mode)) {
			dm_buf_release(&g.proto_strs);
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "watched directory '%s' is not a directory", c->dirs[i]);
		}
	}
	g.batch = dm_xcalloc((size_t)c->batch, sizeof *g.batch);
	ack_init(&g.ack);
	if (!once) {
		g.inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (g.inotify < 0)
			dm_log(DM_LOG_WARN, WHO, "no inotify (%s): rescans only", strerror(errno));
	}
	rc = scan_all(&g);
	last_scan = mono_now();
	next_scan = last_scan + c->rescan;
	while (!rc && !once && !*stop) {
		double now = mono_now(), wait = next_scan - now, due = next_scan;
		struct pollfd pf = { g.inotify, POLLIN, 0 };
		int n;

		/* files becoming quiet, or a catalog that was in the way: sooner */
		if (!c->suffix && st->waiting && last_scan + c->quiet_time / 2.0 + 1 < due)
			due = last_scan + c->quiet_time / 2.0 + 1;
		if ((g.catalog_trouble || st->waiting) && last_scan + 10 < due)
			due = last_scan + 10;
		wait = due - now;
		if (g.n && wait > 0.2)
			wait = 0.2;
		if (wait < 0)
			wait = 0;
		n = poll(&pf, g.inotify >= 0 ? 1 : 0, (int)(wait * 1000));
		if (*stop)
			break;
		if (n > 0) {
			if (events(&g))
				next_scan = 0;
			continue;
		}
		flush(&g);
		if (mono_now() >= due - 0.01) {
			rc = scan_all(&g);
			last_scan = mono_now();
			next_scan = last_scan + c->rescan;
		}
	}
	if (!rc)
		rc = flush(&g);
	if (once && g.catalog_trouble)
		rc = dm_seterr(err, DM_EIO, g.last.cls[0] ? g.last.cls : "DatabaseException",
			       "some files were not registered: %s", g.last.msg);
	ack_drain(&g.ack);
	ack_fini(&g.ack);
	forget_datasets(&g);
	for (size_t i = 0; i < g.n; i++)
		entry_free(&g.batch[i]);
	free(g.batch);
	for (size_t i = 0; i < g.nwatches; i++)
		free(g.watches[i].path);
	free(g.watches);
	if (g.inotify >= 0)
		close(g.inotify);
	dm_buf_release(&g.proto_strs);
	if (rc && !err->code)
		dm_seterr(err, rc, cat_error(db)->cls, "%s", cat_error(db)->msg);
	return rc;
}
