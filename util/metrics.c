/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c - the metrics registry, the Prometheus text exposition and the
 * small /metrics exporter thread (metrics.h says how they fit).
 *
 * Memory: families and series are allocated once and never freed (a
 * process has a few hundred at most); values are _Atomic uint64_t, either
 * a double's bits (counters, gauges, sums: updated by compare-and-swap) or
 * plain counts (histogram buckets: fetch_add).  A series list is
 * append-only: a reader walks it from an acquire load of the head, a
 * writer (under the family's mutex) fills a node completely before the
 * release store that publishes it.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct dm_m_series {
	struct dm_m_series *next;
	struct dm_m_family *f;
	char *values[DM_M_MAX_LABELS];
	_Atomic uint64_t val;   /* double bits (counter, gauge) */
	_Atomic uint64_t sum;   /* double bits (histogram) */
	_Atomic uint64_t count; /* histogram */
	_Atomic uint64_t bucket[DM_M_MAX_BUCKETS + 1]; /* per bucket, last = above all */
};

struct dm_m_family {
	struct dm_m_family *next;
	enum dm_m_type type;
	char *name, *help;
	int nlabels;
	char *labels[DM_M_MAX_LABELS];
	int nbuckets;
	double buckets[DM_M_MAX_BUCKETS];
	pthread_mutex_t lock;             /* adding a series */
	struct dm_m_series *_Atomic head;
};

struct collector {
	struct collector *next;
	dm_m_collector fn;
	void *ud;
};

static struct {
	pthread_mutex_t lock; /* families list, collectors, rendering */
	struct dm_m_family *families, **tail;
	struct collector *collectors;
	atomic_int enabled;
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const double default_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };

int dm_m_enabled(void)
{
	return atomic_load_explicit(&reg.enabled, memory_order_relaxed);
}

void dm_m_enable(void)
{
	atomic_store(&reg.enabled, 1);
}

double dm_m_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t d2u(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof u);
	return u;
}

