/* SPDX-License-Identifier: Apache-2.0 */
/*
 * progress.c - the TTY progress line.  See progress.h.
 */
#include "progress.h"
#include "dm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dm_progress {
	pthread_mutex_t mu;
	char what[64];
	uint64_t files, total_files, bytes, total_bytes;
	double t0, last;
	size_t width; /* of the last line drawn, to blank its tail */
};

static void human(char *out, size_t size, double v)
{
	char h[32];

	dm_strlcpy(out, dm_human_bytes(v > 0 ? (uint64_t)v : 0, 1, h), size);
}

static void duration(char *out, size_t size, double s)
{
	long t = s < 0 ? 0 : s > 359999 ? 359999 : (long)(s + 0.5);

	if (t >= 3600)
		snprintf(out, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
	else if (t >= 60)
		snprintf(out, size, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(out, size, "%lds", t);
}

void dm_progress_format(char *out, size_t size, const char *what, uint64_t files,
			uint64_t total_files, uint64_t bytes, uint64_t total_bytes, double secs)
{
	char b[32], tb[32], rate[32], eta[32];
	double r = secs > 0 ? (double)bytes / secs : 0;
	size_t n;

	human(b, sizeof b, (double)bytes);
	human(rate, sizeof rate, r);
	if (total_files)
		n = (size_t)snprintf(out, size, "%s: %llu/%llu files", what, (unsigned long long)files,
				     (unsigned long long)total_files);
	else
		n = (size_t)snprintf(out, size, "%s: %llu files", what, (unsigned long long)files);
	if (n >= size)
		return;
	if (total_bytes) {
		human(tb, sizeof tb, (double)total_bytes);
		n += (size_t)snprintf(out + n, size - n, ", %s/%s, %s/s", b, tb, rate);
	} else {
		n += (size_t)snprintf(out + n, size - n, ", %s, %s/s", b, rate);
	}
	if (n >= size)
		return;
	if (total_bytes && r > 0 && bytes <= total_bytes) {
		duration(eta, sizeof eta, (double)(total_bytes - bytes) / r);
		snprintf(out + n, size - n, ", ETA %s", eta);
	} else if (!total_bytes && total_files && files && files <= total_files && secs > 0) {
		duration(eta, sizeof eta, (double)(total_files - files) * secs / (double)files);
		snprintf(out + n, size - n, ", ETA %s", eta);
	}
}

static void draw(struct dm_progress *p, int final)
{
	char line[256];
	size_t len;

	dm_progress_format(line, sizeof line, p->what, p->files, p->total_files, p->bytes,
			   p->total_bytes, dm_now_f() - p->t0);
	len = strlen(line);
	fprintf(stderr, "\r%s%*s%s", line, p->width > len ? (int)(p->width - len) : 0, "",
		final ? "\n" : "");
	fflush(stderr);
	p->width = len;
}

struct dm_progress *dm_progress_new(const char *what, uint64_t total_files, uint64_t total_bytes)
{
	struct dm_progress *p;

	if (!isatty(STDERR_FILENO))
		return NULL;
	p = dm_xcalloc(1, sizeof *p);
	pthread_mutex_init(&p->mu, NULL);
	dm_strlcpy(p->what, what, sizeof p->what);
	p->total_files = total_files;
	p->total_bytes = total_bytes;
	p->t0 = p->last = dm_now_f();
	return p;
}

void dm_progress_add(struct dm_progress *p, uint64_t files, uint64_t bytes)
{
	double now;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->files += files;
	p->bytes += bytes;
	now = dm_now_f();
	if (now - p->last >= 0.2) {
		p->last = now;
		draw(p, 0);
	}
	pthread_mutex_unlock(&p->mu);
}

void dm_progress_reset(struct dm_progress *p, const char *what, uint64_t total_files,
		       uint64_t total_bytes)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->width)
		draw(p, 1);
	p->width = 0;
	dm_strlcpy(p->what, what, sizeof p->what);
	p->files = p->bytes = 0;
	p->total_files = total_files;
	p->total_bytes = total_bytes;
	p->t0 = p->last = dm_now_f();
	pthread_mutex_unlock(&p->mu);
}

void dm_progress_done(struct dm_progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	draw(p, 1);
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
