/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_metrics.c - what `didfs serve` counts and how /metrics is answered
 * (util/metrics.h is the registry), and the request ids.
 *
 * Series: didfs_http_requests_total{family,method,status} and
 * didfs_http_request_duration_seconds{family,method} (from the request's
 * first byte to its completion, streams included),
 * didfs_http_response_bytes_total{family}, plus the process figures.  family is the endpoint family, the first path
 * segment when it is one the server answers (accounts, rules, ...), else
 * "other", so that a scan of random paths cannot grow the series without
 * bound; method is one of Rucio's (GET, POST, PUT, DELETE, HEAD) or OTHER.
 *
 * Authentication: /metrics takes no Rucio token (Prometheus does not have
 * one); it is guarded by an allow-list of client addresses instead, the
 * config key metrics_allow / --metrics-allow: comma-separated IPv4
 * addresses or CIDR blocks, "any", or "off" (no /metrics and nothing
 * recorded).  The default is 127.0.0.0/8.  Anyone else gets 403
 * AccessDenied.  The figures say nothing about DIDs or accounts.
 *
 * Request ids: an incoming X-Request-Id of 1..64 characters from
 * [A-Za-z0-9._:-] is kept, anything else is replaced by a fresh 32-hex id.
 * http.c puts it on the thread (dm_log_set_request_id: every log line of
 * the request carries it, and the catalog stores it with a rule the request
 * adds), in the access log and in the X-Request-Id response header.
 */
#include "server.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NETS 32

static struct {
	int off, any, n;
	uint32_t net[MAX_NETS], mask[MAX_NETS];
	struct dm_m_family *req, *dur, *bytes;
} sm;

static const char *const families[] = {
	"ping", "auth", "traces", "accounts", "identities", "scopes", "rses", "dids", "replicas",
	"rules", "locks", "accountlimits", "metrics", "ui",
};

int srv_metrics_init(const char *allow, struct dm_err *err)
{
	static const char *const l3[] = { "family", "method", "status", NULL };
	static const char *const l2[] = { "family", "method", NULL };
	static const char *const l1[] = { "family", NULL };
	char buf[1024], *save = NULL, *tok;

	memset(&sm, 0, sizeof sm);
	if (!allow || !*allow)
		allow = "127.0.0.0/8";
	if (!strcmp(allow, "off")) {
		sm.off = 1;
		return 0;
	}
	if (strlen(allow) >= sizeof buf)
		return dm_seterr(err, DM_EINVAL, "ConfigurationError", "metrics_allow is too long"), -1;
	strcpy(buf, allow);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char *slash = strchr(tok, '/');
		struct in_addr a;
		uint64_t bits = 32;

		if (!strcmp(tok, "any")) {
			sm.any = 1;
			continue;
		}
		if (slash)
			*slash = 0;
		if (inet_pton(AF_INET, tok, &a) != 1 || (slash && (dm_parse_u64(slash + 1, &bits) || bits > 32)) ||
		    sm.n >= MAX_NETS) {
			dm_seterr(err, DM_EINVAL, "ConfigurationError",
				  "metrics_allow takes off, any or up to %d IPv4 ADDR[/BITS], not '%s%s%s'",
				  MAX_NETS, tok, slash ? "/" : "", slash ? slash + 1 : "");
			return -1;
		}
		sm.mask[sm.n] = bits ? htonl(0xffffffffu << (32 - bits)) : 0;
		sm.net[sm.n] = a.s_addr & sm.mask[sm.n];
		sm.n++;
	}
	dm_m_enable();
	dm_m_process_collector();
	sm.req = dm_m_family(DM_M_COUNTER, "didfs_http_requests_total",
			     "REST requests answered, by endpoint family, method and HTTP status.", l3,
			     NULL, 0);
	sm.dur = dm_m_family(DM_M_HISTOGRAM, "didfs_http_request_duration_seconds",
			     "REST request latency from the first byte to the last, by endpoint family and method.",
			     l2, NULL, 0);
	sm.bytes = dm_m_family(DM_M_COUNTER, "didfs_http_response_bytes_total",
			       "Response body bytes sent (streams counted as they are queued), by endpoint family.",
			       l1, NULL, 0);
	return 0;
}

const char *srv_metrics_family(const char *path)
{
	size_t n;

	if (*path == '/')
		path++;
	n = strcspn(path, "/");
	for (size_t i = 0; i < DM_ARRAY_SIZE(families); i++)
		if (strlen(families[i]) == n && !strncmp(families[i], path, n))
			return families[i];
	return "other";
}

static const char *method_label(const char *m)
{
	static const char *const known[] = { "GET", "POST", "PUT", "DELETE", "HEAD" };

	for (size_t i = 0; i < DM_ARRAY_SIZE(known); i++)
		if (!strcmp(known[i], m))
			return known[i];
	return "OTHER";
}

void srv_metrics_begin(void)
{
	/* no in-flight gauge: two atomic updates per request on one line
	 * shared by every connection thread cost more than the figure is worth
	 * (tests/bench/bench_metrics.py) */
}

static __thread struct {
	const char *fam, *m;
	int status;
	struct dm_m_series *req, *dur, *bytes;
} last;

void srv_metrics_end(const char *method, const char *path, int status, uint64_t bytes,
		     double seconds)
{
	const char *fam, *m;
	char st[16];

	if (sm.off || !dm_m_enabled())
		return;
	fam = srv_metrics_family(path);
	m = method_label(method);
	/* a connection's thread mostly repeats its kind of request: keep the
	 * series of the last one (fam and m are static strings) */
	if (fam != last.fam || m != last.m || status != last.status) {
		snprintf(st, sizeof st, "%d", status);
		last.fam = fam;
		last.m = m;
		last.status = status;
		last.req = dm_m_series(sm.req, fam, m, st);
		last.dur = dm_m_series(sm.dur, fam, m);
		last.bytes = dm_m_series(sm.bytes, fam);
	}
	dm_m_add(last.req, 1);
	dm_m_observe(last.dur, seconds);
	dm_m_add(last.bytes, (double)bytes);
}

int srv_metrics_allowed(const struct sockaddr *sa)
{
	uint32_t a;

	if (sm.off)
		return 0;
	if (sm.any)
		return 1;
	if (!sa || sa->sa_family != AF_INET)
		return 0;
	a = ((const struct sockaddr_in *)sa)->sin_addr.s_addr;
	for (int i = 0; i < sm.n; i++)
		if ((a & sm.mask[i]) == sm.net[i])
			return 1;
	return 0;
}

int srv_metrics_off(void)
{
	return sm.off;
}

void srv_request_id(const char *incoming, char out[SRV_REQUEST_ID_MAX + 1])
{
	size_t n = incoming ? strlen(incoming) : 0;
	int ok = n >= 1 && n <= SRV_REQUEST_ID_MAX;

	for (size_t i = 0; ok && i < n; i++) {
		char c = incoming[i];

		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     c == '.' || c == '_' || c == ':' || c == '-';
	}
	if (ok)
		memcpy(out, incoming, n + 1);
	else
		dm_uuid32(out);
}
