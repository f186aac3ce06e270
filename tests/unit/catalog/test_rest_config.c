/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_rest_config.c - the REST catalog's rucio.cfg parser and its
 * x-json-stream line reader (catalog/rest/config.c, lines.c): real files in
 * a temporary directory, real environment variables.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "lines.h"
#include "tap.h"

static void test_parse(void)
{
	struct rest_config c;
	struct dm_err e = { 0 };
	const char *text =
		"# a comment\n"
		"[common]\n"
		"loglevel = DEBUG\n"
		"account = notthisone\n"
		"[client]\r\n"
		"rucio_host = https://rucio.example.org:443/\n"
		"auth_type: x509_proxy\n"
		"Account = jdoe\n"
		"; another comment\n"
		"client_x509_proxy = /tmp/x509up_u1000\n"
		"ca_cert = /etc/grid-security/certificates\n"
		"password = 100%% secret\n"
		"username = a\n"
		"   b\n"
		"request_retries = 5\n"
		"timeout = 2.5\n"
		"[policy]\n"
		"vo = wrong\n";

	rest_config_init(&c);
	CHECK(rest_config_parse(&c, text, strlen(text), "t.cfg", &e) == DM_OK);
	CHECK_STR(c.rucio_host, "https://rucio.example.org:443");
	CHECK(c.auth_host == NULL);
	CHECK_STR(c.auth_type, "x509_proxy");
	CHECK_STR(c.account, "jdoe");
	CHECK_STR(c.client_x509_proxy, "/tmp/x509up_u1000");
	CHECK_STR(c.ca_cert, "/etc/grid-security/certificates");
	CHECK_STR(c.password, "100% secret");
	CHECK_STR(c.username, "a\nb");
	CHECK(c.request_retries == 5);
	CHECK(c.timeout == 2.5);
	CHECK(c.vo == NULL);
	rest_config_free(&c);

	rest_config_init(&c);
	CHECK(rest_config_parse(&c, "[client]\nno separator here\n", 27, "b.cfg", &e) == DM_EINVAL);
	CHECK(strstr(e.msg, "b.cfg:2") != NULL);
	CHECK(rest_config_parse(&c, "[client\n", 8, "c.cfg", &e) == DM_EINVAL);
	CHECK(strstr(e.msg, "c.cfg:1") != NULL);
	CHECK(rest_config_parse(&c, "[client]\nrequest_retries = lots\n", 32, "d.cfg", &e) == DM_EINVAL);
	CHECK(strstr(e.msg, "request_retries") != NULL);
	CHECK(rest_config_parse(&c, "[client]\nx = \0y\n", 16, "n.cfg", &e) == DM_EINVAL);
	rest_config_free(&c);
}

static void test_files_and_env(void)
{
	char dir[] = "/tmp/didfs-restcfg-XXXXXX", path[256], etc[300];
	struct rest_config c;
	struct dm_err e = { 0 };
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(etc, sizeof etc, "%s/etc", dir);
	mkdir(etc, 0700);
	snprintf(path, sizeof path, "%s/etc/rucio.cfg", dir);
	f = fopen(path, "w");
	fputs("[client]\nrucio_host = https://a.example:1\nauth_host = https://a.example:1\n"
	      "auth_type = userpass\naccount = fromfile\n", f);
	fclose(f);
	unsetenv("RUCIO_CONFIG");
	unsetenv("RUCIO_ACCOUNT");
	unsetenv("DIDFS_TIMEOUT");
	unsetenv("RUCIO_AUTH_TYPE");
	setenv("RUCIO_HOME", dir, 1);
	rest_config_init(&c);
	CHECK(rest_config_load(&c, &e) == DM_OK);
	CHECK_STR(c.origin, path);
	CHECK_STR(c.account, "fromfile");
	setenv("RUCIO_ACCOUNT", "fromenv", 1);
	setenv("DIDFS_TIMEOUT", "7", 1);
	CHECK(rest_config_env(&c, &e) == DM_OK);
	CHECK_STR(c.account, "fromenv");
	CHECK(c.timeout == 7);
	/* the catalog URI gives the host; auth_host follows when it was the same */
	CHECK(rest_config_host(&c, "https://b.example:2/", &e) == DM_OK);
	CHECK_STR(c.rucio_host, "https://b.example:2");
	CHECK_STR(c.auth_host, "https://b.example:2");
	CHECK(rest_config_host(&c, "https://b.example:2/some/path", &e) == DM_EINVAL);
	CHECK(rest_config_host(&c, "https://", &e) == DM_EINVAL);
	setenv("DIDFS_TIMEOUT", "soon", 1);
	CHECK(rest_config_env(&c, &e) == DM_EINVAL);
	CHECK(strstr(e.msg, "DIDFS_TIMEOUT") != NULL);
	unsetenv("DIDFS_TIMEOUT");
	setenv("RUCIO_AUTH_TYPE", "kerberos", 1);
	CHECK(rest_config_env(&c, &e) == DM_EINVAL);
	CHECK(strstr(e.msg, "kerberos") != NULL);
	unsetenv("RUCIO_AUTH_TYPE");
	rest_config_free(&c);

	/* $RUCIO_CONFIG names a file that is not there: an error naming it */
	setenv("RUCIO_CONFIG", "/nonexistent/rucio.cfg", 1);
	rest_config_init(&c);
	CHECK(rest_config_load(&c, &e) != DM_OK);
	CHECK(strstr(e.msg, "/nonexistent/rucio.cfg") != NULL);
	rest_config_free(&c);
	/* no file at the default places is fine */
	unsetenv("RUCIO_CONFIG");
	snprintf(path, sizeof path, "%s/none", dir);
	setenv("RUCIO_HOME", path, 1);
	rest_config_init(&c);
	CHECK(rest_config_load(&c, &e) == DM_OK);
	CHECK(c.rucio_host == NULL);
	rest_config_free(&c);
	snprintf(path, sizeof path, "%s/etc/rucio.cfg", dir);
	unlink(path);
	rmdir(etc);
	rmdir(dir);
	unsetenv("RUCIO_HOME");
	unsetenv("RUCIO_ACCOUNT");
}

