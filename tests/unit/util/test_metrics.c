/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_metrics.c - util/metrics.c: the Prometheus text format (HELP/TYPE,
 * label value escaping, histogram buckets cumulative with +Inf, _sum,
 * _count), values, the no-op state before dm_m_enable, concurrent adds, the
 * exporter's request-line parser, a real scrape of the exporter thread over
 * loopback, and the JSON/kv log line forms (util/dm.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dm.h"
#include "metrics.h"
#include "tap.h"

static struct dm_m_family *conc;

static void *adder(void *arg)
{
	struct dm_m_series *s = dm_m_series(conc, (const char *)arg);

	for (int i = 0; i < 100000; i++)
		dm_m_add(s, 1);
	return NULL;
}

static char *scrape(int port, const char *req)
{
	struct sockaddr_in sa = { 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct dm_buf b = DM_BUF_INIT;
	char buf[4096];
	ssize_t n;

	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
		close(fd);
		return NULL;
	}
	if (write(fd, req, strlen(req)) < 0) {
		close(fd);
		return NULL;
	}
	while ((n = read(fd, buf, sizeof buf)) > 0)
		dm_buf_add(&b, buf, (size_t)n);
	close(fd);
	return dm_buf_detach(&b);
}

int main(void)
{
	static const char *const l2[] = { "endpoint", "status", NULL };
	static const char *const l1[] = { "t", NULL };
	static const double b3[] = { 0.1, 1, 10 };
	struct dm_m_family *c, *h, *g;
	struct dm_buf out = DM_BUF_INIT;
	char v[40];
	int head;
	pthread_t th[4];
	char *r;
	struct dm_err err = { 0 };

	/* off: no series, nothing rendered */
	c = dm_m_family(DM_M_COUNTER, "didfs_test_requests_total", "Requests\\served.\nTwo lines.",
			l2, NULL, 0);
	CHECK(dm_m_series(c, "rules", "200") == NULL);
	dm_m_add(NULL, 1);
	dm_m_observe(NULL, 1);
	dm_m_render(&out);
	CHECK(out.len == 0);

	dm_m_enable();
	CHECK(dm_m_family(DM_M_COUNTER, "didfs_test_requests_total", "x", l2, NULL, 0) == c);
	dm_m_add(dm_m_series(c, "rules", "200"), 1);
	dm_m_add(dm_m_series(c, "rules", "200"), 2);
	CHECK(dm_m_series(c, "rules", "200") == dm_m_series(c, "rules", "200"));
	CHECK(dm_m_get(dm_m_series(c, "rules", "200")) == 3);
	dm_m_add(dm_m_series(c, "a\"b\\c\nd", "500"), 1);
	h = dm_m_family(DM_M_HISTOGRAM, "didfs_test_seconds", "Latency.", NULL, b3, 3);
	dm_m_observe(dm_m_series(h), 0.05);
	dm_m_observe(dm_m_series(h), 0.1); /* le is inclusive */
	dm_m_observe(dm_m_series(h), 5);
	dm_m_observe(dm_m_series(h), 100);
	g = dm_m_family(DM_M_GAUGE, "didfs_test_bytes", "Bytes.", NULL, NULL, 0);
	dm_m_set(dm_m_series(g), 1.5);
	dm_m_set(dm_m_series(g), 2.25);
	dm_m_render(&out);
	fputs(out.s, stderr);
	CHECK(strstr(out.s, "# HELP didfs_test_requests_total Requests\\\\served.\\nTwo lines.\n"
			    "# TYPE didfs_test_requests_total counter\n") != NULL);
	CHECK(strstr(out.s, "didfs_test_requests_total{endpoint=\"rules\",status=\"200\"} 3\n") != NULL);
	CHECK(strstr(out.s, "didfs_test_requests_total{endpoint=\"a\\\"b\\\\c\\nd\",status=\"500\"} 1\n") != NULL);
	CHECK(strstr(out.s, "# TYPE didfs_test_seconds histogram\n"
			    "didfs_test_seconds_bucket{le=\"0.1\"} 2\n"
			    "didfs_test_seconds_bucket{le=\"1\"} 2\n"
			    "didfs_test_seconds_bucket{le=\"10\"} 3\n"
			    "didfs_test_seconds_bucket{le=\"+Inf\"} 4\n"
			    "didfs_test_seconds_sum 105.15\n"
			    "didfs_test_seconds_count 4\n") != NULL);
	CHECK(strstr(out.s, "# TYPE didfs_test_bytes gauge\ndidfs_test_bytes 2.25\n") != NULL);

	/* labelled histogram: le comes after the labels */
	h = dm_m_family(DM_M_HISTOGRAM, "didfs_test_op_seconds", "Op.", l1, b3, 3);
	dm_m_observe(dm_m_series(h, "read"), 2);
	dm_buf_reset(&out);
	dm_m_render(&out);
	CHECK(strstr(out.s, "didfs_test_op_seconds_bucket{t=\"read\",le=\"1\"} 0\n"
			    "didfs_test_op_seconds_bucket{t=\"read\",le=\"10\"} 1\n") != NULL);
	CHECK(strstr(out.s, "didfs_test_op_seconds_count{t=\"read\"} 1\n") != NULL);

	dm_m_format_value(0.1, v);
	CHECK_STR(v, "0.1");
	dm_m_format_value(1e20, v);
	CHECK_STR(v, "1e+20");
	dm_m_format_value(12345678901.0, v);
	CHECK_STR(v, "12345678901");
	dm_m_format_value(1.0 / 0.0, v);
	CHECK_STR(v, "+Inf");

	/* concurrent adds lose nothing */
	conc = dm_m_family(DM_M_COUNTER, "didfs_test_conc_total", "c", l1, NULL, 0);
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, adder, (void *)(i % 2 ? "odd" : "even"));
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK(dm_m_get(dm_m_series(conc, "odd")) == 200000);
	CHECK(dm_m_get(dm_m_series(conc, "even")) == 200000);

	/* the request line */
	CHECK(dm_m_http_parse_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 35, &head) == 200 && !head);
	CHECK(dm_m_http_parse_request("HEAD /metrics?x=1 HTTP/1.0\n\n", 28, &head) == 200 && head);
	CHECK(dm_m_http_parse_request("GET /other HTTP/1.1\r\n", 21, &head) == 404);
	CHECK(dm_m_http_parse_request("POST /metrics HTTP/1.1\r\n", 24, &head) == 405);
	CHECK(dm_m_http_parse_request("GET /metrics HTTP/2.0\r\n", 23, &head) == 505);
	CHECK(dm_m_http_parse_request("GET /metrics HTTP/1.1", 21, &head) == 400);
	CHECK(dm_m_http_parse_request("GET  /metrics HTTP/1.1\r\n", 24, &head) == 400);
	CHECK(dm_m_http_parse_request("get /metrics HTTP/1.1\r\n", 23, &head) == 400);
	CHECK(dm_m_http_parse_request("GET metrics HTTP/1.1\r\n", 22, &head) == 400);
	CHECK(dm_m_http_parse_request("GET /met\x01rics HTTP/1.1\r\n", 24, &head) == 400);

	/* the exporter over loopback */
	CHECK(dm_m_http_start("127.0.0.1:99999", &err) == DM_EINVAL);
	CHECK(strstr(err.msg, "ADDR:PORT") != NULL);
	CHECK(dm_m_http_start("nohost:1", &err) == DM_EINVAL);
	CHECK(dm_m_http_start("127.0.0.1:0", &err) == DM_OK);
	CHECK(dm_m_http_port() > 0);
	r = scrape(dm_m_http_port(), "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
	CHECK(r && !strncmp(r, "HTTP/1.1 200 OK\r\n", 17));
	CHECK(r && strstr(r, "Content-Type: text/plain; version=0.0.4") != NULL);
	CHECK(r && strstr(r, "\ndidfs_test_bytes 2.25\n") != NULL);
	CHECK(r && strstr(r, "\ndidfs_process_threads ") != NULL);
	CHECK(r && strstr(r, "\ndidfs_process_resident_memory_bytes ") != NULL);
	CHECK(r && strstr(r, "\ndidfs_process_open_fds ") != NULL);
	free(r);
	r = scrape(dm_m_http_port(), "DELETE /metrics HTTP/1.1\r\n\r\n");
	CHECK(r && !strncmp(r, "HTTP/1.1 405 ", 13));
	free(r);
	r = scrape(dm_m_http_port(), "GET / HTTP/1.1\r\n\r\n");
	CHECK(r && !strncmp(r, "HTTP/1.1 404 ", 13));
	free(r);
	dm_m_http_stop();

	/* log lines */
	dm_buf_reset(&out);
	dm_log_set_format(DM_LOG_JSON);
	dm_log_set_request_id("abc123");
	{
		const char *kv[] = { "rule_id", "r\"1", NULL };

		dm_log_render(&out, DM_LOG_INFO, "judge", kv, "bad \xff byte\n\ttab \x01");
	}
	fputs(out.s, stderr);
	CHECK(!strncmp(out.s, "{\"ts\":\"", 7));
	CHECK(strstr(out.s, "\"level\":\"info\",\"component\":\"judge\","
			    "\"msg\":\"bad \\ufffd byte\\n\\ttab \\u0001\",\"rule_id\":\"r\\\"1\","
			    "\"request_id\":\"abc123\"}\n") != NULL);
	dm_buf_reset(&out);
	dm_log_set_format(DM_LOG_KV);
	dm_log_set_request_id(NULL);
	{
		const char *kv[] = { "rse", "A B", "n", "3", NULL };

		dm_log_render(&out, DM_LOG_WARN, "conveyor", kv, "m");
	}
	fputs(out.s, stderr);
	CHECK(strstr(out.s, " level=warning component=conveyor msg=\"m\" rse=\"A B\" n=3\n") != NULL);
	CHECK(strstr(out.s, "request_id") == NULL);
	dm_buf_release(&out);
	return tap_done();
}
