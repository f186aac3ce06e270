/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conveyor.c - the conveyor: claims QUEUED transfer requests, copies each
 * file to its destination RSE, verifies it there and reports the outcome
 * (Rucio's submitter, poller and finisher in one, with the transfer done by
 * didfs itself instead of FTS).
 *
 * Threads.  The loop thread owns the catalog handle: it requeues orphans,
 * claims requests, plans them (sources best first, PFNs), hands them to
 * worker threads and records what comes back (cat_replica_declare_bad,
 * cat_req_finish).  Workers only touch storage, through one shared transfer
 * context.  Two lanes of workers: conveyor.parallel stream workers (the
 * conveyor's own bandwidth and disk) and conveyor.tpc_parallel TPC workers
 * (a third-party copy mostly waits: ~2.5 s per file on XRootD whatever its
 * size, so many in flight), at most conveyor.tpc_per_rse of them copying to
 * one destination RSE (an XRootD server runs 9 at once and fails the ones
 * queued behind too long).  plan() puts a request in the TPC lane when its
 * best source can TPC to the destination and the file is not smaller than
 * conveyor.stream_below, else in the stream lane.  At most parallel +
 * tpc_parallel requests are claimed at a time, so every claimed request is
 * being worked on or is next in its lane, and a stop never strands one
 * (workers drain their lane before they quit; memory is bounded by that
 * number too); --once claims one chunk (conveyor.chunk_size) and sees it
 * through.
 *
 * One transfer (a worker):
 *   0. final PFN already there with the right size and adler32 (a conveyor
 *      died after its rename, before recording DONE): done, nothing copied;
 *   1. for each source, best first, within a time budget:
 *      a. third-party copy (source TPC_READ and destination TPC_WRITE
 *         protocols with schemes xfer_tpc_possible accepts) to
 *         a temporary name, "<final>.rucio.upload" or, for the next try,
 *         "<final>.1.rucio.upload" (see tmp_url); or, if TPC is impossible or failed and
 *         conveyor.tpc_fallback, stream: get the source into a local file
 *         (checksummed on the fly: a mismatch there proves the source bad)
 *         and put it to a new temporary name.  A file smaller than
 *         conveyor.stream_below is streamed first and third-party copied
 *         only when streaming failed (not when the source proved bad);
 *      b. verify size and adler32 AT THE DESTINATION (server checksum of the
 *         temporary file; read back when the server has none);
 *      c. rename to the final PFN.
 *      A mismatch after a TPC is blamed on the source when the source's own
 *      checksum is wrong too (or unavailable): the source is declared BAD and
 *      the next source is tried.  The temporary file is removed on every
 *      failure.
 *      A streamed copy of a file the catalog has no per-block manifest for
 *      builds one from its local bytes; it is recorded with a DONE outcome
 *      (a TPC never passes the bytes through here).
 *   2. outcome DONE (with the source used), FAILED (reasons of every source;
 *      the catalog counts retries) or NO_SOURCES.  Corrupted sources are
 *      declared BAD at once; a FAILED attempt that will be retried is held
 *      back conveyor.retry_delay * 2^attempt seconds first (the request stays
 *      SUBMITTED under this conveyor), so a short outage does not use up
 *      every retry.
 * Invariants: nothing is ever written under the final name except by a
 * rename of a verified file, so a kill at any moment leaves at worst a
 * temporary file that the next attempt of the same request removes (both
 * names, before it copies); the replica row is the catalog's (state COPYING
 * since the rule placed it), DONE only flips it to AVAILABLE, so a request
 * redone after a kill can never register a replica twice.
 */
#include "daemon_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONV_MAX_SOURCES 16
#define TMP_SUFFIX ".rucio.upload"
#define LOCAL_PREFIX "didfs-conveyor-"
/* the number of a streamed copy's local file: LOCAL_PREFIX<pid>-<n> */
static unsigned long local_seq;
#define RECORD_TRIES 30 /* cycles an outcome is kept when the catalog is busy */
#define DELAYED_MAX 256  /* failures held back before their retry, at most */

enum lane {
	LANE_STREAM, /* conveyor.parallel workers */
	LANE_TPC,    /* conveyor.tpc_parallel workers, tpc_per_rse per destination */
	LANE_COUNT
};

enum attempt {
	ATT_OK,      /* copied, verified, renamed */
	ATT_BAD_SRC, /* the source's data is wrong: declare it BAD */
	ATT_FAIL,    /* anything else */
};

struct conv_src {
	char rse[CAT_RSE_MAX + 1];
	int distance;
	char *read_url; /* READ protocol PFN (streamed copy), or NULL */
	char *tpc_url;  /* TPC_READ PFN matching the destination's TPC scheme, or NULL */
	int bad;        /* outcome: proved corrupted */
	char bad_reason[512];
};

struct conv_job {
	struct conv_job *next;
	/* the request */
	char id[33];
	char scope[CAT_SCOPE_MAX + 1];
	char name[CAT_NAME_MAX + 1];
	char dest_rse[CAT_RSE_MAX + 1];
	uint64_t bytes;
	char adler32[9];
	char md5[33];
	int retry_count;
	char request_id[72]; /* of the REST request that added the rule (logged) */
	/* the plan */
	char *dst_url;     /* final PFN, WRITE protocol */
	char *dst_tpc_url; /* final PFN, TPC_WRITE protocol, or NULL */
	int nsrc;
	struct conv_src src[CONV_MAX_SOURCES];
	int tpc, tpc_fallback;
	int stream_first;  /* smaller than conveyor.stream_below: stream, TPC if that fails */
	enum lane lane;    /* which workers take it */
	double budget;     /* seconds a worker may spend on it */
	unsigned long seq; /* local temporary file number */
	int ntmp;          /* tries so far (which temporary name is next) */
	int want_manifest; /* the file has no per-block manifest in the catalog yet */
	struct cat_manifest manifest; /* built from a streamed copy's bytes (n > 0 or bytes 0) */
	int have_manifest;
	/* the outcome */
	int record_tries;  /* failed attempts to record it in the catalog */
	int delayed;       /* held back once before being recorded FAILED */
	double due;        /* when a held-back failure is recorded */
	enum cat_req_state outcome;
	int used;          /* index of the source that served, -1 */
	const char *mode;  /* "tpc", "streamed", "already at destination" */
	struct dm_buf errors;
	double seconds;
};