static double u2d(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof d);
	return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(p, &old, d2u(u2d(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

struct dm_m_family *dm_m_family(enum dm_m_type type, const char *name, const char *help,
				const char *const *labels, const double *buckets, int nbuckets)
{
	struct dm_m_family *f;

	pthread_mutex_lock(&reg.lock);
	for (f = reg.families; f; f = f->next)
		if (!strcmp(f->name, name))
			goto out;
	f = dm_xcalloc(1, sizeof *f);
	f->type = type;
	f->name = dm_xstrdup(name);
	f->help = dm_xstrdup(help ? help : "");
	for (int i = 0; labels && labels[i]; i++) {
		if (i >= DM_M_MAX_LABELS)
			DM_BUG("metric %s: more than %d labels", name, DM_M_MAX_LABELS);
		f->labels[f->nlabels++] = dm_xstrdup(labels[i]);
	}
	if (type == DM_M_HISTOGRAM) {
		if (!buckets) {
			buckets = default_buckets;
			nbuckets = (int)DM_ARRAY_SIZE(default_buckets);
		}
		if (nbuckets > DM_M_MAX_BUCKETS)
			DM_BUG("metric %s: more than %d buckets", name, DM_M_MAX_BUCKETS);
		for (int i = 0; i < nbuckets; i++) {
			if (i && buckets[i] <= buckets[i - 1])
				DM_BUG("metric %s: buckets not increasing", name);
			f->buckets[i] = buckets[i];
		}
		f->nbuckets = nbuckets;
	}
	pthread_mutex_init(&f->lock, NULL);
	atomic_init(&f->head, NULL);
	if (!reg.tail)
		reg.tail = &reg.families;
	*reg.tail = f;
	reg.tail = &f->next;
out:
	pthread_mutex_unlock(&reg.lock);
	return f;
}

static struct dm_m_series *find(struct dm_m_series *s, int n, const char *const *values)
{
	for (; s; s = s->next) {
		int i;

		for (i = 0; i < n; i++)
			if (strcmp(s->values[i], values[i] ? values[i] : ""))
				break;
		if (i == n)
			return s;
	}
	return NULL;
}

struct dm_m_series *dm_m_seriesv(struct dm_m_family *f, const char *const *values)
{
	struct dm_m_series *s;

	if (!dm_m_enabled() || !f)
		return NULL;
	s = find(atomic_load_explicit(&f->head, memory_order_acquire), f->nlabels, values);
	if (s)
		return s;
	pthread_mutex_lock(&f->lock);
	s = find(atomic_load_explicit(&f->head, memory_order_acquire), f->nlabels, values);
	if (!s) {
		s = dm_xcalloc(1, sizeof *s);
		s->f = f;
		for (int i = 0; i < f->nlabels; i++)
			s->values[i] = dm_xstrdup(values[i] ? values[i] : "");
		s->next = atomic_load_explicit(&f->head, memory_order_relaxed);
		atomic_store_explicit(&f->head, s, memory_order_release);
	}
	pthread_mutex_unlock(&f->lock);
	return s;
}

struct dm_m_series *dm_m_series(struct dm_m_family *f, ...)
{
	const char *v[DM_M_MAX_LABELS] = { 0 };
	va_list ap;

	if (!dm_m_enabled() || !f)
		return NULL;
	va_start(ap, f);
	for (int i = 0; i < f->nlabels; i++)
		v[i] = va_arg(ap, const char *);
	va_end(ap);
	return dm_m_seriesv(f, v);
}

void dm_m_add(struct dm_m_series *s, double v)
{
	if (s)
		atomic_add_double(&s->val, v);
}

void dm_m_set(struct dm_m_series *s, double v)
{
	if (s)
		atomic_store_explicit(&s->val, d2u(v), memory_order_relaxed);
}

double dm_m_get(const struct dm_m_series *s)
{
	return s ? u2d(atomic_load_explicit(&((struct dm_m_series *)s)->val, memory_order_relaxed))
		 : 0;
}

void dm_m_observe(struct dm_m_series *s, double v)
{
	int i = 0, n;

	if (!s)
		return;
	n = s->f->nbuckets;
	while (i < n && v > s->f->buckets[i])
		i++;
	atomic_fetch_add_explicit(&s->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
	atomic_add_double(&s->sum, v);
}

void dm_m_collector_add(dm_m_collector fn, void *ud)
{
	struct collector *c = dm_xcalloc(1, sizeof *c);

	c->fn = fn;
	c->ud = ud;
	pthread_mutex_lock(&reg.lock);
	c->next = reg.collectors;
	reg.collectors = c;
	pthread_mutex_unlock(&reg.lock);
}

void dm_m_collector_remove(dm_m_collector fn, void *ud)
{
	pthread_mutex_lock(&reg.lock);
	for (struct collector **p = &reg.collectors; *p; p = &(*p)->next) {
		if ((*p)->fn == fn && (*p)->ud == ud) {
			struct collector *c = *p;

			*p = c->next;
			free(c);
			break;
		}
	}
	pthread_mutex_unlock(&reg.lock);
}

/* ---- process figures ---- */

static struct dm_m_family *p_rss, *p_threads, *p_fds, *p_start;

static void process_collect(void *ud)
{
	FILE *f;
	char line[256];
	long pages = 0, rss = 0;
	int fds = 0;
	DIR *d;

	(void)ud;
	f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) == 2)
			dm_m_set(dm_m_series(p_rss), (double)rss * (double)sysconf(_SC_PAGESIZE));
		fclose(f);
	}
	f = fopen("/proc/self/status", "r");
	if (f) {
		while (fgets(line, sizeof line, f))
			if (!strncmp(line, "Threads:", 8))
				dm_m_set(dm_m_series(p_threads), atof(line + 8));
		fclose(f);
	}
	d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;

		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				fds++;
		closedir(d);
		dm_m_set(dm_m_series(p_fds), (double)(fds - 1)); /* less the listing's own */
	}
}

void dm_m_process_collector(void)
{
	static int done;
	int first;

	pthread_mutex_lock(&reg.lock);
	first = !done;
	done = 1;
	pthread_mutex_unlock(&reg.lock);
	if (!first)
		return;
	p_rss = dm_m_family(DM_M_GAUGE, "didfs_process_resident_memory_bytes",
			    "Resident set size of the process.", NULL, NULL, 0);
	p_threads = dm_m_family(DM_M_GAUGE, "didfs_process_threads",
				"Threads of the process.", NULL, NULL, 0);
	p_fds = dm_m_family(DM_M_GAUGE, "didfs_process_open_fds",
			    "Open file descriptors of the process.", NULL, NULL, 0);
	p_start = dm_m_family(DM_M_GAUGE, "didfs_process_start_time_seconds",
			      "Start time of the process since the epoch.", NULL, NULL, 0);
	dm_m_set(dm_m_series(p_start), dm_now_f());
	dm_m_collector_add(process_collect, NULL);
}

/* ---- exposition ---- */

void dm_m_escape_label(struct dm_buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			dm_buf_adds(out, "\\\\");
		else if (*s == '"')
			dm_buf_adds(out, "\\\"");
		else if (*s == '\n')
			dm_buf_adds(out, "\\n");
		else
			dm_buf_addc(out, *s);
	}
}

void dm_m_escape_help(struct dm_buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			dm_buf_adds(out, "\\\\");
		else if (*s == '\n')
			dm_buf_adds(out, "\\n");
		else
			dm_buf_addc(out, *s);
	}
}

