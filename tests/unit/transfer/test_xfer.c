/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_xfer.c - unit tests for transfer/ that need no network: URL parsing,
 * scheme selection and third-party-copy pairing, the context defaults, the
 * file:// back-end end to end (put, stat, get with adler32/md5 computed on
 * the fly against known values, ranged reads, checksums, rename, delete,
 * mkdir, local copy), xfer_run_jobs with a failing job among many, and the
 * error cases: unknown scheme, malformed URLs, missing files, permission
 * denied, a download onto its own source.  Storage servers are exercised by
 * tests/integration/test_transfer*.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "xfer.h"

static char tmpdir[256];

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (!f) {
		perror(path);
		exit(2);
	}
	if (n && fwrite(data, 1, n, f) != n)
		exit(2);
	fclose(f);
}

static char *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long sz;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)sz + 1);
	if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	*n = (size_t)sz;
	return buf;
}

static void path_of(char *out, size_t n, const char *rel)
{
	snprintf(out, n, "%s/%s", tmpdir, rel);
}

static void url_of(char *out, size_t n, const char *rel)
{
	snprintf(out, n, "file://%s/%s", tmpdir, rel);
}

static void test_url_parse(void)
{
	struct xfer_url u;
	struct dm_err e;
	char big[6000];

	CHECK(xfer_url_parse("root://xrd1.example.org:1094//rucio/mock/3c/26/file1", &u, &e) ==
	      DM_OK);
	CHECK_STR(u.scheme, "root");
	CHECK_STR(u.host, "xrd1.example.org");
	CHECK(u.port == 1094);
	CHECK_STR(u.path, "//rucio/mock/3c/26/file1");
	CHECK_STR(u.query, "");

	CHECK(xfer_url_parse("HTTPS://user@[::1]:8443/a/b?authz=x&y=1#frag", &u, &e) == DM_OK);
	CHECK_STR(u.scheme, "https");
	CHECK_STR(u.host, "::1");
	CHECK(u.port == 8443);
	CHECK_STR(u.path, "/a/b");
	CHECK_STR(u.query, "authz=x&y=1");

	CHECK(xfer_url_parse("file:///tmp/x y", &u, &e) == DM_OK);
	CHECK_STR(u.scheme, "file");
	CHECK_STR(u.host, "");
	CHECK(u.port == 0);
	CHECK_STR(u.path, "/tmp/x y");

	CHECK(xfer_url_parse("file://localhost/tmp/rucio_rse/mock/3c/26/file1", &u, &e) == DM_OK);
	CHECK_STR(u.host, "localhost");
	CHECK_STR(u.path, "/tmp/rucio_rse/mock/3c/26/file1");

	CHECK(xfer_url_parse("davs://storage:443", &u, &e) == DM_OK);
	CHECK_STR(u.host, "storage");
	CHECK(u.port == 443);
	CHECK_STR(u.path, "");

	/* malformed */
	CHECK(xfer_url_parse("nourl", &u, &e) == DM_EINVAL);
	CHECK(strstr(e.msg, "nourl") != NULL);
	CHECK(xfer_url_parse("", &u, &e) == DM_EINVAL);
	CHECK(xfer_url_parse("://host/x", &u, &e) == DM_EINVAL);
	CHECK(xfer_url_parse("1root://host/x", &u, &e) == DM_EINVAL);
	CHECK(xfer_url_parse("root://host:99999//x", &u, &e) == DM_EINVAL);
	CHECK(strstr(e.msg, "port") != NULL);
	CHECK(xfer_url_parse("root://host:12ab//x", &u, &e) == DM_EINVAL);
	CHECK(xfer_url_parse("root://host:0//x", &u, &e) == DM_EINVAL);
	CHECK(xfer_url_parse("https://[::1:8443/x", &u, &e) == DM_EINVAL);
	CHECK(xfer_url_parse("https://[::1]x/y", &u, &e) == DM_EINVAL);
	memset(big, 'a', sizeof(big));
	memcpy(big, "file:///", 8);
	big[sizeof(big) - 1] = 0;
	CHECK(xfer_url_parse(big, &u, &e) == DM_EINVAL);
	CHECK(strstr(e.msg, "too long") != NULL);
}

