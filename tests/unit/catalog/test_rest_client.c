/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_rest_client.c - the REST client's behaviour when the server cannot be
 * reached (catalog/rest/client.c): a loopback port that refuses
 * connections gives ServerUnreachable naming the host, within the timeout,
 * and the next call fails at once (the back-off) without touching the
 * network; the percent-encoding of names and the class -> status map.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "tap.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct rest_config cfg;
	struct rest_client *c;
	struct rest_req r = { .method = "GET", .path = "/scopes/" };
	struct dm_err e = { 0 };
	char url[64];
	struct dm_buf b = DM_BUF_INIT;
	double t0;

	/* a bound port nobody listens on: connections are refused */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	snprintf(url, sizeof url, "https://127.0.0.1:%d", ntohs(a.sin_port));
	rest_config_init(&cfg);
	rest_config_set(&cfg.rucio_host, url);
	rest_config_set(&cfg.auth_token_file, "/nonexistent-token"); /* no auth round trip */
	rest_config_set(&cfg.auth_type, "userpass");
	rest_config_set(&cfg.username, "u");
	rest_config_set(&cfg.password, "p");
	cfg.timeout = 5;
	setenv("XDG_CACHE_HOME", "/nonexistent-didfs-test", 1);
	c = rest_client_new(&cfg);
	rest_config_free(&cfg);
	CHECK(rest_client_reachable(c) == 1);

	t0 = now();
	CHECK(rest_call(c, &r, &e) == DM_EIO);
	CHECK_STR(e.cls, "ServerUnreachable");
	CHECK(strstr(e.msg, url) != NULL);
	CHECK(now() - t0 < 5 + 2);
	CHECK(rest_client_reachable(c) == 0);
	/* while it is down: at once, without the network */
	t0 = now();
	CHECK(rest_call(c, &r, &e) == DM_EIO);
	CHECK_STR(e.cls, "ServerUnreachable");
	CHECK(strstr(e.msg, "not trying again") != NULL);
	CHECK(now() - t0 < 0.5);
	CHECK(rest_client_requests(c) == 1);
	CHECK_STR(rest_client_last_error(c)->cls, "ServerUnreachable");
	rest_client_free(c);
	close(fd);

	/* names with '/' and everything else outside unreserved characters */
	rest_escape(&b, "data/2024/run 1.root:x%");
	CHECK_STR(b.s, "data%2F2024%2Frun%201.root%3Ax%25");
	dm_buf_release(&b);

	/* Rucio's classes -> the local store's statuses */
	CHECK(rest_status_of_class("DataIdentifierNotFound", 404) == DM_ENOENT);
	CHECK(rest_status_of_class("DuplicateRule", 409) == DM_EEXIST);
	CHECK(rest_status_of_class("AccessDenied", 401) == DM_EPERM);
	CHECK(rest_status_of_class("InsufficientAccountLimit", 409) == DM_EQUOTA);
	CHECK(rest_status_of_class("InvalidRSEExpression", 400) == DM_EINVAL);
	CHECK(rest_status_of_class("UnsupportedOperation", 409) == DM_ENOTSUP);
	CHECK(rest_status_of_class("SomethingNew", 404) == DM_ENOENT);
	return tap_done();
}