struct conv_worker {
	struct conveyor *cv;
	enum lane lane;
};

/* TPCs in flight to one destination RSE (TPC lane, under mu). */
struct conv_rse_load {
	char rse[CAT_RSE_MAX + 1];
	int n;
};

struct conveyor {
	struct xfer_ctx *xfer;
	struct dmn_config xcfg; /* settings the context and the workers were built with */
	pthread_t *tids;
	struct conv_worker *workers;
	int nworkers;
	int nlane[LANE_COUNT];  /* workers per lane */
	pthread_mutex_t mu;
	pthread_cond_t work_cv[LANE_COUNT], done_cv;
	struct conv_job *todo[LANE_COUNT], *todo_tail[LANE_COUNT];
	struct conv_rse_load *load; /* tpc_parallel slots; n == 0 is free */
	struct conv_job *done;
	struct conv_job *unrecorded; /* outcomes the catalog refused for now (loop thread only) */
	struct conv_job *delayed;    /* failures held back before their retry (loop thread only) */
	int ndelayed;
	int quit;
	int inflight; /* claimed and not yet recorded */
	double last_requeue;
	int pid;
	/* claiming: requests copied out of the claim callback */
	struct conv_job **claimed;
	int nclaimed, claim_cap;
};

/* ---- small helpers ---- */

/* Temporary names: a try writes "<final>.rucio.upload" (slot 0) or
 * "<final>.1.rucio.upload" (slot 1), alternating from one try to the next,
 * and removes its name first.  A try that was cut off (a kill, a TPC that
 * timed out) may leave the destination server writing its name for a while
 * (its own pull goes on until the TPC ends), and XRootD refuses a second
 * writer on that name ("already opened by 1 writer"): the next try then
 * uses the other name.  Two fixed names, not a new one each time, so that
 * the next attempt of a request can find and remove what a killed one left
 * (a server holds a cut-off POSC file for minutes). */
#define TMP_SLOTS 2

static char *tmp_url_slot(const char *final, int slot)
{
	struct dm_buf b = DM_BUF_INIT;

	if (slot == 0)
		dm_buf_addf(&b, "%s" TMP_SUFFIX, final);
	else
		dm_buf_addf(&b, "%s.%d" TMP_SUFFIX, final, slot);
	return dm_buf_detach(&b);
}

static char *tmp_url(struct conv_job *j, const char *final)
{
	return tmp_url_slot(final, j->ntmp++ % TMP_SLOTS);
}

static void remove_quietly(struct xfer_ctx *x, const char *url);

/* Remove the temporary names from slot `from` on. */
static void remove_tmp_slots(struct xfer_ctx *x, const char *final, int from)
{
	for (int slot = from; slot < TMP_SLOTS; slot++) {
		char *u = tmp_url_slot(final, slot);

		remove_quietly(x, u);
		free(u);
	}
}

static void job_free(struct conv_job *j)
{
	if (!j)
		return;
	free(j->dst_url);
	free(j->dst_tpc_url);
	for (int i = 0; i < j->nsrc; i++) {
		free(j->src[i].read_url);
		free(j->src[i].tpc_url);
	}
	dm_buf_release(&j->errors);
	cat_manifest_free(&j->manifest);
	free(j);
}

