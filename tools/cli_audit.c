/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_audit.c - `didfs audit`: Rucio's auditor.  Compares what is on an
 * RSE's storage with the catalog's replicas of that RSE and reports
 *   dark data   files on storage that no replica of the RSE names, and
 *   lost files  AVAILABLE replicas whose file is not on storage;
 * --declare-bad declares each lost replica bad through
 * cat_replica_declare_suspicious (catalog.h: a SUSPICIOUS row in
 * bad_replicas, the replica BAD and its locks STUCK, so the judge-repairer
 * re-copies it from a good replica), one short transaction each.
 *
 * The storage listing is either a walk of the RSE's local view (--dir: the
 * directory its protocol prefix points at, as `add-replicas --walk`), or a
 * dump file (--list: one path relative to that directory a line).  The
 * catalog side is cat_rse_replica_dump; each replica's path is its stored
 * path (non-deterministic RSEs) or the RSE's lfn2pfn layout
 * (cat_lfn2path).  Memory is constant whatever the RSE's size: both
 * listings are written to temporary files, sorted by sort(1) (LC_ALL=C,
 * bounded buffer, spilling to --tmp-dir) and merged in one pass; the
 * findings are spooled to files and printed after the merge.
 *
 * In-flight files: with --dir, a file modified less than --grace seconds
 * ago (default 3600) counts as present but is never reported as dark (an
 * upload's .rucio.upload, a file waiting for ingest); a dump has no times,
 * so --list reports every path.
 * Replicas in other states than AVAILABLE (COPYING, BAD, ...) are never
 * reported lost, and their files are not dark.  Like Rucio's auditor this
 * compares two moments; what changed between the walk and the dump can
 * show up once (run it again before acting, or use --declare-bad, which
 * only marks replicas for repair).
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct audit {
	struct cli *c;
	const char *rse;
	int deterministic;
	char algo[64];
	int64_t grace;
	int64_t now;
	FILE *storage, *catalog;
	uint64_t nstorage, ncatalog, skipped;
	struct dm_buf tmp;
};

static int rse_det(void *ud, const struct cat_rse *r)
{
	((struct audit *)ud)->deterministic = r->deterministic;
	return 0;
}

static int bad_chars(const char *s)
{
	return strpbrk(s, "\t\n\r") != NULL;
}

/* ---- the storage listing ---- */

static void walk(struct audit *a, struct dm_buf *path, size_t root_len)
{
	DIR *d = opendir(path->s);
	struct dirent *de;
	size_t base = path->len;

	if (!d) {
		fprintf(stderr, "didfs: warning: cannot read %s: %s\n", path->s, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		struct stat sb;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		path->len = base;
		path->s[base] = 0;
		dm_buf_addf(path, "/%s", de->d_name);
		if (lstat(path->s, &sb))
			continue;
		if (S_ISDIR(sb.st_mode)) {
			walk(a, path, root_len);
		} else if (S_ISREG(sb.st_mode)) {
			if (bad_chars(path->s)) {
				a->skipped++;
				continue;
			}
			/* young files count as there, but are never dark */
			fprintf(a->storage, "%s\t%c\n", path->s + root_len + 1,
				a->now - sb.st_mtime < a->grace ? 'Y' : 'O');
			a->nstorage++;
		}
	}
	closedir(d);
	path->len = base;
	path->s[base] = 0;
}

static int read_list(struct audit *a, const char *file)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return cli_failf(a->c, "InputValidationError", "--list: cannot read '%s': %s", file,
				 strerror(errno));
	while ((n = getline(&line, &cap, f)) > 0) {
		char *p = line;
		while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
			p[--n] = 0;
		while (*p == '/')
			p++;
		if (!*p || *p == '#')
			continue;
		if (bad_chars(p) || memchr(line, 0, (size_t)n)) {
			a->skipped++;
			continue;
		}
		fprintf(a->storage, "%s\tO\n", p);
		a->nstorage++;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return 0;
}

/* ---- the catalog listing: "path \t state \t scope \t name" ---- */

static int dump_row(void *ud, const struct cat_replica *r)
{
	struct audit *a = ud;
	const char *path = r->path;
	struct dm_err e = { 0 };

	if (a->deterministic || !path || !*path) {
		dm_buf_reset(&a->tmp);
		if (cat_lfn2path(a->algo, r->scope, r->name, &a->tmp, &e))
			return 0;
		path = a->tmp.s;
	}
	while (*path == '/')
		path++;
	if (bad_chars(path) || bad_chars(r->name))
		return 0;
	fprintf(a->catalog, "%s\t%s\t%s\t%s\n", path, cat_replica_state_name(r->state), r->scope,
		r->name);
	a->ncatalog++;
	return 0;
}

/* One line of the sorted storage listing: "path \t Y|O" (young, old). */
static int read_srow(FILE *f, char **line, size_t *cap, int *young)
{
	while (getline(line, cap, f) > 0) {
		char *tab = strrchr(*line, '\t');
		if (!tab)
			continue;
		*young = tab[1] == 'Y';
		*tab = 0;
		return 1;
	}
	return 0;
}

/* One line of the sorted catalog listing, split once. */
struct crow {
	char *line;
	size_t cap;
	const char *path, *state, *scope, *name;
};

static int read_crow(FILE *f, struct crow *r)
{
	while (getline(&r->line, &r->cap, f) > 0) {
		char *p = r->line;
		p[strcspn(p, "\n")] = 0;
		r->path = strsep(&p, "\t");
		r->state = strsep(&p, "\t");
		r->scope = strsep(&p, "\t");
		r->name = p;
		if (r->state && r->scope && r->name)
			return 1;
	}
	return 0;
}

/* sort(1) IN into OUT by the first tab-separated field (the path), in byte
 * order with a bounded buffer. */
static int run_sort(struct cli *c, const char *dir, const char *in, const char *out)
{
	char tbuf[PATH_MAX + 4], obuf[PATH_MAX + 4];
	char *argv[12];
	int n = 0, status = 0;
	pid_t pid;
	char *env[] = { "LC_ALL=C", NULL };

	snprintf(tbuf, sizeof tbuf, "-T%s", dir);
	snprintf(obuf, sizeof obuf, "-o%s", out);
	argv[n++] = "sort";
	argv[n++] = "-S16M";
	argv[n++] = tbuf;
	argv[n++] = "-t\t";
	argv[n++] = "-k1,1";
	argv[n++] = obuf;
	argv[n++] = (char *)in;
	argv[n] = NULL;
	if (posix_spawnp(&pid, "sort", NULL, NULL, argv, env))
		return cli_failf(c, "RucioException", "cannot run sort(1): %s", strerror(errno));
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return cli_failf(c, "RucioException", "sort(1) of the listing failed (status %d)",
				 status);
	return 0;
}

static void json_str(FILE *f, const char *s)
{
	json_t *j = json_string(s);
	char *t = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;

	fputs(t ? t : "null", f);
	free(t);
	json_decref(j);
}

int cli_audit(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rse", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "list", required_argument, NULL, 'l' },
		{ "grace", required_argument, NULL, 'g' },
		{ "declare-bad", no_argument, NULL, 'b' },
		{ "tmp-dir", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct audit a = { .c = c, .grace = 3600, .tmp = DM_BUF_INIT };
	const char *dir = NULL, *list = NULL, *tmpdir = getenv("TMPDIR");
	char work[PATH_MAX], sp[PATH_MAX + 16], cp[PATH_MAX + 16], ss[PATH_MAX + 16],
		cs[PATH_MAX + 16];
	int declare = 0, opt, rc = 0;
	FILE *fs = NULL, *fc = NULL, *dark = NULL, *lost = NULL;
	uint64_t ndark = 0, nlost = 0, declared = 0, declare_failed = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': a.rse = optarg; break;
		case 'd': dir = optarg; break;
		case 'l': list = optarg; break;
		case 'g':
			if (cli_parse_int(c, "--grace", optarg, 0, INT64_MAX / 2, "seconds", &a.grace))
				return 1;
			break;
		case 'b': declare = 1; break;
		case 't': tmpdir = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (!a.rse || !dir == !list || optind != argc)
		return cli_usage(c);
	if (dir) {
		struct stat sb;
		if (stat(dir, &sb) || !S_ISDIR(sb.st_mode))
			return cli_failf(c, "InputValidationError", "--dir: '%s' is not a directory", dir);
	}
	if (cli_open(c))
		return 1;
	if (cat_rse_get(c->db, a.rse, rse_det, &a))
		return cli_fail(c, NULL);
	if (cat_rse_attr_get(c->db, a.rse, "lfn2pfn_algorithm", a.algo, sizeof a.algo))
		dm_strlcpy(a.algo, "hash", sizeof a.algo);
	snprintf(work, sizeof work, "%s/didfs-audit-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(work))
		return cli_failf(c, "RucioException", "cannot create a work directory in %s: %s",
				 tmpdir && *tmpdir ? tmpdir : "/tmp", strerror(errno));
	snprintf(sp, sizeof sp, "%s/storage", work);
	snprintf(cp, sizeof cp, "%s/catalog", work);
	snprintf(ss, sizeof ss, "%s/storage.sorted", work);
	snprintf(cs, sizeof cs, "%s/catalog.sorted", work);
	a.storage = fopen(sp, "w");
	a.catalog = fopen(cp, "w");
	dark = tmpfile();
	lost = tmpfile();
	if (!a.storage || !a.catalog || !dark || !lost) {
		rc = cli_failf(c, "RucioException", "cannot write in %s: %s", work, strerror(errno));
		goto out;
	}
	/* 1: the two listings */
	a.now = dm_now();
	if (dir) {
		struct dm_buf p = DM_BUF_INIT;
		dm_buf_adds(&p, dir);
		while (p.len > 1 && p.s[p.len - 1] == '/')
			p.s[--p.len] = 0;
		walk(&a, &p, p.len);
		dm_buf_release(&p);
	} else {
		rc = read_list(&a, list);
		if (rc)
			goto out;
	}
	if (cat_rse_replica_dump(c->db, a.rse, dump_row, &a)) {
		rc = cli_fail(c, NULL);
		goto out;
	}
	if (fclose(a.storage) | fclose(a.catalog)) {
		a.storage = a.catalog = NULL;
		rc = cli_failf(c, "RucioException", "cannot write in %s: %s", work, strerror(errno));
		goto out;
	}
	a.storage = a.catalog = NULL;
	/* 2: sorted by path */
	if ((rc = run_sort(c, work, sp, ss)) || (rc = run_sort(c, work, cp, cs)))
		goto out;
	unlink(sp);
	unlink(cp);
	/* 3: one merge pass */
	fs = fopen(ss, "r");
	fc = fopen(cs, "r");
	if (!fs || !fc) {
		rc = cli_failf(c, "RucioException", "cannot read the sorted listings: %s",
			       strerror(errno));
		goto out;
	}
	{
		char *sl = NULL;
		size_t scap = 0;
		struct crow cr = { 0 };
		int young = 0, have_s = read_srow(fs, &sl, &scap, &young), have_c = read_crow(fc, &cr);
		while (have_s || have_c) {
			int cmp = !have_s ? 1 : !have_c ? -1 : strcmp(sl, cr.path);
			if (cmp < 0) {
				if (!young) {
					fprintf(dark, "%s\n", sl);
					ndark++;
				}
			} else if (cmp > 0) {
				if (!strcmp(cr.state, "AVAILABLE")) {
					fprintf(lost, "%s\t%s\t%s\n", cr.scope, cr.name, cr.path);
					nlost++;
				}
				have_c = read_crow(fc, &cr);
				continue;
			} else {
				/* the file is there: every replica naming it matches */
				while (have_c && !strcmp(cr.path, sl))
					have_c = read_crow(fc, &cr);
			}
			/* the next storage path (a dump may repeat one) */
			{
				char *keep = dm_xstrdup(sl);
				do
					have_s = read_srow(fs, &sl, &scap, &young);
				while (have_s && !strcmp(sl, keep));
				free(keep);
			}
		}
		free(sl);
		free(cr.line);
	}
	/* 4: declare, then print */
	fflush(dark);
	fflush(lost);
	if (declare && nlost) {
		char *line = NULL;
		size_t cap = 0;
		rewind(lost);
		while (getline(&line, &cap, lost) > 0) {
			char *p = line, *scope = strsep(&p, "\t"), *name = strsep(&p, "\t");
			if (!name)
				continue;
			if (cat_replica_declare_suspicious(c->db, a.rse, scope, name,
							   "auditor: the file is missing from storage")) {
				const struct dm_err *e = cat_error(c->db);
				if (declare_failed++ < 3)
					fprintf(stderr, "didfs: cannot declare %s:%s bad: %s: %s\n", scope,
						name, e->cls, e->msg);
			} else {
				declared++;
			}
		}
		free(line);
	}
	rewind(dark);
	rewind(lost);
	{
		char *line = NULL;
		size_t cap = 0;
		int first = 1;
		if (c->json) {
			printf("{\"rse\": ");
			json_str(stdout, a.rse);
			printf(", \"storage_files\": %llu, \"catalog_replicas\": %llu, \"dark_count\": %llu,"
			       " \"lost_count\": %llu, \"declared_bad\": %llu, \"dark\": [",
			       (unsigned long long)a.nstorage, (unsigned long long)a.ncatalog,
			       (unsigned long long)ndark, (unsigned long long)nlost,
			       (unsigned long long)declared);
		}
		while (getline(&line, &cap, dark) > 0) {
			line[strcspn(line, "\n")] = 0;
			if (c->json) {
				printf(first ? "" : ", ");
				json_str(stdout, line);
			} else {
				printf("DARK %s\n", line);
			}
			first = 0;
		}
		if (c->json)
			printf("], \"lost\": [");
		first = 1;
		while (getline(&line, &cap, lost) > 0) {
			char *p = line, *scope, *name;
			line[strcspn(line, "\n")] = 0;
			scope = strsep(&p, "\t");
			name = strsep(&p, "\t");
			if (!name || !p)
				continue;
			if (c->json) {
				printf("%s{\"scope\": ", first ? "" : ", ");
				json_str(stdout, scope);
				printf(", \"name\": ");
				json_str(stdout, name);
				printf(", \"path\": ");
				json_str(stdout, p);
				printf("}");
			} else {
				printf("LOST %s:%s %s\n", scope, name, p);
			}
			first = 0;
		}
		free(line);
		if (c->json)
			printf("]}\n");
		else
			printf("Audited %s: %llu file(s) on storage, %llu replica(s) in the catalog:"
			       " %llu dark, %llu lost%s\n", a.rse, (unsigned long long)a.nstorage,
			       (unsigned long long)a.ncatalog, (unsigned long long)ndark,
			       (unsigned long long)nlost, declare ? "" : "");
		if (declare && !c->json)
			printf("Declared %llu lost replica(s) bad\n", (unsigned long long)declared);
		if (a.skipped)
			fprintf(stderr, "didfs: %llu storage path(s) with tabs or newlines not compared\n",
				(unsigned long long)a.skipped);
	}
	if (declare_failed)
		rc = cli_failf(c, "RucioException", "%llu lost replica(s) could not be declared bad",
			       (unsigned long long)declare_failed);
out:
	if (a.storage)
		fclose(a.storage);
	if (a.catalog)
		fclose(a.catalog);
	if (fs)
		fclose(fs);
	if (fc)
		fclose(fc);
	if (dark)
		fclose(dark);
	if (lost)
		fclose(lost);
	unlink(sp);
	unlink(cp);
	unlink(ss);
	unlink(cs);
	rmdir(work);
	dm_buf_release(&a.tmp);
	return rc;
}