static void test_schemes(void)
{
	char s[16];

	CHECK(xfer_url_scheme("root://h//x", s, sizeof(s)) == 0);
	CHECK_STR(s, "root");
	CHECK(xfer_url_scheme("DAVS://h/x", s, sizeof(s)) == 0);
	CHECK_STR(s, "davs");
	CHECK(xfer_url_scheme("srm+https://h/x", s, sizeof(s)) == 0);
	CHECK_STR(s, "srm+https");
	CHECK(xfer_url_scheme("/local/path", s, sizeof(s)) != 0);
	CHECK(xfer_url_scheme("averyveryverylongscheme://h", s, sizeof(s)) != 0);
	CHECK(xfer_url_scheme("root://h", s, 3) != 0);

	CHECK(xfer_scheme_supported("file"));
	CHECK(xfer_scheme_supported("root"));
	CHECK(xfer_scheme_supported("xroot"));
	CHECK(xfer_scheme_supported("roots"));
	CHECK(xfer_scheme_supported("https"));
	CHECK(xfer_scheme_supported("HTTPS"));
	CHECK(xfer_scheme_supported("davs"));
	CHECK(xfer_scheme_supported("dav"));
	CHECK(xfer_scheme_supported("http"));
	CHECK(!xfer_scheme_supported("s3"));
	CHECK(!xfer_scheme_supported("gsiftp"));
	CHECK(!xfer_scheme_supported("srm"));
	CHECK(!xfer_scheme_supported(""));
	CHECK(!xfer_scheme_supported(NULL));
	CHECK_STR(xfer_scheme_backend("davs"), "http");
	CHECK_STR(xfer_scheme_backend("xroots"), "root");
	CHECK_STR(xfer_scheme_backend("file"), "file");
	CHECK(xfer_scheme_backend("magnet") == NULL);

	CHECK(xfer_tpc_possible("root", "root"));
	CHECK(xfer_tpc_possible("root", "xroot"));
	CHECK(xfer_tpc_possible("https", "davs"));
	CHECK(xfer_tpc_possible("davs", "davs"));
	CHECK(xfer_tpc_possible("file", "file"));
	CHECK(!xfer_tpc_possible("root", "https"));
	CHECK(!xfer_tpc_possible("davs", "root"));
	CHECK(!xfer_tpc_possible("file", "root"));
	CHECK(!xfer_tpc_possible("s3", "s3"));
}

static void test_errors_without_io(struct xfer_ctx *ctx)
{
	struct dm_err e;
	struct xfer_stat st;
	char buf[16];
	size_t got = 99;

	CHECK(xfer_stat(ctx, "gsiftp://host/x", &st, &e) == DM_ENOTSUP);
	CHECK_STR(e.cls, "RSEProtocolNotSupported");
	CHECK(strstr(e.msg, "gsiftp://host/x") != NULL);
	CHECK(strstr(e.msg, "'gsiftp'") != NULL);
	CHECK(xfer_pread(ctx, "s3://b/k", buf, sizeof(buf), 0, &got, &e) == DM_ENOTSUP);
	CHECK(got == 0);
	CHECK(xfer_delete(ctx, "magnet://x", &e) == DM_ENOTSUP);
	CHECK(xfer_stat(ctx, "not a url", &st, &e) == DM_EINVAL);
	CHECK_STR(e.cls, "InputValidationError");
	/* third-party copy between schemes that cannot do it: no I/O happens */
	CHECK(xfer_tpc(ctx, "root://127.0.0.1:1//a", "https://127.0.0.1:1/b", &e) == DM_ENOTSUP);
	CHECK_STR(e.cls, "RSEProtocolNotSupported");
	CHECK(strstr(e.msg, "root://127.0.0.1:1//a") != NULL);
	CHECK(xfer_tpc(ctx, "file:///a", "root://127.0.0.1:1//b", &e) == DM_ENOTSUP);
	/* rename across endpoints is refused before any I/O */
	CHECK(xfer_rename(ctx, "root://a:1094//x", "root://b:1094//y", &e) == DM_EINVAL);
	CHECK(strstr(e.msg, "same storage endpoint") != NULL);
	CHECK(xfer_rename(ctx, "file:///a", "root://b:1094//y", &e) == DM_EINVAL);
	CHECK(xfer_checksum(ctx, "file:///etc/hostname", "sha1", buf, sizeof(buf), &e) ==
	      DM_ENOTSUP);
	CHECK_STR(e.cls, "RSEChecksumUnavailable");
	/* a relative file URL */
	CHECK(xfer_stat(ctx, "file://host", &st, &e) == DM_EINVAL);
}

static const char fox[] = "The quick brown fox jumps over the lazy dog";