void dm_m_format_value(double v, char out[40])
{
	if (isnan(v))
		snprintf(out, 40, "NaN");
	else if (isinf(v))
		snprintf(out, 40, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		snprintf(out, 40, "%.0f", v);
	else {
		snprintf(out, 40, "%.15g", v);
		if (strtod(out, NULL) != v)
			snprintf(out, 40, "%.17g", v);
	}
}

static void labels(struct dm_buf *out, const struct dm_m_series *s, const char *le)
{
	const struct dm_m_family *f = s->f;

	if (!f->nlabels && !le)
		return;
	dm_buf_addc(out, '{');
	for (int i = 0; i < f->nlabels; i++) {
		dm_buf_addf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
		dm_m_escape_label(out, s->values[i]);
		dm_buf_addc(out, '"');
	}
	if (le)
		dm_buf_addf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	dm_buf_addc(out, '}');
}

static void render_family(struct dm_buf *out, struct dm_m_family *f)
{
	static const char *const tn[] = { "counter", "gauge", "histogram" };
	struct dm_m_series *s = atomic_load_explicit(&f->head, memory_order_acquire);
	char v[40];

	if (!s)
		return;
	dm_buf_addf(out, "# HELP %s ", f->name);
	dm_m_escape_help(out, f->help);
	dm_buf_addf(out, "\n# TYPE %s %s\n", f->name, tn[f->type]);
	for (; s; s = s->next) {
		if (f->type != DM_M_HISTOGRAM) {
			dm_buf_adds(out, f->name);
			labels(out, s, NULL);
			dm_m_format_value(u2d(atomic_load_explicit(&s->val, memory_order_relaxed)), v);
			dm_buf_addf(out, " %s\n", v);
			continue;
		}
		/* read the buckets first: count is at least their sum then */
		uint64_t cum = 0, cnt;
		double sum;

		for (int i = 0; i <= f->nbuckets; i++) {
			char le[40];

			cum += atomic_load_explicit(&s->bucket[i], memory_order_relaxed);
			if (i < f->nbuckets)
				dm_m_format_value(f->buckets[i], le);
			else
				snprintf(le, sizeof le, "+Inf");
			dm_buf_addf(out, "%s_bucket", f->name);
			labels(out, s, le);
			dm_buf_addf(out, " %llu\n", (unsigned long long)cum);
		}
		cnt = cum; /* _count == the +Inf bucket, as the format wants */
		sum = u2d(atomic_load_explicit(&s->sum, memory_order_relaxed));
		dm_buf_addf(out, "%s_sum", f->name);
		labels(out, s, NULL);
		dm_m_format_value(sum, v);
		dm_buf_addf(out, " %s\n%s_count", v, f->name);
		labels(out, s, NULL);
		dm_buf_addf(out, " %llu\n", (unsigned long long)cnt);
	}
}

int dm_m_render(struct dm_buf *out)
{
	size_t before = out->len;

	pthread_mutex_lock(&reg.lock);
	for (struct collector *c = reg.collectors; c; c = c->next)
		c->fn(c->ud);
	for (struct dm_m_family *f = reg.families; f; f = f->next)
		render_family(out, f);
	pthread_mutex_unlock(&reg.lock);
	(void)before;
	return 0;
}

/* ---- the exporter ---- */

int dm_m_http_parse_request(const char *buf, size_t n, int *head)
{
	const char *end = memchr(buf, '\n', n), *sp1, *sp2, *p;
	size_t len, plen;

	*head = 0;
	if (!end)
		return 400;
	len = (size_t)(end - buf);
	if (len && buf[len - 1] == '\r')
		len--;
	sp1 = memchr(buf, ' ', len);
	if (!sp1 || sp1 == buf)
		return 400;
	for (p = buf; p < sp1; p++)
		if (*p < 'A' || *p > 'Z')
			return 400;
	sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - buf));
	if (!sp2 || sp2 == sp1 + 1 || sp1[1] != '/')
		return 400;
	for (p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return 400;
	p = sp2 + 1;
	if ((size_t)(buf + len - p) != 8 || memcmp(p, "HTTP/", 5))
		return 400;
	if (p[5] != '1' || p[6] != '.' || (p[7] != '0' && p[7] != '1'))
		return 505;
	if ((sp1 - buf == 4 && !memcmp(buf, "HEAD", 4)))
		*head = 1;
	else if (!(sp1 - buf == 3 && !memcmp(buf, "GET", 3)))
		return 405;
	p = sp1 + 1;
	plen = (size_t)(sp2 - p);
	for (size_t i = 0; i < plen; i++)
		if (p[i] == '?') {
			plen = i;
			break;
		}
	if ((plen == 8 && !memcmp(p, "/metrics", 8)) || (plen == 9 && !memcmp(p, "/metrics/", 9)))
		return 200;
	return 404;
}

