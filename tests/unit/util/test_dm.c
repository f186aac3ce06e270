/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for util/: buffers, parsers, wildcards, checksums, errors. */
#include "dm.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

static void test_buf(void)
{
	struct dm_buf b = DM_BUF_INIT;

	CHECK(b.s[0] == 0 && b.len == 0);
	dm_buf_adds(&b, "scope");
	dm_buf_addc(&b, ':');
	dm_buf_addf(&b, "%s_%03d", "name", 7);
	CHECK_STR(b.s, "scope:name_007");
	CHECK(b.len == strlen("scope:name_007"));
	for (int i = 0; i < 1000; i++)
		dm_buf_adds(&b, "x");
	CHECK(b.len == 14 + 1000 && b.s[b.len] == 0);
	char *s = dm_buf_detach(&b);
	CHECK(b.len == 0 && b.s[0] == 0);
	CHECK(strlen(s) == 1014);
	free(s);

	struct dm_buf capped;
	dm_buf_init(&capped, 8);
	CHECK(dm_buf_adds(&capped, "12345678") == 0);
	CHECK(dm_buf_adds(&capped, "9") != 0);
	CHECK_STR(capped.s, "12345678");
	dm_buf_release(&capped);
}

static void test_parsers(void)
{
	uint64_t u;
	int64_t i;

	CHECK(dm_parse_u64("42", &u) == 0 && u == 42);
	CHECK(dm_parse_u64("-1", &u) != 0);
	CHECK(dm_parse_u64("4x", &u) != 0);
	CHECK(dm_parse_u64("", &u) != 0);
	CHECK(dm_parse_u64("99999999999999999999999", &u) != 0);
	CHECK(dm_parse_i64("-7", &i) == 0 && i == -7);
	CHECK(dm_parse_size("10G", &u) == 0 && u == 10ull << 30);
	CHECK(dm_parse_size("1MiB", &u) == 0 && u == 1ull << 20);
	CHECK(dm_parse_size("512", &u) == 0 && u == 512);
	CHECK(dm_parse_size("3X", &u) != 0);
	CHECK(dm_parse_size("99999999999T", &u) != 0);
}

static void test_wildcard(void)
{
	CHECK(dm_wildcard_match("*", ""));
	CHECK(dm_wildcard_match("run*.raw", "run42.raw"));
	CHECK(!dm_wildcard_match("run*.raw", "run42.reco"));
	CHECK(dm_wildcard_match("a?c", "abc"));
	CHECK(!dm_wildcard_match("a?c", "ac"));
	CHECK(dm_wildcard_match("*a*b*", "xxaxxbxx"));
	CHECK(!dm_wildcard_match("abc", "abcd"));
}

static void test_checksums(void)
{
	char hex[9], md5[33], sha[65];
	uint32_t a;

	/* zlib's classic example value */
	a = dm_adler32_update(DM_ADLER32_INIT, "Wikipedia", 9);
	dm_adler32_hex(a, hex);
	CHECK_STR(hex, "11e60398");
	/* streaming equals one shot */
	a = dm_adler32_update(DM_ADLER32_INIT, "Wiki", 4);
	a = dm_adler32_update(a, "pedia", 5);
	dm_adler32_hex(a, hex);
	CHECK_STR(hex, "11e60398");
	dm_adler32_hex(DM_ADLER32_INIT, hex);
	CHECK_STR(hex, "00000001");
	dm_md5_hex("mock:file1", 10, md5);
	CHECK(strncmp(md5, "3c26", 4) == 0); /* Rucio's hash layout example */
	dm_md5_hex("", 0, md5);
	CHECK_STR(md5, "d41d8cd98f00b204e9800998ecf8427e");
	dm_sha256_hex2("ab", 2, "c", 1, sha);
	CHECK_STR(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK(dm_is_hex("00ffAA", 6));
	CHECK(!dm_is_hex("00fg", 4));
	CHECK(!dm_is_hex("00ff0", 4));
}

/* The SIMD adler32 agrees with zlib's plain one for every length around its
 * vector widths and for long runs of 0xff (the worst case for the deferred
 * modulo), however the bytes are split between calls. */
static void test_adler32_against_zlib(void)
{
	size_t n = (5u << 20) + 77;
	unsigned char *b = dm_xmalloc(n);
	uint32_t seed = 12345;
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (unsigned char)(seed >> 16);
	}
	memset(b + (1u << 20), 0xff, 2u << 20);
	for (size_t len = 0; len < 300; len++)
		bad += dm_adler32_update(DM_ADLER32_INIT, b + 3, len) !=
		       (uint32_t)adler32(1, b + 3, (uInt)len);
	for (size_t split = 0; split < n; split += 999983) {
		uint32_t a = dm_adler32_update(DM_ADLER32_INIT, b, split);

		a = dm_adler32_update(a, b + split, n - split);
		bad += a != (uint32_t)adler32(1, b, (uInt)n);
	}
	CHECK(bad == 0);
	free(b);
}