static void test_file_backend(struct xfer_ctx *ctx)
{
	char src[512], url[512], url2[512], dst[512], cks[65];
	struct xfer_stat st;
	struct xfer_result res;
	struct dm_err e;
	char buf[64];
	size_t got, n;
	char *data;

	path_of(src, sizeof(src), "fox.txt");
	write_file(src, fox, strlen(fox));

	/* put creates parents */
	url_of(url, sizeof(url), "rse/scope/ab/cd/fox.txt");
	CHECK(xfer_put(ctx, src, url, &e) == DM_OK);
	CHECK(xfer_stat(ctx, url, &st, &e) == DM_OK);
	CHECK(st.size == strlen(fox));
	CHECK(st.is_dir == 0);
	url_of(url2, sizeof(url2), "rse/scope/ab");
	CHECK(xfer_stat(ctx, url2, &st, &e) == DM_OK);
	CHECK(st.is_dir == 1);

	/* file://localhost/... names the same file */
	snprintf(url2, sizeof(url2), "file://localhost%s/rse/scope/ab/cd/fox.txt", tmpdir);
	CHECK(xfer_stat(ctx, url2, &st, &e) == DM_OK);
	CHECK(st.size == strlen(fox));

	/* get computes known adler32 and md5 on the fly */
	path_of(dst, sizeof(dst), "fox.out");
	CHECK(xfer_get(ctx, url, dst, &res, &e) == DM_OK);
	CHECK(res.bytes == strlen(fox));
	CHECK_STR(res.adler32, "5bdc0fda");
	CHECK_STR(res.md5, "9e107d9d372bb6826bd81d3542a419d6");
	data = read_all(dst, &n);
	CHECK(data && n == strlen(fox) && memcmp(data, fox, n) == 0);
	free(data);

	/* server-side (here: local) checksums */
	CHECK(xfer_checksum(ctx, url, "adler32", cks, sizeof(cks), &e) == DM_OK);
	CHECK_STR(cks, "5bdc0fda");
	CHECK(xfer_checksum(ctx, url, NULL, cks, sizeof(cks), &e) == DM_OK);
	CHECK_STR(cks, "5bdc0fda");
	CHECK(xfer_checksum(ctx, url, "MD5", cks, sizeof(cks), &e) == DM_OK);
	CHECK_STR(cks, "9e107d9d372bb6826bd81d3542a419d6");
	CHECK(xfer_checksum(ctx, url, "md5", cks, 10, &e) == DM_EINVAL);

	/* ranged reads */
	CHECK(xfer_pread(ctx, url, buf, 5, 4, &got, &e) == DM_OK);
	CHECK(got == 5 && memcmp(buf, "quick", 5) == 0);
	CHECK(xfer_pread(ctx, url, buf, sizeof(buf), 40, &got, &e) == DM_OK);
	CHECK(got == 3 && memcmp(buf, "dog", 3) == 0);
	CHECK(xfer_pread(ctx, url, buf, sizeof(buf), 1000, &got, &e) == DM_OK);
	CHECK(got == 0);
	CHECK(xfer_pread(ctx, url, buf, 0, 0, &got, &e) == DM_OK);
	CHECK(got == 0);

	/* rename into a new directory, then the old name is gone */
	url_of(url2, sizeof(url2), "rse/other/dir/fox2.txt");
	CHECK(xfer_rename(ctx, url, url2, &e) == DM_OK);
	CHECK(xfer_stat(ctx, url, &st, &e) == DM_ENOENT);
	CHECK_STR(e.cls, "SourceNotFound");
	CHECK(xfer_stat(ctx, url2, &st, &e) == DM_OK);
	CHECK(xfer_rename(ctx, url, url2, &e) == DM_ENOENT);
	CHECK(strstr(e.msg, url) != NULL);

	/* local "third-party" copy */
	CHECK(xfer_tpc(ctx, url2, url, &e) == DM_OK);
	CHECK(xfer_checksum(ctx, url, "adler32", cks, sizeof(cks), &e) == DM_OK);
	CHECK_STR(cks, "5bdc0fda");
	CHECK(xfer_tpc(ctx, url, url, &e) == DM_EINVAL);

	/* delete, twice */
	CHECK(xfer_delete(ctx, url2, &e) == DM_OK);
	CHECK(xfer_delete(ctx, url2, &e) == DM_ENOENT);
	CHECK_STR(e.cls, "SourceNotFound");
	CHECK(strstr(e.msg, url2) != NULL);

	/* mkdir -p, twice */
	url_of(url2, sizeof(url2), "rse/made/a/b/c");
	CHECK(xfer_mkdir_p(ctx, url2, &e) == DM_OK);
	CHECK(xfer_mkdir_p(ctx, url2, &e) == DM_OK);
	CHECK(xfer_stat(ctx, url2, &st, &e) == DM_OK && st.is_dir);

	/* a download onto its own source is refused, the source intact */
	path_of(dst, sizeof(dst), "rse/scope/ab/cd/fox.txt");
	CHECK(xfer_get(ctx, url, dst, &res, &e) == DM_EINVAL);
	CHECK(xfer_stat(ctx, url, &st, &e) == DM_OK && st.size == strlen(fox));
	CHECK(xfer_put(ctx, dst, url, &e) == DM_EINVAL);

	/* a directory is not a file */
	url_of(url2, sizeof(url2), "rse/made");
	path_of(dst, sizeof(dst), "dir.out");
	CHECK(xfer_get(ctx, url2, dst, &res, &e) == DM_EINVAL);
	CHECK(access(dst, F_OK) != 0);
	CHECK(xfer_pread(ctx, url2, buf, 4, 0, &got, &e) == DM_EINVAL);

	/* an empty file */
	path_of(src, sizeof(src), "empty");
	write_file(src, "", 0);
	url_of(url2, sizeof(url2), "rse/empty");
	CHECK(xfer_put(ctx, src, url2, &e) == DM_OK);
	path_of(dst, sizeof(dst), "empty.out");
	CHECK(xfer_get(ctx, url2, dst, &res, &e) == DM_OK);
	CHECK(res.bytes == 0);
	CHECK_STR(res.adler32, "00000001");
	CHECK_STR(res.md5, "d41d8cd98f00b204e9800998ecf8427e");
}

