/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ingest.c - the parsers of watch-folder ingest (daemons/ingest_parse.c:
 * trigger files, extractor output, dataset patterns) and the extractor
 * runner (daemons/ingest.c: a real child process, its exit status, a crash,
 * a hang killed after its timeout).
 */
#include <string.h>
#include <time.h>

#include "ingest.h"
#include "tap.h"

static enum dm_status trig(const char *s, struct ing_trigger *t, struct dm_err *e)
{
	memset(e, 0, sizeof *e);
	return ing_trigger_parse(s, strlen(s), t, e);
}

static const char *lookup(void *ud, const char *key)
{
	const struct ing_meta *m = ud;
	return ing_meta_get(m, key);
}

int main(void)
{
	struct ing_trigger t;
	struct dm_err e;

	/* key=value triggers */
	CHECK(trig("# from the DAQ\nadler32 = 0A0B0C0D\nbytes=1234\nmd5=0123456789ABCDEF0123456789abcdef\n"
		   "run = 42\nobs_id=\"LST1 night\"\n\n", &t, &e) == DM_OK);
	CHECK_STR(t.adler32, "0a0b0c0d");
	CHECK(t.has_bytes && t.bytes == 1234);
	CHECK_STR(t.md5, "0123456789abcdef0123456789abcdef");
	CHECK(t.meta.n == 2);
	CHECK_STR(ing_meta_get(&t.meta, "run"), "42");
	CHECK_STR(ing_meta_get(&t.meta, "obs_id"), "LST1 night");
	ing_trigger_free(&t);
	/* short adler32 is zero padded, CRLF lines */
	CHECK(trig("adler32=abc\r\nsize=0\r\n", &t, &e) == DM_OK);
	CHECK_STR(t.adler32, "00000abc");
	CHECK(t.has_bytes && t.bytes == 0);
	ing_trigger_free(&t);
	/* an empty trigger: no checksums, no metadata */
	CHECK(trig("", &t, &e) == DM_OK && !t.adler32[0] && !t.has_bytes && t.meta.n == 0);
	ing_trigger_free(&t);
	/* refusals name the line */
	CHECK(trig("run=1\nnonsense\n", &t, &e) == DM_EINVAL && strstr(e.msg, "line:2") &&
	      strstr(e.msg, "not a key=value"));
	CHECK(trig("adler32=xyz\n", &t, &e) == DM_EINVAL && strstr(e.msg, "bad adler32"));
	CHECK(trig("adler32=123456789\n", &t, &e) == DM_EINVAL);
	CHECK(trig("md5=abc\n", &t, &e) == DM_EINVAL && strstr(e.msg, "bad md5"));
	CHECK(trig("bytes=-1\n", &t, &e) == DM_EINVAL && strstr(e.msg, "bad bytes"));
	CHECK(trig("bytes=99999999999999999999\n", &t, &e) == DM_EINVAL);
	CHECK(trig("bytes=1\nsize=2\n", &t, &e) == DM_EINVAL && strstr(e.msg, "twice"));
	CHECK(trig("run=1\nrun=2\n", &t, &e) == DM_EINVAL && strstr(e.msg, "twice"));
	CHECK(trig("=1\n", &t, &e) == DM_EINVAL && strstr(e.msg, "empty key"));
	CHECK(trig("bad key=1\n", &t, &e) == DM_EINVAL && !strcmp(e.cls, "InvalidMetadata"));
	CHECK(trig("name=x\n", &t, &e) == DM_EINVAL && strstr(e.msg, "catalog column"));
	CHECK(trig("run=\xff\xfe\n", &t, &e) == DM_EINVAL && strstr(e.msg, "UTF-8"));
	{
		char nul[] = "run=1\0x\n";
		memset(&e, 0, sizeof e);
		CHECK(ing_trigger_parse(nul, sizeof nul - 1, &t, &e) == DM_EINVAL &&
		      strstr(e.msg, "NUL"));
	}
	/* JSON triggers */
	CHECK(trig(" {\"adler32\": \"0a0b0c0d\", \"bytes\": 10, \"meta\": {\"run\": 7, \"ok\": true,"
		   " \"x\": 1.5}, \"site\": \"LaPalma\"}", &t, &e) == DM_OK);
	CHECK_STR(t.adler32, "0a0b0c0d");
	CHECK(t.bytes == 10);
	CHECK_STR(ing_meta_get(&t.meta, "run"), "7");
	CHECK_STR(ing_meta_get(&t.meta, "ok"), "True");
	CHECK_STR(ing_meta_get(&t.meta, "x"), "1.5");
	CHECK_STR(ing_meta_get(&t.meta, "site"), "LaPalma");
	ing_trigger_free(&t);
	CHECK(trig("{\"adler32\": ", &t, &e) == DM_EINVAL && strstr(e.msg, "JSON"));
	CHECK(trig("{\"meta\": [1]}", &t, &e) == DM_EINVAL && strstr(e.msg, "object"));
	CHECK(trig("{\"run\": {\"a\": 1}}", &t, &e) == DM_EINVAL);
	CHECK(trig("{\"run\": 1, \"run\": 2}", &t, &e) == DM_EINVAL);
	CHECK(trig("{\"bytes\": \"ten\"}", &t, &e) == DM_EINVAL && strstr(e.msg, "bad bytes"));
	CHECK(trig("{\"run\": \"a\\u0000b\"}", &t, &e) == DM_EINVAL);

	/* extractor output */
	{
		struct ing_meta m = { 0 };
		const char *out = "OBJECT=Crab\nEXPTIME = 30\n";
		memset(&e, 0, sizeof e);
		CHECK(ing_kv_parse(out, strlen(out), "x", &m, &e) == DM_OK && m.n == 2);
		CHECK_STR(ing_meta_get(&m, "EXPTIME"), "30");
		CHECK(ing_kv_parse("OBJECT=again\n", 13, "x", &m, &e) == DM_EINVAL &&
		      strstr(e.msg, "twice"));
		CHECK(ing_kv_parse("just text\n", 10, "out", &m, &e) == DM_EINVAL &&
		      strstr(e.msg, "out:1"));
		/* patterns */
		{
			struct dm_buf b = DM_BUF_INIT;
			CHECK(ing_pattern_expand("dl0_{OBJECT}_{{x}}", lookup, &m, &b, &e) == DM_OK);
			CHECK_STR(b.s, "dl0_Crab_{x}");
			dm_buf_reset(&b);
			CHECK(ing_pattern_expand("dl0_{run}", lookup, &m, &b, &e) == DM_EINVAL &&
			      strstr(e.msg, "'run'"));
			CHECK(ing_pattern_expand("dl0_{run", lookup, &m, &b, &e) == DM_EINVAL);
			CHECK(ing_pattern_expand("dl0_}", lookup, &m, &b, &e) == DM_EINVAL);
			CHECK(ing_pattern_expand("dl0_{}", lookup, &m, &b, &e) == DM_EINVAL);
			dm_buf_release(&b);
		}
		ing_meta_free(&m);
	}

	/* the extractor runner: a real child process */
	{
		struct ing_meta m = { 0 };
		char *ok[] = { "/bin/sh", "-c", "echo run=5; echo 'telescope = LST1'", NULL };
		char *fails[] = { "/bin/sh", "-c", "echo oops >&2; exit 3", NULL };
		char *crash[] = { "/bin/sh", "-c", "kill -SEGV $$", NULL };
		char *hang[] = { "/bin/sh", "-c", "sleep 100 & sleep 100", NULL };
		char *garbage[] = { "/bin/sh", "-c", "echo not key value", NULL };
		char *missing[] = { "/nonexistent/extractor", NULL };
		struct timespec a, b;

		memset(&e, 0, sizeof e);
		CHECK(ing_run_extractor(ok, 10, &m, &e) == DM_OK && m.n == 2);
		CHECK_STR(ing_meta_get(&m, "telescope"), "LST1");
		ing_meta_free(&m);
		CHECK(ing_run_extractor(fails, 10, &m, &e) == DM_EIO && strstr(e.msg, "exit status 3") &&
		      strstr(e.msg, "oops"));
		CHECK(ing_run_extractor(crash, 10, &m, &e) == DM_EIO && strstr(e.msg, "signal 11"));
		clock_gettime(CLOCK_MONOTONIC, &a);
		CHECK(ing_run_extractor(hang, 1, &m, &e) == DM_ETIMEDOUT && strstr(e.msg, "killed"));
		clock_gettime(CLOCK_MONOTONIC, &b);
		/* killed, not waited for (the sleeps would take 100 s) */
		CHECK(b.tv_sec - a.tv_sec < 60);
		CHECK(ing_run_extractor(garbage, 10, &m, &e) == DM_EINVAL &&
		      strstr(e.msg, "not a key=value"));
		CHECK(ing_run_extractor(missing, 10, &m, &e) == DM_EIO && strstr(e.msg, "127"));
		ing_meta_free(&m);
	}
	return tap_done();
}