static void test_file_checksums(void)
{
	char path[] = "/tmp/dm_test_XXXXXX", adler[9], md5[33];
	int fd = mkstemp(path);
	uint64_t bytes = 0;
	struct dm_err err = { 0 };

	CHECK(fd >= 0);
	CHECK(write(fd, "Wikipedia", 9) == 9);
	close(fd);
	CHECK(dm_file_checksums(path, &bytes, adler, md5, &err) == DM_OK);
	CHECK(bytes == 9);
	CHECK_STR(adler, "11e60398");
	unlink(path);
	CHECK(dm_file_checksums(path, &bytes, adler, md5, &err) == DM_ENOENT);
	CHECK(err.code == DM_ENOENT && strstr(err.msg, path) != NULL);
}

static void test_errors(void)
{
	struct dm_err err = { 0 };
	char id[33], id2[33];

	CHECK(dm_seterr(&err, DM_ENOENT, "ScopeNotFound", "Scope '%s' not found", "x") == DM_ENOENT);
	CHECK_STR(err.cls, "ScopeNotFound");
	CHECK_STR(err.msg, "Scope 'x' not found");
	dm_seterr(&err, DM_EEXIST, NULL, "dup");
	CHECK_STR(err.cls, "Duplicate");
	CHECK(dm_seterr(NULL, DM_EIO, NULL, "ignored") == DM_EIO);
	CHECK(dm_status_to_errno(DM_EQUOTA) != 0);
	dm_uuid32(id);
	dm_uuid32(id2);
	CHECK(strlen(id) == 32 && dm_is_hex(id, 32) && strcmp(id, id2) != 0);
	CHECK(id[12] == '4'); /* version 4 */
}

static void test_human_bytes(void)
{
	char h[32];

	CHECK_STR(dm_human_bytes(0, 1, h), "0 B");
	CHECK_STR(dm_human_bytes(1023, 3, h), "1023 B");
	CHECK_STR(dm_human_bytes(1536, 1, h), "1.5 KiB");
	CHECK_STR(dm_human_bytes(5000, 3, h), "4.883 KiB");
	CHECK_STR(dm_human_bytes(3ull << 30, 1, h), "3.0 GiB");
	CHECK_STR(dm_human_bytes(UINT64_MAX, 1, h), "16.0 EiB");
}

static void test_mkdir_p(void)
{
	char base[] = "/tmp/dm-mkdir-XXXXXX", p[256], f[256];
	struct stat sb;
	FILE *fp;

	CHECK(mkdtemp(base) != NULL);
	snprintf(p, sizeof p, "%s/a/b/c", base);
	CHECK(dm_mkdir_p(p, 0755) == 0 && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode));
	CHECK(dm_mkdir_p(p, 0755) == 0); /* already there */
	snprintf(f, sizeof f, "%s/x/y/file", base);
	CHECK(dm_mkdir_parent(f, 0700) == 0);
	snprintf(p, sizeof p, "%s/x/y", base);
	CHECK(stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700);
	CHECK(stat(f, &sb) != 0); /* only its directory */
	CHECK(dm_mkdir_parent("name-only", 0755) == 0);
	/* a part that is a file: ENOTDIR, not success */
	fp = fopen(f, "w");
	CHECK(fp != NULL);
	if (fp)
		fclose(fp);
	snprintf(p, sizeof p, "%s/x/y/file/z", base);
	CHECK(dm_mkdir_p(p, 0755) == ENOTDIR);
	CHECK(dm_mkdir_p(f, 0755) == ENOTDIR);
	snprintf(p, sizeof p, "rm -rf '%s'", base);
	CHECK(system(p) == 0);
}

int main(void)
{
	test_human_bytes();
	test_mkdir_p();
	test_buf();
	test_parsers();
	test_wildcard();
	test_checksums();
	test_adler32_against_zlib();
	test_file_checksums();
	test_errors();
	return tap_done();
}