static void add_error(struct conv_job *j, const char *rse, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_error(struct conv_job *j, const char *rse, const char *fmt, ...)
{
	va_list ap;

	if (j->errors.len)
		dm_buf_adds(&j->errors, "; ");
	if (rse)
		dm_buf_addf(&j->errors, "from %s: ", rse);
	va_start(ap, fmt);
	dm_buf_vaddf(&j->errors, fmt, ap);
	va_end(ap);
}

/* One storage step of a transfer, at DEBUG: what, how long, how it ended. */
static void step_log(const struct conv_job *j, const char *what, double t0, enum dm_status rc,
		     const struct dm_err *e)
{
	dm_log(DM_LOG_DEBUG, "conveyor", "request %s %s:%s: %s %s in %.3f s%s%s", j->id, j->scope,
	       j->name, what, rc == DM_OK ? "ok" : "failed", dm_now_f() - t0,
	       rc != DM_OK && e ? ": " : "", rc != DM_OK && e ? e->msg : "");
}

static void remove_quietly(struct xfer_ctx *x, const char *url)
{
	struct dm_err e;

	(void)xfer_delete(x, url, &e);
}

/* Server-side checksums in flight, for the whole process: XRootD computes
 * only a few at a time and answers the others "wait 30 s", so asking more
 * than conveyor.max_checksums at once only makes transfers slower. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int in_use;
	int max;
} cks = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 4 };

static enum dm_status server_checksum(struct xfer_ctx *x, const char *url, char *out, size_t n,
				      struct dm_err *err)
{
	enum dm_status rc;

	pthread_mutex_lock(&cks.mu);
	while (cks.in_use >= cks.max)
		pthread_cond_wait(&cks.cv, &cks.mu);
	cks.in_use++;
	pthread_mutex_unlock(&cks.mu);
	rc = xfer_checksum(x, url, "adler32", out, n, err);
	pthread_mutex_lock(&cks.mu);
	cks.in_use--;
	pthread_cond_signal(&cks.cv);
	pthread_mutex_unlock(&cks.mu);
	return rc;
}

static void set_max_checksums(int max)
{
	pthread_mutex_lock(&cks.mu);
	cks.max = max > 0 ? max : 1;
	pthread_cond_broadcast(&cks.cv);
	pthread_mutex_unlock(&cks.mu);
}

/* Size and adler32 of a file at url as its storage sees it.  Returns 0 when
 * they match, 1 on a mismatch (why filled), -1 when it cannot be checked.
 * read_back: compute the adler32 from the bytes instead of asking the
 * server, whose answer may be stale (XRootD keeps a file's checksum in an
 * extended attribute, so bytes damaged on disk later still report the old
 * one). */
static int verify_at(struct xfer_ctx *x, const char *url, uint64_t bytes, const char *adler,
		     int read_back, char *why, size_t whylen, struct dm_err *err)
{
	struct xfer_stat st;
	char sum[80];
	enum dm_status rc;

	rc = xfer_stat(x, url, &st, err);
	if (rc != DM_OK)
		return -1;
	if (st.size != bytes) {
		snprintf(why, whylen, "size %llu, expected %llu", (unsigned long long)st.size,
			 (unsigned long long)bytes);
		return 1;
	}
	if (!adler || !adler[0])
		return 0;
	rc = read_back ? DM_ENOTSUP : server_checksum(x, url, sum, sizeof sum, err);
	if (rc == DM_ENOTSUP) {
		/* no server-side checksum: read it back */
		struct xfer_result res;

		rc = xfer_get(x, url, "/dev/null", &res, err);
		if (rc != DM_OK)
			return -1;
		dm_strlcpy(sum, res.adler32, sizeof sum);
	} else if (rc != DM_OK) {
		return -1;
	}
	if (strcasecmp(sum, adler) != 0) {
		snprintf(why, whylen, "adler32 %s, expected %s", sum, adler);
		return 1;
	}
	return 0;
}

/* The per-block manifest (catalog/manifest.c) of a file the catalog has
 * none for, from the local copy of a streamed transfer (its bytes were just
 * checked against the file's adler32); recorded with the outcome, so that
 * readers through the mount can verify every piece. */
static void build_manifest(struct conv_job *j, const char *local)
{
	struct cat_manifest_builder b;
	char buf[1 << 16];
	ssize_t r = 0;
	int fd = open(local, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	cat_manifest_builder_init(&b);
	while ((r = read(fd, buf, sizeof buf)) > 0)
		cat_manifest_builder_add(&b, buf, (size_t)r);
	close(fd);
	cat_manifest_builder_finish(&b, &j->manifest);
	if (r < 0 || j->manifest.bytes != j->bytes) {
		cat_manifest_free(&j->manifest);
		return;
	}
	j->have_manifest = 1;
}

/* Rename the verified temporary file to the final name. */
static enum attempt finish_copy(struct xfer_ctx *x, struct conv_job *j, struct conv_src *s,
				const char *tmp, const char *final)
{
	struct dm_err e = { 0 };
	double t = dm_now_f();
	enum dm_status rc = xfer_rename(x, tmp, final, &e);

	step_log(j, "rename to the final name", t, rc, &e);
	if (rc != DM_OK) {
		add_error(j, s->rse, "rename to the final name failed: %s", e.msg);
		remove_quietly(x, tmp);
		return ATT_FAIL;
	}
	return ATT_OK;
}

static enum attempt copy_tpc(struct xfer_ctx *x, struct conv_job *j, struct conv_src *s)
{
	char *tmp = tmp_url(j, j->dst_tpc_url);
	char why[160] = "";
	struct dm_err e = { 0 };
	enum attempt a = ATT_FAIL;
	double t = dm_now_f();
	enum dm_status rc;
	int v;

	remove_quietly(x, tmp); /* a leftover of an attempt that was killed */
	step_log(j, "remove a leftover temporary file", t, DM_OK, NULL);
	t = dm_now_f();
	rc = xfer_tpc(x, s->tpc_url, tmp, &e);
	step_log(j, "third-party copy", t, rc, &e);
	if (rc != DM_OK) {
		add_error(j, s->rse, "third-party copy failed: %s", e.msg);
		remove_quietly(x, tmp);
		goto out;
	}
	t = dm_now_f();
	v = verify_at(x, tmp, j->bytes, j->adler32, 0, why, sizeof why, &e);
	step_log(j, "verify at the destination", t, v < 0 ? DM_EIO : DM_OK, &e);
	if (v < 0) {
		add_error(j, s->rse, "cannot verify the copy at the destination: %s", e.msg);
		remove_quietly(x, tmp);
		goto out;
	}
	if (v > 0) {
		char swhy[160] = "";
		struct dm_err se = { 0 };
		int sv;

		remove_quietly(x, tmp);
		/* whose fault: ask the source for its own checksum */
		sv = verify_at(x, s->tpc_url, j->bytes, j->adler32, 0, swhy, sizeof swhy, &se);
		if (sv == 0) {
			add_error(j, s->rse, "copy corrupted in transit (%s at the destination)", why);
		} else {
			snprintf(s->bad_reason, sizeof s->bad_reason,
				 "checksum mismatch: %s at the destination after third-party copy%s%s",
				 why, sv > 0 ? "; source has " : "", sv > 0 ? swhy : "");
			add_error(j, s->rse, "%s", s->bad_reason);
			s->bad = 1;
			a = ATT_BAD_SRC;
		}
		goto out;
	}
	a = finish_copy(x, j, s, tmp, j->dst_tpc_url);
	if (a == ATT_OK)
		j->mode = "tpc";
out:
	free(tmp);
	return a;
}

static enum attempt copy_streamed(struct xfer_ctx *x, struct conv_job *j, struct conv_src *s,
				  const char *tmp_dir, int pid)
{
	char local[DMN_PATH_MAX + 64];
	char *tmp = tmp_url(j, j->dst_url);
	char why[160] = "";
	struct xfer_result res;
	struct dm_err e = { 0 };
	enum attempt a = ATT_FAIL;
	enum dm_status rc;
	double t;
	int v;

	snprintf(local, sizeof local, "%s/" LOCAL_PREFIX "%d-%lu", tmp_dir, pid, j->seq);
	t = dm_now_f();
	rc = xfer_get(x, s->read_url, local, &res, &e);
	step_log(j, "get from the source", t, rc, &e);
	if (rc != DM_OK) {
		add_error(j, s->rse, "reading the source failed: %s", e.msg);
		goto out;
	}
	if (res.bytes != j->bytes || (j->adler32[0] && strcasecmp(res.adler32, j->adler32))) {
		snprintf(s->bad_reason, sizeof s->bad_reason,
			 "checksum mismatch: source data has %llu bytes, adler32 %s; expected %llu, %s",
			 (unsigned long long)res.bytes, res.adler32, (unsigned long long)j->bytes,
			 j->adler32);
		add_error(j, s->rse, "%s", s->bad_reason);
		s->bad = 1;
		a = ATT_BAD_SRC;
		goto out;
	}
	if (j->want_manifest && !j->have_manifest)
		build_manifest(j, local);
	t = dm_now_f();
	remove_quietly(x, tmp);
	step_log(j, "remove a leftover temporary file", t, DM_OK, NULL);
	t = dm_now_f();
	rc = xfer_put(x, local, tmp, &e);
	step_log(j, "put to the destination", t, rc, &e);
	if (rc != DM_OK) {
		add_error(j, s->rse, "writing the destination failed: %s", e.msg);
		remove_quietly(x, tmp);
		goto out;
	}
	t = dm_now_f();
	v = verify_at(x, tmp, j->bytes, j->adler32, 0, why, sizeof why, &e);
	step_log(j, "verify at the destination", t, v < 0 ? DM_EIO : DM_OK, &e);
	if (v != 0) {
		if (v < 0)
			add_error(j, s->rse, "cannot verify the copy at the destination: %s", e.msg);
		else
			add_error(j, s->rse, "copy corrupted at the destination (%s)", why);
		remove_quietly(x, tmp);
		goto out;
	}
	a = finish_copy(x, j, s, tmp, j->dst_url);
	if (a == ATT_OK)
		j->mode = "streamed";
out:
	unlink(local);
	free(tmp);
	return a;
}

/* Everything a worker does for one request. */
static void transfer(struct conveyor *cv, struct conv_job *j)
{
	double t0 = dm_now_f();
	char why[160];
	struct dm_err e = { 0 };
	int tried = 0, v;

	j->used = -1;
	j->outcome = CAT_REQ_FAILED;
	/* 0. done already by a conveyor that died before recording it?  The
	 * file found there may also be a replica declared BAD that is being
	 * repaired, so its bytes are read back rather than trusting the
	 * server's (cached) checksum; a missing file costs one stat. */
	v = verify_at(cv->xfer, j->dst_url, j->bytes, j->adler32, 1, why, sizeof why, &e);
	step_log(j, "look for the file at the destination", t0, DM_OK, NULL);
	if (v == 0) {
		j->outcome = CAT_REQ_DONE;
		j->mode = "already at destination";
		goto out;
	}
	/* what a killed attempt may have left under the second name (the first
	 * try removes the first name itself) */
	remove_tmp_slots(cv->xfer, j->dst_url, 1);
	for (int i = 0; i < j->nsrc; i++) {
		struct conv_src *s = &j->src[i];
		enum attempt a = ATT_FAIL;

		if (tried && dm_now_f() - t0 > j->budget) {
			add_error(j, NULL, "time budget of %.0f s spent", j->budget);
			break;
		}
		int can_tpc = j->tpc && j->dst_tpc_url && s->tpc_url;

		if (j->stream_first && s->read_url) {
			/* a small file: streaming beats the TPC's fixed cost */
			tried = 1;
			a = copy_streamed(cv->xfer, j, s, cv->xcfg.tmp_dir, cv->pid);
			if (a == ATT_FAIL && can_tpc)
				a = copy_tpc(cv->xfer, j, s);
		} else {
			if (can_tpc) {
				tried = 1;
				a = copy_tpc(cv->xfer, j, s);
			}
			/* a source proved bad is not read again; a failed TPC may stream */
			if (a == ATT_FAIL && s->read_url && (!can_tpc || j->tpc_fallback)) {
				tried = 1;
				a = copy_streamed(cv->xfer, j, s, cv->xcfg.tmp_dir, cv->pid);
			}
		}
		if (a == ATT_OK) {
			j->outcome = CAT_REQ_DONE;
			j->used = i;
			break;
		}
	}
	if (j->outcome != CAT_REQ_DONE && !tried)
		add_error(j, NULL, "no source has a protocol to copy from");
	/* a name a cut-off try's server still held when that try removed it */
	if (j->ntmp > 1)
		remove_tmp_slots(cv->xfer, j->dst_url, 0);
out:
	j->seconds = dm_now_f() - t0;
}

/* ---- the worker pool ---- */

/* The load slot of a destination RSE (TPC lane; under mu): its slot, a
 * free one when create, else NULL. */
static struct conv_rse_load *rse_load(struct conveyor *cv, const char *rse, int create)
{
	struct conv_rse_load *free_slot = NULL;

	for (int i = 0; i < cv->xcfg.tpc_parallel; i++) {
		struct conv_rse_load *ld = &cv->load[i];

		if (ld->n > 0 && !strcmp(ld->rse, rse))
			return ld;
		if (ld->n == 0 && !free_slot)
			free_slot = ld;
	}
	if (create && free_slot)
		dm_strlcpy(free_slot->rse, rse, sizeof free_slot->rse);
	return create ? free_slot : NULL;
}

/* The next job of a lane that may start now (under mu), unlinked; NULL if
 * none.  The TPC lane skips jobs whose destination has tpc_per_rse
 * TPCs in flight already. */
static struct conv_job *take_job(struct conveyor *cv, enum lane lane)
{
	struct conv_job **pp = &cv->todo[lane], *prev = NULL;

	for (; *pp; prev = *pp, pp = &(*pp)->next) {
		struct conv_job *j = *pp;

		if (lane == LANE_TPC) {
			struct conv_rse_load *ld = rse_load(cv, j->dest_rse, 0);

			if (ld && ld->n >= cv->xcfg.tpc_per_rse)
				continue;
			rse_load(cv, j->dest_rse, 1)->n++;
		}
		*pp = j->next;
		if (cv->todo_tail[lane] == j)
			cv->todo_tail[lane] = prev;
		return j;
	}
	return NULL;
}

static void *worker_main(void *arg)
{
	struct conv_worker *w = arg;
	struct conveyor *cv = w->cv;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&cv->mu);
	for (;;) {
		struct conv_job *j;

		/* on a stop, the lane is drained first */
		while (!(j = take_job(cv, w->lane)) && !(cv->quit && !cv->todo[w->lane]))
			pthread_cond_wait(&cv->work_cv[w->lane], &cv->mu);
		if (!j)
			break;
		pthread_mutex_unlock(&cv->mu);
		transfer(cv, j);
		pthread_mutex_lock(&cv->mu);
		if (w->lane == LANE_TPC) {
			rse_load(cv, j->dest_rse, 0)->n--;
			/* a destination has room again */
			pthread_cond_broadcast(&cv->work_cv[LANE_TPC]);
		}
		j->next = cv->done;
		cv->done = j;
		pthread_cond_signal(&cv->done_cv);
	}
	pthread_mutex_unlock(&cv->mu);
	return NULL;
}

static void pool_stop(struct conveyor *cv)
{
	pthread_mutex_lock(&cv->mu);
	cv->quit = 1;
	for (int i = 0; i < LANE_COUNT; i++)
		pthread_cond_broadcast(&cv->work_cv[i]);
	pthread_mutex_unlock(&cv->mu);
	for (int i = 0; i < cv->nworkers; i++)
		pthread_join(cv->tids[i], NULL);
	free(cv->tids);
	cv->tids = NULL;
	free(cv->workers);
	cv->workers = NULL;
	free(cv->load);
	cv->load = NULL;
	cv->nworkers = 0;
	memset(cv->nlane, 0, sizeof cv->nlane);
	cv->quit = 0;
	xfer_ctx_free(cv->xfer);
	cv->xfer = NULL;
}

static enum dm_status pool_start(struct dmn_loop *l, struct conveyor *cv)
{
	struct dm_err e = { 0 };

	if (dmn_xfer_new(&l->cfg, &cv->xfer, &e) != DM_OK) {
		dm_log(DM_LOG_ERROR, l->name, "transfer settings refused: %s", e.msg);
		return e.code ? e.code : DM_EINVAL;
	}
	int want = l->cfg.parallel + (l->cfg.tpc ? l->cfg.tpc_parallel : 0);

	cv->xcfg = l->cfg;
	set_max_checksums(l->cfg.max_checksums);
	cv->tids = dm_xcalloc((size_t)want, sizeof *cv->tids);
	cv->workers = dm_xcalloc((size_t)want, sizeof *cv->workers);
	cv->load = dm_xcalloc((size_t)l->cfg.tpc_parallel, sizeof *cv->load);
	for (int i = 0; i < want; i++) {
		struct conv_worker *w = &cv->workers[i];

		w->cv = cv;
		w->lane = i < l->cfg.parallel ? LANE_STREAM : LANE_TPC;
		if (pthread_create(&cv->tids[i], NULL, worker_main, w) != 0)
			break;
		cv->nworkers++;
		cv->nlane[w->lane]++;
	}
	/* a lane without workers (thread limit): its jobs go to the other */
	if (cv->nworkers == 0 || !cv->nlane[LANE_STREAM]) {
		pool_stop(cv);
		dm_log(DM_LOG_ERROR, l->name, "cannot start transfer threads");
		return DM_ENOMEM;
	}
	return DM_OK;
}

/* Local temporary files of conveyors of this machine that were killed. */
static void clean_local_leftovers(struct dmn_loop *l, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t plen = strlen(LOCAL_PREFIX);

	if (!d)
		return;
	while ((de = readdir(d))) {
		int64_t pid;
		char pidstr[24], path[DMN_PATH_MAX + 300];
		const char *p, *dash;

		if (strncmp(de->d_name, LOCAL_PREFIX, plen))
			continue;
		p = de->d_name + plen;
		dash = strchr(p, '-');
		if (!dash || (size_t)(dash - p) >= sizeof pidstr)
			continue;
		memcpy(pidstr, p, (size_t)(dash - p));
		pidstr[dash - p] = 0;
		if (dm_parse_i64(pidstr, &pid) || pid <= 0 || pid == l->pid)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (unlink(path) == 0)
			dm_log(DM_LOG_INFO, l->name, "removed %s, left by a conveyor that died", path);
	}
	closedir(d);
}

/* ---- the loop thread: claim, plan, record ---- */

static int claim_cb(void *ud, const struct cat_request *r)
{
	struct conveyor *cv = ud;
	struct conv_job *j = dm_xcalloc(1, sizeof *j);

	dm_strlcpy(j->id, r->id, sizeof j->id);
	dm_strlcpy(j->scope, r->scope, sizeof j->scope);
	dm_strlcpy(j->name, r->name, sizeof j->name);
	dm_strlcpy(j->dest_rse, r->dest_rse, sizeof j->dest_rse);
	j->bytes = r->bytes;
	dm_strlcpy(j->adler32, r->adler32 ? r->adler32 : "", sizeof j->adler32);
	dm_strlcpy(j->md5, r->md5 ? r->md5 : "", sizeof j->md5);
	j->retry_count = r->retry_count;
	dm_strlcpy(j->request_id, r->request_id ? r->request_id : "", sizeof j->request_id);
	j->used = -1;
	dm_buf_init(&j->errors, 4000); /* Rucio's err_msg is 4000 characters */
	if (cv->nclaimed == cv->claim_cap) {
		cv->claim_cap = cv->claim_cap ? 2 * cv->claim_cap : 16;
		cv->claimed = dm_xrealloc(cv->claimed, (size_t)cv->claim_cap * sizeof *cv->claimed);
	}
	cv->claimed[cv->nclaimed++] = j;
	return 0;
}

struct src_list {
	struct conv_job *j;
	int max;
};

static int source_cb(void *ud, const char *rse, int distance)
{
	struct src_list *sl = ud;
	struct conv_src *s;

	if (sl->j->nsrc >= sl->max)
		return 1;
	s = &sl->j->src[sl->j->nsrc++];
	dm_strlcpy(s->rse, rse, sizeof s->rse);
	s->distance = distance;
	return 0;
}

static char *pfn(struct cat_db *db, const char *rse, const char *scope, const char *name,
		 const char *scheme, enum cat_proto_op op)
{
	struct dm_buf b = DM_BUF_INIT;

	if (cat_lfn2pfn(db, rse, scope, name, scheme, op, &b) != DM_OK) {
		dm_buf_release(&b);
		return NULL;
	}
	return dm_buf_detach(&b);
}

/* Scheme of the best protocol of rse for op (scheme restricts), or -1. */
static int proto_scheme(struct cat_db *db, const char *rse, enum cat_proto_op op,
			const char *want, char *out, size_t n)
{
	struct cat_protocol p;
	struct dm_buf b = DM_BUF_INIT;
	int rc = -1;

	memset(&p, 0, sizeof p);
	if (cat_rse_protocol_for(db, rse, op, want, &p, &b) == DM_OK && p.scheme) {
		dm_strlcpy(out, p.scheme, n);
		rc = 0;
	}
	dm_buf_release(&b);
	return rc;
}

static int describe_replica(void *ud, const struct cat_replica *r)
{
	struct dm_buf *b = ud;

	dm_buf_addf(b, "%s%s %s", b->len ? ", " : "", r->rse, cat_replica_state_name(r->state));
	return 0;
}

/* Streamed first when the file is small (and a source can be read), else
 * the TPC lane when the best source can third-party copy. */
static void choose_lane(const struct dmn_loop *l, struct conv_job *j)
{
	int readable = 0;

	for (int i = 0; i < j->nsrc; i++)
		readable |= j->src[i].read_url != NULL;
	j->stream_first = readable && j->bytes < l->cfg.stream_below;
	j->lane = !j->stream_first && j->tpc && j->dst_tpc_url && j->src[0].tpc_url ? LANE_TPC
										     : LANE_STREAM;
}

/* Fill the plan; 0 when the job can go to a worker, else the job's outcome
 * is already decided (NO_SOURCES or FAILED with errors). */
static int plan(struct dmn_loop *l, struct conveyor *cv, struct conv_job *j)
{
	struct src_list sl = { j, l->cfg.max_sources < CONV_MAX_SOURCES ? l->cfg.max_sources
									 : CONV_MAX_SOURCES };
	char dscheme[32] = "";
	int usable = 0;

	dm_log_set_request_id(j->request_id);

	j->tpc = l->cfg.tpc;
	j->tpc_fallback = l->cfg.tpc_fallback;
	j->budget = (double)l->cfg.request_max_age / 2;
	/* one numbering per process: `--threads N` runs N conveyors side by
	 * side, and their temporary files share the directory and the pid */
	j->seq = __atomic_add_fetch(&local_seq, 1, __ATOMIC_RELAXED);
	if (cat_req_sources(l->db, j->id, source_cb, &sl) != DM_OK) {
		add_error(j, NULL, "listing sources failed: %s", cat_error(l->db)->msg);
		j->outcome = CAT_REQ_FAILED;
		return -1;
	}
	if (j->nsrc == 0) {
		struct dm_buf others = DM_BUF_INIT;

		/* say what there is instead: "XRD3 BAD, XRD1 COPYING" */
		dm_buf_init(&others, 512);
		cat_replica_list(l->db, j->scope, j->name, NULL, ~0u, describe_replica, &others);
		add_error(j, NULL, "no AVAILABLE replica of %s:%s on a readable RSE%s%s%s", j->scope,
			  j->name, others.len ? " (replicas: " : "", others.s, others.len ? ")" : "");
		dm_buf_release(&others);
		j->outcome = CAT_REQ_NO_SOURCES;
		return -1;
	}
	{
		struct cat_manifest m = { 0 };
		int found = 1;

		if (cat_manifest_get(l->db, j->scope, j->name, &m, &found) == DM_OK && !found)
			j->want_manifest = 1;
		cat_manifest_free(&m);
	}
	j->dst_url = pfn(l->db, j->dest_rse, j->scope, j->name, NULL, CAT_OP_WRITE);
	if (!j->dst_url) {
		add_error(j, NULL, "no destination PFN on %s: %s", j->dest_rse, cat_error(l->db)->msg);
		j->outcome = CAT_REQ_FAILED;
		return -1;
	}
	if (j->tpc && proto_scheme(l->db, j->dest_rse, CAT_OP_TPC_WRITE, NULL, dscheme,
				   sizeof dscheme) == 0)
		j->dst_tpc_url = pfn(l->db, j->dest_rse, j->scope, j->name, dscheme,
				     CAT_OP_TPC_WRITE);
	for (int i = 0; i < j->nsrc; i++) {
		struct conv_src *s = &j->src[i];
		char sscheme[32];

		s->read_url = pfn(l->db, s->rse, j->scope, j->name, NULL, CAT_OP_READ);
		if (j->dst_tpc_url) {
			if (proto_scheme(l->db, s->rse, CAT_OP_TPC_READ, NULL, sscheme,
					 sizeof sscheme) == 0 &&
			    xfer_tpc_possible(sscheme, dscheme))
				s->tpc_url = pfn(l->db, s->rse, j->scope, j->name, sscheme,
						 CAT_OP_TPC_READ);
			else if (proto_scheme(l->db, s->rse, CAT_OP_TPC_READ, dscheme, sscheme,
					      sizeof sscheme) == 0)
				s->tpc_url = pfn(l->db, s->rse, j->scope, j->name, sscheme,
						 CAT_OP_TPC_READ);
		}
		if (s->read_url || s->tpc_url)
			usable++;
	}
	if (!usable) {
		add_error(j, NULL, "none of the %d source RSE(s) has a read or third-party-copy "
			  "protocol", j->nsrc);
		j->outcome = CAT_REQ_FAILED;
		return -1;
	}
	choose_lane(l, j);
	return 0;
}

static int count_replica(void *ud, const struct cat_replica *r)
{
	(*(int *)ud)++;
	return 0;
}

/* The request went away while its file was copied (rule deleted): unless
 * the catalog has a replica row there again (a new rule), the copy is
 * nobody's and would stay as dark data. */
static void drop_unwanted_copy(struct dmn_loop *l, struct conveyor *cv, struct conv_job *j)
{
	int n = 0;
	struct dm_err e = { 0 };

	if (cat_replica_list(l->db, j->scope, j->name, j->dest_rse, ~0u, count_replica, &n) !=
	    DM_OK || n > 0)
		return;
	if (xfer_delete(cv->xfer, j->dst_url, &e) == DM_OK || e.code == DM_ENOENT)
		dm_log(DM_LOG_INFO, l->name, "request %s was cancelled: its copy %s removed", j->id,
		       j->dst_url);
	else
		dm_log(DM_LOG_WARN, l->name, "request %s was cancelled: removing its copy %s failed: %s",
		       j->id, j->dst_url, e.msg);
}

/* Sources proved corrupted by this job: BAD in the catalog, once. */
static void declare_bad_sources(struct dmn_loop *l, struct conv_job *j)
{
	for (int i = 0; i < j->nsrc; i++) {
		struct conv_src *s = &j->src[i];

		if (!s->bad)
			continue;
		if (cat_replica_declare_bad(l->db, s->rse, j->scope, j->name, s->bad_reason) == DM_OK)
			dm_log(DM_LOG_WARN, l->name, "replica %s:%s on %s declared BAD: %s", j->scope,
			       j->name, s->rse, s->bad_reason);
		else
			dm_log(DM_LOG_ERROR, l->name, "declaring %s:%s on %s BAD failed: %s",
			       j->scope, j->name, s->rse, cat_error(l->db)->msg);
		s->bad = 0; /* once, even if the outcome is recorded later */
	}
}

/* Record a job's outcome in the catalog and log it; frees the job. */
static void record(struct dmn_loop *l, struct conveyor *cv, struct conv_job *j)
{
	const char *src = j->used >= 0 ? j->src[j->used].rse : NULL;
	char hb[32];
	enum dm_status rc;

	dm_log_set_request_id(j->request_id);
	declare_bad_sources(l, j);
	rc = cat_req_finish(l->db, j->id, l->worker_name, j->outcome, src,
			    j->outcome == CAT_REQ_DONE ? NULL : j->errors.s, l->cfg.max_retries);
	if (rc == DM_OK)
		dmn_metrics_transfer(l, src, j->dest_rse, j->outcome, j->bytes, j->seconds);
	if (rc != DM_OK) {
		const struct dm_err *e = cat_error(l->db);
		int again = rc != DM_ENOENT && ++j->record_tries < RECORD_TRIES;

		dm_log(DM_LOG_ERROR, l->name, "recording request %s (%s:%s -> %s, %s) failed%s: %s: %s",
		       j->id, j->scope, j->name, j->dest_rse, cat_req_state_name(j->outcome),
		       again ? ", will try again" : "", e->cls, e->msg);
		if (again) {
			/* the storage side is final: only the catalog is behind */
			j->next = cv->unrecorded;
			cv->unrecorded = j;
			return;
		}
		if (rc == DM_ENOENT && j->outcome == CAT_REQ_DONE)
			drop_unwanted_copy(l, cv, j);
	} else if (j->outcome == CAT_REQ_DONE) {
		dm_log(DM_LOG_INFO, l->name, "%s -> %s %s:%s %s in %.3f s (%s) transfer done, request %s",
		       src ? src : "-", j->dest_rse, j->scope, j->name,
		       dm_human_bytes(j->bytes, 1, hb), j->seconds, j->mode ? j->mode : "?", j->id);
		if (j->have_manifest && cat_manifest_set(l->db, j->scope, j->name, &j->manifest) != DM_OK)
			dm_log(DM_LOG_WARN, l->name, "no block manifest recorded for %s:%s: %s",
			       j->scope, j->name, cat_error(l->db)->msg);
	} else {
		dm_log(DM_LOG_WARN, l->name, "%s:%s -> %s %s (attempt %d of %d), request %s: %s",
		       j->scope, j->name, j->dest_rse,
		       j->outcome == CAT_REQ_NO_SOURCES ? "has no sources" : "failed",
		       j->retry_count + 1, l->cfg.max_retries, j->id, j->errors.s);
	}
	cv->inflight--;
	job_free(j);
}

/* Record every job the workers handed back. */
/* A failed attempt that will be retried is held back (the request stays
 * SUBMITTED under our name, no worker busy) for conveyor.retry_delay *
 * 2^retry_count seconds before it is recorded, so that a short outage does
 * not burn every retry at once.  Bounded: when DELAYED_MAX wait already,
 * the outcome is recorded at once. */
static int delay_failure(struct dmn_loop *l, struct conveyor *cv, struct conv_job *j)
{
	double d = l->cfg.retry_delay;

	if (l->once || d <= 0 || j->outcome != CAT_REQ_FAILED || j->delayed ||
	    j->retry_count + 1 >= l->cfg.max_retries || cv->ndelayed >= DELAYED_MAX ||
	    dmn_stopping())
		return 0;
	for (int i = 0; i < j->retry_count && d < 600; i++)
		d *= 2;
	j->due = dm_now_f() + (d < 600 ? d : 600);
	j->delayed = 1;
	j->next = cv->delayed;
	cv->delayed = j;
	cv->ndelayed++;
	cv->inflight--;
	dm_log(DM_LOG_INFO, l->name, "%s:%s -> %s failed (attempt %d of %d), retried in %.0f s: %s",
	       j->scope, j->name, j->dest_rse, j->retry_count + 1, l->cfg.max_retries,
	       j->due - dm_now_f(), j->errors.s);
	return 1;
}

static int drain_done(struct dmn_loop *l, struct conveyor *cv)
{
	struct conv_job *list, *next, **pp;
	double now = dm_now_f();
	int n = 0;

	/* outcomes that could not be recorded last time go first */
	list = cv->unrecorded;
	cv->unrecorded = NULL;
	for (; list; list = next) {
		next = list->next;
		record(l, cv, list);
	}
	/* held-back failures that are due (all of them when stopping) */
	for (pp = &cv->delayed; *pp;) {
		struct conv_job *j = *pp;

		if (j->due > now && !dmn_stopping() && !l->once) {
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		cv->ndelayed--;
		cv->inflight++;
		record(l, cv, j);
	}
	pthread_mutex_lock(&cv->mu);
	list = cv->done;
	cv->done = NULL;
	pthread_mutex_unlock(&cv->mu);
	for (; list; list = next) {
		next = list->next;
		declare_bad_sources(l, list);
		if (!delay_failure(l, cv, list))
			record(l, cv, list);
		n++;
	}
	return n;
}

/* Wait up to seconds for a worker to hand a job back. */
static void wait_done(struct conveyor *cv, double seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)(seconds * 1e9);
	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&cv->mu);
	while (!cv->done) {
		if (pthread_cond_timedwait(&cv->done_cv, &cv->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&cv->mu);
}

static void submit(struct conveyor *cv, struct conv_job *j)
{
	enum lane lane = cv->nlane[j->lane] ? j->lane : LANE_STREAM;

	pthread_mutex_lock(&cv->mu);
	j->next = NULL;
	if (cv->todo_tail[lane])
		cv->todo_tail[lane]->next = j;
	else
		cv->todo[lane] = j;
	cv->todo_tail[lane] = j;
	/* TPC workers wait for room at a destination too: wake them all */
	if (lane == LANE_TPC)
		pthread_cond_broadcast(&cv->work_cv[lane]);
	else
		pthread_cond_signal(&cv->work_cv[lane]);
	pthread_mutex_unlock(&cv->mu);
}

static enum dm_status conveyor_init(struct dmn_loop *l)
{
	struct conveyor *cv = dm_xcalloc(1, sizeof *cv);
	pthread_condattr_t ca;
	enum dm_status rc;

	pthread_mutex_init(&cv->mu, NULL);
	for (int i = 0; i < LANE_COUNT; i++)
		pthread_cond_init(&cv->work_cv[i], NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cv->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	cv->pid = l->pid;
	l->state = cv;
	clean_local_leftovers(l, l->cfg.tmp_dir);
	rc = pool_start(l, cv);
	return rc;
}

static enum dm_status conveyor_cycle(struct dmn_loop *l, int *more)
{
	struct conveyor *cv = l->state;
	enum dm_status rc = DM_OK;
	int claimed = 0, recorded, free_slots;

	/* new transfer settings or pool size: rebuild once idle */
	if (cv->inflight == 0 && (dmn_xfer_config_differs(&cv->xcfg, &l->cfg) ||
				  cv->xcfg.parallel != l->cfg.parallel ||
				  cv->xcfg.tpc != l->cfg.tpc ||
				  cv->xcfg.tpc_parallel != l->cfg.tpc_parallel ||
				  cv->xcfg.tpc_per_rse != l->cfg.tpc_per_rse ||
				  cv->xcfg.max_checksums != l->cfg.max_checksums ||
				  strcmp(cv->xcfg.tmp_dir, l->cfg.tmp_dir))) {
		pool_stop(cv);
		rc = pool_start(l, cv);
		if (rc != DM_OK)
			return rc;
		dm_log(DM_LOG_INFO, l->name,
		       "transfer settings applied (%d streamed and %d third-party copies in flight)",
		       cv->nlane[LANE_STREAM], cv->nlane[LANE_TPC]);
	}
	recorded = drain_done(l, cv);
	/* requests held by conveyors that are gone go back to the queue */
	if (dm_now_f() - cv->last_requeue >= l->cfg.heartbeat_interval) {
		int n = 0;

		cv->last_requeue = dm_now_f();
		if (cat_req_requeue_orphans(l->db, l->executable, l->cfg.request_max_age,
					    l->cfg.heartbeat_timeout, dmn_process_alive, l, &n) != DM_OK)
			dm_log(DM_LOG_ERROR, l->name, "requeueing orphaned requests failed: %s",
			       cat_error(l->db)->msg);
		else if (n > 0)
			dm_log(DM_LOG_INFO, l->name,
			       "%d request(s) of a conveyor that is gone put back in the queue", n);
	}
	/* --once: one chunk, seen through by the pool; else never more claimed
	 * than workers of both lanes, so a claimed request waits at most for
	 * the running ones of its lane */
	free_slots = (l->once ? l->cfg.chunk[l->kind] : cv->nworkers) - cv->inflight;
	if (free_slots > l->cfg.chunk[l->kind])
		free_slots = l->cfg.chunk[l->kind];
	if (free_slots > 0 && !dmn_stopping()) {
		cv->nclaimed = 0;
		rc = cat_req_claim(l->db, l->worker_name, free_slots, l->index, l->total, claim_cb,
				   cv);
		claimed = cv->nclaimed;
		cv->inflight += claimed;
		for (int i = 0; i < cv->nclaimed; i++) {
			struct conv_job *j = cv->claimed[i];

			if (plan(l, cv, j) == 0)
				submit(cv, j);
			else
				record(l, cv, j);
		}
		cv->nclaimed = 0;
		if (rc != DM_OK)
			return rc;
	}
	if (cv->inflight > 0) {
		/* in --once, see this batch through */
		do {
			wait_done(cv, claimed || recorded ? 0.05 : 0.5);
			recorded += drain_done(l, cv);
		} while (l->once && cv->inflight > 0);
	}
	*more = cv->inflight > 0 || claimed > 0 || recorded > 0;
	return DM_OK;
}

static void conveyor_fini(struct dmn_loop *l)
{
	struct conveyor *cv = l->state;

	if (!cv)
		return;
	if (cv->inflight > 0)
		dm_log(DM_LOG_INFO, l->name, "waiting for %d transfer(s) in flight", cv->inflight);
	drain_done(l, cv); /* held-back failures are recorded now */
	while (cv->inflight > 0 && cv->nworkers > 0) {
		wait_done(cv, 0.5);
		drain_done(l, cv);
	}
	pool_stop(cv);
	drain_done(l, cv);
	while (cv->unrecorded) {
		struct conv_job *j = cv->unrecorded;

		/* SUBMITTED under our name: the next conveyor requeues it once
		 * our heartbeat is gone, and finds the file already there */
		dm_log(DM_LOG_ERROR, l->name, "request %s left unrecorded", j->id);
		cv->unrecorded = j->next;
		cv->inflight--;
		job_free(j);
	}
	free(cv->claimed);
	pthread_mutex_destroy(&cv->mu);
	for (int i = 0; i < LANE_COUNT; i++)
		pthread_cond_destroy(&cv->work_cv[i]);
	pthread_cond_destroy(&cv->done_cv);
	free(cv);
	l->state = NULL;
}

const struct dmn_def dmn_conveyor_def = { DMN_CONVEYOR, conveyor_init, conveyor_cycle,
					  conveyor_fini };