static void test_missing_and_denied(struct xfer_ctx *ctx)
{
	char url[512], dst[512], src[512];
	struct xfer_result res;
	struct xfer_stat st;
	struct dm_err e;
	char buf[8];
	size_t got;

	url_of(url, sizeof(url), "rse/does/not/exist");
	path_of(dst, sizeof(dst), "missing.out");
	CHECK(xfer_get(ctx, url, dst, &res, &e) == DM_ENOENT);
	CHECK_STR(e.cls, "SourceNotFound");
	CHECK(strstr(e.msg, url) != NULL);
	CHECK(strstr(e.msg, "No such file") != NULL);
	CHECK(access(dst, F_OK) != 0); /* no partial file left */
	CHECK(xfer_pread(ctx, url, buf, sizeof(buf), 0, &got, &e) == DM_ENOENT);
	CHECK(xfer_checksum(ctx, url, "adler32", buf, 9, &e) == DM_ENOENT);
	CHECK(xfer_stat(ctx, url, &st, &e) == DM_ENOENT);

	/* local source missing for an upload */
	path_of(src, sizeof(src), "no-such-local-file");
	url_of(url, sizeof(url), "rse/x");
	CHECK(xfer_put(ctx, src, url, &e) == DM_ENOENT);
	CHECK(strstr(e.msg, src) != NULL);

	/* the download target's directory is missing */
	url_of(url, sizeof(url), "fox.txt");
	path_of(dst, sizeof(dst), "no/such/dir/out");
	CHECK(xfer_get(ctx, url, dst, &res, &e) == DM_ENOENT);
	CHECK_STR(e.cls, "DestinationNotAccessible");

	/* permission denied: root may write anywhere but not create files in
	 * /sys; anyone else is stopped by a read-only directory */
	path_of(src, sizeof(src), "fox.txt");
	if (geteuid() == 0) {
		CHECK(xfer_put(ctx, src, "file:///sys/didfs-test-denied", &e) == DM_EPERM);
	} else {
		char ro[512];

		path_of(ro, sizeof(ro), "readonly");
		mkdir(ro, 0555);
		chmod(ro, 0555);
		url_of(url, sizeof(url), "readonly/f");
		CHECK(xfer_put(ctx, src, url, &e) == DM_EPERM);
		chmod(ro, 0755);
	}
	CHECK_STR(e.cls, "RSEAccessDenied");
	CHECK(strstr(e.msg, "Permission denied") != NULL);
}

