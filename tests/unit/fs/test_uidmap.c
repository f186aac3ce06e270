/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_uidmap.c - unit tests of fs/uidmap.c: the --uid-map parser (uids,
 * user names through a resolver, comments, CRLF, every refusal naming its
 * line), the lookup, the file safety checks of fs_uidmap_load (owner, mode,
 * not a regular file), and the environment-block lookup used to find a
 * caller's X509_USER_PROXY / BEARER_TOKEN_FILE.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "uidmap.h"

static int resolve(const char *user, uint32_t *uid, void *ud)
{
	(void)ud;
	if (!strcmp(user, "alice")) {
		*uid = 1001;
		return 0;
	}
	if (!strcmp(user, "bob")) {
		*uid = 1002;
		return 0;
	}
	return -1;
}

static enum dm_status parse(const char *text, struct fs_uidmap *m, struct dm_err *e)
{
	memset(e, 0, sizeof *e);
	return fs_uidmap_parse(text, strlen(text), "MAP", resolve, NULL, m, e);
}

static void refused(const char *text, const char *want)
{
	struct fs_uidmap m;
	struct dm_err e;

	CHECK(parse(text, &m, &e) == DM_EINVAL);
	CHECK(m.n == 0 && m.v == NULL);
	if (!strstr(e.msg, want))
		fprintf(stderr, "  got: %s: %s (wanted %s)\n", e.cls, e.msg, want);
	CHECK(strstr(e.msg, want) != NULL);
}

static void test_parse(void)
{
	struct fs_uidmap m;
	struct dm_err e;

	CHECK(parse("# comment only\n\n   \t\n", &m, &e) == DM_OK);
	CHECK(m.n == 0);
	fs_uidmap_free(&m);

	CHECK(parse("alice jdoe\r\n  2000\tgroup-acc  # trailing comment\nbob  b_b\n0 root", &m, &e) ==
	      DM_OK);
	CHECK(m.n == 4);
	CHECK_STR(fs_uidmap_find(&m, 1001), "jdoe");
	CHECK_STR(fs_uidmap_find(&m, 1002), "b_b");
	CHECK_STR(fs_uidmap_find(&m, 2000), "group-acc");
	CHECK_STR(fs_uidmap_find(&m, 0), "root");
	CHECK(fs_uidmap_find(&m, 1003) == NULL);
	CHECK(fs_uidmap_find(NULL, 1) == NULL);
	fs_uidmap_free(&m);

	refused("alice\n", "MAP line 1: expected \"<uid-or-user> <account>\", found one field");
	refused("alice jdoe\nbob x y\n", "MAP line 2: expected");
	refused("# ok\ncarol jdoe\n", "MAP line 2: unknown user 'carol'");
	refused("1001 JDOE\n", "MAP line 1: invalid account 'JDOE'");
	refused("1001 abcdefghijklmnopqrstuvwxyz\n", "MAP line 1: invalid account");
	refused("4294967295 jdoe\n", "MAP line 1: uid '4294967295' is out of range");
	refused("99999999999 jdoe\n", "MAP line 1: uid '99999999999' is out of range");
	refused("1001 jdoe\nalice other\n", "MAP line 2: uid 1001 is mapped twice (also on line 1)");
	refused("1001 jdoe\rbob x\n", "MAP line 1: holds a CR character");
	{
		static const char nul[] = "1001 jdoe\n10\0002 x\n";
		CHECK(fs_uidmap_parse(nul, sizeof nul - 1, "MAP", resolve, NULL, &m, &e) == DM_EINVAL);
		CHECK(strstr(e.msg, "line 2: holds a NUL character") != NULL);
	}
	{
		char *big = malloc(FS_UIDMAP_MAX_LINE + 20);
		memset(big, 'a', FS_UIDMAP_MAX_LINE + 10);
		memcpy(big + FS_UIDMAP_MAX_LINE + 10, " x\n", 4);
		refused(big, "MAP line 1: longer than");
		free(big);
	}
	/* names are errors without a resolver */
	CHECK(fs_uidmap_parse("alice jdoe\n", 11, "MAP", NULL, NULL, &m, &e) == DM_EINVAL);
}

static void test_load(void)
{
	char dir[] = "/tmp/didfs-uidmap-XXXXXX", path[64];
	struct fs_uidmap m;
	struct dm_err e = { 0 };
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/map", dir);
	f = fopen(path, "w");
	fputs("1001 jdoe\n", f);
	fclose(f);
	chmod(path, 0644);
	CHECK(fs_uidmap_load(path, getuid(), &m, &e) == DM_OK);
	CHECK_STR(fs_uidmap_find(&m, 1001), "jdoe");
	fs_uidmap_free(&m);
	chmod(path, 0666);
	CHECK(fs_uidmap_load(path, getuid(), &m, &e) == DM_EPERM);
	CHECK(strstr(e.msg, "writable by everyone") != NULL);
	chmod(path, 0620);
	CHECK(fs_uidmap_load(path, getuid(), &m, &e) == DM_EPERM);
	CHECK(strstr(e.msg, "writable by its group") != NULL);
	chmod(path, 0600);
	if (getuid() == 0) { /* a map owned by someone else */
		CHECK(chown(path, 4242, 4242) == 0);
		CHECK(fs_uidmap_load(path, 0, &m, &e) == DM_EPERM);
		CHECK(strstr(e.msg, "is owned by uid 4242") != NULL);
		CHECK(fs_uidmap_load(path, 4242, &m, &e) == DM_OK); /* the mounting user's own */
		fs_uidmap_free(&m);
	}
	CHECK(fs_uidmap_load(dir, getuid(), &m, &e) != DM_OK);
	CHECK(strstr(e.msg, "not a regular file") != NULL);
	unlink(path);
	CHECK(fs_uidmap_load(path, getuid(), &m, &e) == DM_ENOENT);
	rmdir(dir);
}

static void test_environ(void)
{
	static const char env[] = "PATH=/bin\0X509_USER_PROXY=/tmp/p1\0X509_USER=no\0"
				  "X509_USER_PROXY=/tmp/second\0EMPTY=\0LAST=/unterminated";
	size_t n = sizeof env - 1, vlen = 0; /* the last entry without its NUL */
	const char *v;

	v = fs_environ_find(env, n, "X509_USER_PROXY", &vlen);
	CHECK(v && vlen == 7 && !memcmp(v, "/tmp/p1", 7));
	v = fs_environ_find(env, n, "X509_USER", &vlen);
	CHECK(v && vlen == 2 && !memcmp(v, "no", 2));
	v = fs_environ_find(env, n, "EMPTY", &vlen);
	CHECK(v && vlen == 0);
	v = fs_environ_find(env, n, "LAST", &vlen);
	CHECK(v && vlen == 13 && !memcmp(v, "/unterminated", 13));
	CHECK(fs_environ_find(env, n, "X509", &vlen) == NULL);
	CHECK(fs_environ_find(env, n, "NOPE", &vlen) == NULL);
	CHECK(fs_environ_find(env, 0, "PATH", &vlen) == NULL);
}

int main(void)
{
	test_parse();
	test_load();
	test_environ();
	return tap_done();
}