struct seen { int n; char names[8][32]; int stop_at; };
static int on_row(void *ud, json_t *row)
{
	struct seen *s = ud;
	const char *nm = json_string_value(json_object_get(row, "name"));
	if (s->n < 8)
		snprintf(s->names[s->n], 32, "%s", nm ? nm : "?");
	s->n++;
	return s->stop_at && s->n >= s->stop_at;
}

static void test_lines(void)
{
	const char *stream = "{\"name\": \"a\"}\n\n{\"name\": \"b/c\"}\r\n{\"name\": \"d\"}\n";
	struct rest_lines l;
	struct seen s = { 0 };

	/* byte by byte: the same rows as in one piece */
	rest_lines_init(&l, 0, on_row, &s);
	for (size_t i = 0; i < strlen(stream); i++)
		CHECK(rest_lines_feed(&l, stream + i, 1) == 0);
	CHECK(rest_lines_finish(&l) == 0);
	CHECK(s.n == 3);
	CHECK_STR(s.names[1], "b/c");
	rest_lines_release(&l);

	/* truncated: the last line lacks its newline */
	memset(&s, 0, sizeof s);
	rest_lines_init(&l, 0, on_row, &s);
	CHECK(rest_lines_feed(&l, "{\"name\": \"a\"}\n{\"name\": \"b", 25) == 0);
	CHECK(rest_lines_finish(&l) == -1);
	CHECK(strstr(l.err.msg, "truncated") != NULL);
	CHECK(s.n == 1);
	rest_lines_release(&l);

	/* garbage */
	memset(&s, 0, sizeof s);
	rest_lines_init(&l, 0, on_row, &s);
	CHECK(rest_lines_feed(&l, "{\"name\": \"a\"}\n<html>oops</html>\n", 33) == -1);
	CHECK(strstr(l.err.msg, "line 2") != NULL);
	CHECK(rest_lines_feed(&l, "{}\n", 3) == -1);
	rest_lines_release(&l);

	/* a line over the limit */
	memset(&s, 0, sizeof s);
	rest_lines_init(&l, 16, on_row, &s);
	CHECK(rest_lines_feed(&l, "{\"name\": \"0123456789\"}\n", 23) == -1);
	CHECK(strstr(l.err.msg, "longer than 16") != NULL);
	rest_lines_release(&l);

	/* the callback stops the reading */
	memset(&s, 0, sizeof s);
	s.stop_at = 2;
	rest_lines_init(&l, 0, on_row, &s);
	CHECK(rest_lines_feed(&l, stream, strlen(stream)) == 1);
	CHECK(s.n == 2);
	CHECK(rest_lines_finish(&l) == 0);
	rest_lines_release(&l);
}

int main(void)
{
	test_parse();
	test_files_and_env();
	test_lines();
	return tap_done();
}