static void test_big_file_and_jobs(struct xfer_ctx *ctx)
{
	enum { N = 24, BIG = 3 * 1024 * 1024 + 17 };
	char src[512], big_url[512];
	char urls[N][512], dsts[N][512];
	struct xfer_job jobs[N + 1];
	struct xfer_result res;
	struct dm_err e;
	unsigned char *data = malloc(BIG);
	uint64_t bytes;
	char adler[9], md5[33];
	uint32_t x = 12345;

	for (size_t i = 0; i < BIG; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)(x >> 16);
	}
	path_of(src, sizeof(src), "big.bin");
	write_file(src, data, BIG);
	CHECK(dm_file_checksums(src, &bytes, adler, md5, &e) == DM_OK);
	url_of(big_url, sizeof(big_url), "rse/big.bin");
	CHECK(xfer_put(ctx, src, big_url, &e) == DM_OK);
	{
		char dst[512];

		path_of(dst, sizeof(dst), "big.out");
		CHECK(xfer_get(ctx, big_url, dst, &res, &e) == DM_OK);
		CHECK(res.bytes == BIG);
		CHECK_STR(res.adler32, adler);
		CHECK_STR(res.md5, md5);
	}

	/* many jobs, one of them failing */
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < N; i++) {
		char rel[64];

		snprintf(rel, sizeof(rel), "rse/many/f%02d", i);
		url_of(urls[i], sizeof(urls[i]), rel);
		snprintf(rel, sizeof(rel), "many.%02d", i);
		path_of(dsts[i], sizeof(dsts[i]), rel);
		write_file(dsts[i], data + i * 1000, 1000 + (size_t)i);
		jobs[i].kind = XFER_JOB_PUT;
		jobs[i].src = dsts[i];
		jobs[i].dst = urls[i];
	}
	xfer_run_jobs(ctx, jobs, N, 5);
	for (int i = 0; i < N; i++)
		CHECK(jobs[i].status == DM_OK);
	for (int i = 0; i < N; i++) {
		unlink(dsts[i]);
		jobs[i].kind = XFER_JOB_GET;
		jobs[i].src = urls[i];
		jobs[i].dst = dsts[i];
	}
	jobs[N].kind = XFER_JOB_GET;
	jobs[N].src = "file:///nonexistent/didfs/x";
	jobs[N].dst = dsts[0];
	/* the failing one races with job 0 for the same local path: give it
	 * its own */
	{
		static char lone[512];

		path_of(lone, sizeof(lone), "lone.out");
		jobs[N].dst = lone;
	}
	xfer_run_jobs(ctx, jobs, N + 1, 0);
	for (int i = 0; i < N; i++) {
		char a[9];
		uint32_t ad = dm_adler32_update(DM_ADLER32_INIT, data + i * 1000, 1000 + (size_t)i);

		dm_adler32_hex(ad, a);
		CHECK(jobs[i].status == DM_OK);
		CHECK(jobs[i].res.bytes == 1000u + (unsigned)i);
		CHECK_STR(jobs[i].res.adler32, a);
	}
	CHECK(jobs[N].status == DM_ENOENT);
	CHECK_STR(jobs[N].err.cls, "SourceNotFound");
	/* delete jobs */
	for (int i = 0; i < N; i++) {
		jobs[i].kind = XFER_JOB_DELETE;
		jobs[i].src = urls[i];
	}
	xfer_run_jobs(ctx, jobs, N, 3);
	for (int i = 0; i < N; i++)
		CHECK(jobs[i].status == DM_OK);
	xfer_run_jobs(ctx, jobs, 0, 3); /* nothing to do */
	free(data);
}

static void test_no_md5(void)
{
	struct xfer_config cfg = { .no_md5 = 1 };
	struct xfer_ctx *ctx;
	struct xfer_result res;
	struct dm_err e;
	char url[512], dst[512];

	CHECK(xfer_ctx_new(&cfg, &ctx, &e) == DM_OK);
	url_of(url, sizeof(url), "fox.txt");
	path_of(dst, sizeof(dst), "fox.nomd5");
	CHECK(xfer_get(ctx, url, dst, &res, &e) == DM_OK);
	CHECK_STR(res.adler32, "5bdc0fda");
	CHECK_STR(res.md5, "");
	xfer_ctx_free(ctx);
}

int main(void)
{
	struct xfer_ctx *ctx = NULL;
	struct dm_err e;
	char cmd[300];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/didfs-test-xfer-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	test_url_parse();
	test_schemes();
	CHECK(xfer_ctx_new(NULL, &ctx, &e) == DM_OK);
	test_errors_without_io(ctx);
	test_file_backend(ctx);
	test_missing_and_denied(ctx);
	test_big_file_and_jobs(ctx);
	xfer_ctx_free(ctx);
	test_no_md5();
	xfer_ctx_free(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return tap_done();
}