static struct {
	pthread_t th;
	int running;
	int lfd;
	int stop_pipe[2];
	int port;
} ex = { .lfd = -1, .stop_pipe = { -1, -1 } };

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void serve_one(int fd)
{
	char buf[8192];
	size_t n = 0;
	struct timeval tv = { 5, 0 };
	struct dm_buf body = DM_BUF_INIT, hdr = DM_BUF_INIT;
	int status, head = 0;
	const char *reason;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	while (n < sizeof buf) {
		ssize_t r = recv(fd, buf + n, sizeof buf - n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memmem(buf, n, "\r\n\r\n", 4) || memmem(buf, n, "\n\n", 2))
			break;
	}
	if (!n)
		return;
	status = dm_m_http_parse_request(buf, n, &head);
	switch (status) {
	case 200: reason = "OK"; dm_m_render(&body); break;
	case 404: reason = "Not Found"; dm_buf_adds(&body, "only /metrics here\n"); break;
	case 405: reason = "Method Not Allowed"; dm_buf_adds(&body, "GET or HEAD only\n"); break;
	case 505: reason = "HTTP Version Not Supported"; dm_buf_adds(&body, "HTTP/1.x only\n"); break;
	default: reason = "Bad Request"; dm_buf_adds(&body, "malformed request line\n"); break;
	}
	dm_buf_addf(&hdr, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		    "Connection: close\r\n\r\n", status, reason,
		    status == 200 ? DM_M_CONTENT_TYPE : "text/plain; charset=utf-8", body.len,
		    status == 405 ? "Allow: GET, HEAD\r\n" : "");
	write_all(fd, hdr.s, hdr.len);
	if (!head)
		write_all(fd, body.s, body.len);
	dm_buf_release(&hdr);
	dm_buf_release(&body);
}

static void *exporter_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = { { ex.lfd, POLLIN, 0 }, { ex.stop_pipe[0], POLLIN, 0 } };
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(ex.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(fd);
		close(fd);
	}
	return NULL;
}

enum dm_status dm_m_http_start(const char *addr_port, struct dm_err *err)
{
	struct sockaddr_in sa = { 0 };
	char host[64];
	const char *colon = strrchr(addr_port, ':');
	uint64_t port;
	socklen_t sl = sizeof sa;
	int one = 1;

	if (ex.running)
		return dm_seterr(err, DM_EINVAL, "InputValidationError", "--metrics given twice");
	if (!colon || (size_t)(colon - addr_port) >= sizeof host || dm_parse_u64(colon + 1, &port) ||
	    port > 65535)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "--metrics takes ADDR:PORT, not '%s'", addr_port);
	memcpy(host, addr_port, (size_t)(colon - addr_port));
	host[colon - addr_port] = 0;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, *host ? host : "0.0.0.0", &sa.sin_addr) != 1)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "--metrics: '%s' is not an IPv4 address", host);
	ex.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ex.lfd < 0)
		return dm_seterr(err, DM_EIO, "RucioException", "--metrics: socket: %s", strerror(errno));
	setsockopt(ex.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(ex.lfd, (struct sockaddr *)&sa, sizeof sa) || listen(ex.lfd, 16) ||
	    getsockname(ex.lfd, (struct sockaddr *)&sa, &sl) || pipe2(ex.stop_pipe, O_CLOEXEC)) {
		dm_seterr(err, DM_EIO, "RucioException", "--metrics: cannot listen on %s: %s",
			  addr_port, strerror(errno));
		close(ex.lfd);
		ex.lfd = -1;
		return DM_EIO;
	}
	ex.port = ntohs(sa.sin_port);
	dm_m_enable();
	dm_m_process_collector();
	if (pthread_create(&ex.th, NULL, exporter_main, NULL)) {
		close(ex.lfd);
		close(ex.stop_pipe[0]);
		close(ex.stop_pipe[1]);
		ex.lfd = -1;
		return dm_seterr(err, DM_EIO, "RucioException", "--metrics: cannot start a thread");
	}
	ex.running = 1;
	dm_log(DM_LOG_INFO, "metrics", "serving /metrics on %s:%d", *host ? host : "0.0.0.0",
	       ex.port);
	return DM_OK;
}

int dm_m_http_port(void)
{
	return ex.port;
}

void dm_m_http_stop(void)
{
	if (!ex.running)
		return;
	if (write(ex.stop_pipe[1], "x", 1) < 0) {
		/* the pipe is ours and empty: cannot fail short of a bug */
	}
	pthread_join(ex.th, NULL);
	close(ex.lfd);
	close(ex.stop_pipe[0]);
	close(ex.stop_pipe[1]);
	ex.lfd = -1;
	ex.running = 0;
}
