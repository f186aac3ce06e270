/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for daemons/ without network storage: the configuration parser
 * (keys, sections, refusals that leave the configuration unchanged), daemon
 * names, and one --once pass of the conveyor and the reaper over file://
 * RSEs on a real SQLite catalog (copies verified, a corrupted source
 * declared BAD and another source used, no temporary file left, purged
 * replicas deleted from storage).
 */
#include "runtime.h"
#include "catalog.h"
#include "engine.h"
#include "daemon_i.h"
#include "tap.h"

#include <sys/wait.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_defaults_and_names(void)
{
	struct dmn_config c;
	enum dmn_kind k;
	enum dm_log_level l;

	dmn_config_defaults(&c);
	for (int i = 0; i < DMN_COUNT; i++) {
		CHECK(c.sleep[i] > 0);
		CHECK(c.chunk[i] > 0);
		CHECK(dmn_kind_parse(dmn_kind_name((enum dmn_kind)i), &k) == 0 && k == (enum dmn_kind)i);
	}
	CHECK(c.max_retries >= 1 && c.parallel >= 1 && c.heartbeat_timeout > c.heartbeat_interval);
	CHECK(c.request_max_age > c.tpc_timeout);
	CHECK(dmn_kind_parse("conveyor", &k) == 0 && k == DMN_CONVEYOR);
	CHECK(dmn_kind_parse("judge", &k) == -1);
	CHECK(dmn_kind_parse("", &k) == -1);
	CHECK(dmn_kind_name(DMN_COUNT) == NULL);
	CHECK(dmn_log_level_parse("WARNING", &l) == 0 && l == DM_LOG_WARN);
	CHECK(dmn_log_level_parse("debug", &l) == 0 && l == DM_LOG_DEBUG);
	CHECK(dmn_log_level_parse("loud", &l) == -1);
}

static void test_parse(void)
{
	struct dmn_config c;
	struct dm_err e = { 0 };
	const char *text =
		"# a comment\n"
		"sleep = 7\n"
		"log_level = debug   # trailing comment\n"
		"\n"
		"conveyor.sleep=1\n"
		"[conveyor]\n"
		"  parallel = 16\n"
		"max_retries = 5\n"
		"tpc = false\n"
		"max_checksums = 2\n"
		"retry_delay = 0\n"
		"tmp_dir = \"/var/tmp/with # hash\"\n"
		"[transfer]\n"
		"timeout = 120\n"
		"chunk_bytes = 4M\n"
		"insecure = yes\n"
		"[reaper]\n"
		"greedy = true\n"
		"chunk_size = 50\n"
		"[judge-repairer]\n"
		"min_age = 0\n"
		"[daemon]\n"
		"undertaker.sleep = 3600\n";

	dmn_config_defaults(&c);
	CHECK(dmn_config_parse(&c, text, "t.conf", &e) == DM_OK);
	CHECK(c.sleep[DMN_REAPER] == 7 && c.sleep[DMN_JUDGE_CLEANER] == 7);
	CHECK(c.sleep[DMN_CONVEYOR] == 1);
	CHECK(c.sleep[DMN_UNDERTAKER] == 3600);
	CHECK(c.log_level == DM_LOG_DEBUG);
	CHECK(c.parallel == 16 && c.max_retries == 5 && c.tpc == 0 && c.max_checksums == 2);
	CHECK(c.retry_delay == 0);
	CHECK_STR(c.tmp_dir, "/var/tmp/with # hash");
	CHECK(c.timeout == 120 && c.chunk_bytes == 4u << 20 && c.insecure == 1);
	CHECK(c.greedy == 1 && c.chunk[DMN_REAPER] == 50 && c.chunk[DMN_CONVEYOR] == 100);
	CHECK(c.repair_min_age == 0);

	/* one setter at a time */
	CHECK(dmn_config_set(&c, "chunk_size", "10", &e) == DM_OK);
	CHECK(c.chunk[DMN_REAPER] == 10 && c.chunk[DMN_ABACUS] == 10);
	CHECK(dmn_config_set(&c, "judge-evaluator.chunk_size", "500", &e) == DM_OK);
	CHECK(c.chunk[DMN_JUDGE_EVALUATOR] == 500);
	CHECK(dmn_config_set(&c, "transfer.ca_path", "/etc/grid-security/certificates", &e) == DM_OK);
	CHECK_STR(c.ca_path, "/etc/grid-security/certificates");
}

static void refused(const char *text, const char *needle)
{
	struct dmn_config c, before;
	struct dm_err e = { 0 };

	dmn_config_defaults(&c);
	CHECK(dmn_config_set(&c, "conveyor.parallel", "3", &e) == DM_OK);
	before = c;
	CHECK(dmn_config_parse(&c, text, "bad.conf", &e) == DM_EINVAL);
	CHECK_STR(e.cls, "InputValidationError");
	if (!strstr(e.msg, needle)) {
		fprintf(stderr, "FAIL: '%s' not in '%s'\n", needle, e.msg);
		tap_fail++;
	} else {
		tap_pass++;
	}
	/* nothing applied, not even the lines before the bad one */
	CHECK(memcmp(&c, &before, sizeof c) == 0);
}

static void test_refusals(void)
{
	struct dmn_config c;
	struct dm_err e = { 0 };

	refused("sleep = 5\nbogus = 1\n", "bad.conf:2: unknown setting 'bogus'");
	refused("conveyor.parallel = 0\n", "conveyor.parallel takes an integer from 1 to 256");
	refused("conveyor.parallel = 8x\n", "not '8x'");
	refused("sleep = -1\n", "sleep takes");
	refused("conveyor.tpc = maybe\n", "true or false");
	refused("log_level = loud\n", "error, warning, info or debug");
	refused("transfer.chunk_bytes = 1\n", "4K to 256M");
	refused("[conveyor\nsleep = 1\n", "bad.conf:1: bad section header");
	refused("sleep 5\n", "bad.conf:1: expected 'key = value'");
	refused(" = 5\n", "empty key");
	refused("[nosuch]\nsleep = 1\n", "unknown setting 'nosuch.sleep'");
	refused("judge.sleep = 1\n", "unknown setting 'judge.sleep'");

	dmn_config_defaults(&c);
	CHECK(dmn_config_load(&c, "/nonexistent/didfs.conf", &e) == DM_ENOENT);
	CHECK(strstr(e.msg, "/nonexistent/didfs.conf") != NULL);
}

/* ---- a --once pass over file:// RSEs ---- */

static char dir[256], catpath[300];

static int write_file(const char *path, const char *data, size_t n)
{
	char tmp[1100];
	FILE *f;

	/* parents */
	dm_strlcpy(tmp, path, sizeof tmp);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(tmp, 0755);
			*p = '/';
		}
	}
	f = fopen(path, "wb");
	if (!f)
		return -1;
	fwrite(data, 1, n, f);
	return fclose(f);
}

static int read_file(const char *path, char *buf, size_t cap, size_t *n)
{
	FILE *f = fopen(path, "rb");

	if (!f)
		return -1;
	*n = fread(buf, 1, cap, f);
	fclose(f);
	return 0;
}

/* Local path of scope:name on an RSE (file:// PFN). */
static void local_path(struct cat_db *db, const char *rse, const char *name, char *out, size_t n)
{
	struct dm_buf b = DM_BUF_INIT;

	CHECK(cat_lfn2pfn(db, rse, "mock", name, "file", CAT_OP_WRITE, &b) == DM_OK);
	CHECK(strncmp(b.s, "file://localhost/", 17) == 0);
	dm_strlcpy(out, b.s + 16, n);
	dm_buf_release(&b);
}

static void content(char *buf, size_t n, int seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)((i * 7 + (size_t)seed * 13) & 0xff);
}

static int rule_state_cb(void *ud, const struct cat_rule *r)
{
	*(int *)ud = (int)r->state;
	return 0;
}

static int rule_state(struct cat_db *db, const char *id)
{
	int state = -1;

	CHECK(cat_rule_get(db, id, rule_state_cb, &state) == DM_OK);
	return state;
}

static int replica_state_cb(void *ud, const struct cat_replica *r)
{
	*(int *)ud = (int)r->state;
	return 0;
}

/* -1 when there is no such replica */
static int replica_state(struct cat_db *db, const char *rse, const char *name)
{
	int state = -1;

	CHECK(cat_replica_list(db, "mock", name, rse, ~0u, replica_state_cb, &state) == DM_OK);
	return state;
}

static int count_uploads(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char sub[1200];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
		if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			n += count_uploads(sub);
		else if (strstr(de->d_name, ".rucio.upload"))
			n++;
	}
	closedir(d);
	return n;
}

static int run_once(unsigned daemons, const char *conf)
{
	struct dmn_options o = { 0 };
	struct dm_err e = { 0 };
	char confpath[400];
	int rc;

	o.catalog_path = catpath;
	o.daemons = daemons;
	o.once = 1;
	o.threads = 1;
	if (conf) {
		snprintf(confpath, sizeof confpath, "%s/d.conf", dir);
		write_file(confpath, conf, strlen(conf));
		o.config_path = confpath;
	}
	rc = dmn_run(&o, &e);
	if (rc)
		fprintf(stderr, "dmn_run: %s: %s\n", e.cls, e.msg);
	return rc;
}

static void test_once_over_file_rses(void)
{
	struct cat_db *db = NULL;
	struct dm_err e = { 0 };
	struct cat_rule_opts ro;
	char rule[33], rule2[33], p[1100], buf[70000], data[65536];
	size_t n;
	const char *rses[] = { "SITEA", "SITEB", "SITEC" };
	char tmpl[] = "/tmp/didfs-test-daemons-XXXXXX";

	if (!mkdtemp(tmpl)) {
		CHECK(0);
		return;
	}
	dm_strlcpy(dir, tmpl, sizeof dir);
	snprintf(catpath, sizeof catpath, "%s/cat.db", dir);
	CHECK(cat_open(catpath, CAT_OPEN_CREATE, &db, &e) == DM_OK);
	if (!db)
		return;
	CHECK(cat_bootstrap(db, "ddmlab", "secret") == DM_OK);
	CHECK(cat_scope_add(db, "mock", "root") == DM_OK);
	for (int i = 0; i < 3; i++) {
		struct cat_protocol pr;

		CHECK(cat_rse_add(db, rses[i], NULL) == DM_OK);
		CHECK(cat_rse_attr_set(db, rses[i], "tier", i == 0 ? "2" : "1") == DM_OK);
		memset(&pr, 0, sizeof pr);
		cat_protocol_defaults(&pr);
		pr.scheme = "file";
		pr.hostname = "localhost";
		snprintf(p, sizeof p, "%s/%s", dir, rses[i]);
		pr.prefix = p;
		pr.impl = "rucio.rse.protocols.posix.Default";
		CHECK(cat_protocol_add(db, rses[i], &pr) == DM_OK);
	}
	CHECK(cat_did_add(db, "mock", "ds", CAT_DID_DATASET, 0) == DM_OK);
	/* five files on SITEA */
	for (int i = 0; i < 5; i++) {
		char name[16], adler[9];
		struct cat_file_in f = { 0 };
		size_t len = 1000 + (size_t)i * 5000;

		snprintf(name, sizeof name, "f%d", i);
		content(data, len, i);
		dm_adler32_hex(dm_adler32_update(DM_ADLER32_INIT, data, len), adler);
		local_path(db, "SITEA", name, p, sizeof p);
		CHECK(write_file(p, data, len) == 0);
		f.scope = "mock";
		f.name = name;
		f.bytes = len;
		f.adler32 = adler;
		f.state = -1;
		CHECK(cat_replicas_add(db, "SITEA", &f, 1, "mock", "ds", 0) == DM_OK);
	}
	cat_rule_opts_init(&ro);
	ro.copies = 2;
	ro.rse_expression = "tier=1";
	CHECK(cat_rule_add(db, "mock", "ds", &ro, rule) == DM_OK);
	CHECK(rule_state(db, rule) == CAT_RULE_REPLICATING);

	CHECK(run_once(1u << DMN_CONVEYOR, "[conveyor]\nparallel = 3\n") == 0);
	CHECK(rule_state(db, rule) == CAT_RULE_OK);
	for (int i = 0; i < 5; i++) {
		char name[16];
		size_t len = 1000 + (size_t)i * 5000;

		snprintf(name, sizeof name, "f%d", i);
		content(data, len, i);
		for (int r = 1; r < 3; r++) {
			local_path(db, rses[r], name, p, sizeof p);
			CHECK(read_file(p, buf, sizeof buf, &n) == 0 && n == len &&
			      memcmp(buf, data, len) == 0);
			CHECK(replica_state(db, rses[r], name) == CAT_REPLICA_AVAILABLE);
		}
	}

	/* g1, g2: corrupted on SITEA (the first source by name), sound on
	 * SITEB; g1 streamed (caught reading the source), g2 by third-party
	 * copy (caught at the destination, blamed on the source after asking
	 * it for its checksum) */
	for (int k = 1; k <= 2; k++) {
		char adler[9], name[16];
		struct cat_file_in f = { 0 };
		size_t len = 3000;

		snprintf(name, sizeof name, "g%d", k);
		content(data, len, 40 + k);
		dm_adler32_hex(dm_adler32_update(DM_ADLER32_INIT, data, len), adler);
		f.scope = "mock";
		f.name = name;
		f.bytes = len;
		f.adler32 = adler;
		f.state = -1;
		CHECK(cat_replicas_add(db, "SITEA", &f, 1, NULL, NULL, 0) == DM_OK);
		CHECK(cat_replicas_add(db, "SITEB", &f, 1, NULL, NULL, 0) == DM_OK);
		local_path(db, "SITEB", name, p, sizeof p);
		CHECK(write_file(p, data, len) == 0);
		data[100] ^= 0x55; /* same size, other bytes */
		local_path(db, "SITEA", name, p, sizeof p);
		CHECK(write_file(p, data, len) == 0);
		cat_rule_opts_init(&ro);
		ro.copies = 1;
		ro.rse_expression = "SITEC";
		CHECK(cat_rule_add(db, "mock", name, &ro, rule2) == DM_OK);
		CHECK(run_once(1u << DMN_CONVEYOR, k == 1 ? "conveyor.tpc = false\n" : NULL) == 0);
		CHECK(rule_state(db, rule2) == CAT_RULE_OK);
		CHECK(replica_state(db, "SITEA", name) == CAT_REPLICA_BAD);
		content(data, len, 40 + k);
		local_path(db, "SITEC", name, p, sizeof p);
		CHECK(read_file(p, buf, sizeof buf, &n) == 0 && n == len &&
		      memcmp(buf, data, len) == 0);
	}
	for (int r = 0; r < 3; r++) {
		snprintf(p, sizeof p, "%s/%s", dir, rses[r]);
		CHECK(count_uploads(p) == 0);
	}

	/* delete the big rule with purge: the reaper removes the copies */
	CHECK(cat_rule_delete(db, rule, 1, 0) == DM_OK);
	CHECK(run_once(1u << DMN_REAPER, NULL) == 0);
	for (int i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof name, "f%d", i);
		for (int r = 1; r < 3; r++) {
			local_path(db, rses[r], name, p, sizeof p);
			CHECK(access(p, F_OK) != 0);
			CHECK(replica_state(db, rses[r], name) == -1);
		}
		local_path(db, "SITEA", name, p, sizeof p);
		CHECK(access(p, F_OK) == 0);
		CHECK(replica_state(db, "SITEA", name) == CAT_REPLICA_AVAILABLE);
	}
	/* every daemon once, nothing left to do, nothing fails */
	CHECK(run_once(0, NULL) == 0);
	cat_close(db);
	if (!getenv("DIDFS_KEEP_TEST_DIR")) {
		char cmd[400];

		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		CHECK(system(cmd) == 0);
	}
}

/* Liveness is the daemons' (the catalog asks dmn_process_alive). */
static void test_process_alive(void)
{
	struct dmn_loop l;
	pid_t child;

	memset(&l, 0, sizeof l);
	snprintf(l.hostname, sizeof l.hostname, "thishost");
	CHECK(dmn_process_alive(&l, "thishost", (int64_t)getpid()));
	child = fork();
	if (child == 0)
		_exit(0);
	CHECK(child > 0 && waitpid(child, NULL, 0) == child);
	CHECK(!dmn_process_alive(&l, "thishost", (int64_t)child));
	/* another host's pid, or no pid: not ours to judge */
	CHECK(dmn_process_alive(&l, "otherhost", (int64_t)child));
	CHECK(dmn_process_alive(&l, "thishost", 0));
	CHECK(dmn_process_alive(&l, "thishost", (int64_t)1 << 40));
}

int main(void)
{
	test_defaults_and_names();
	test_process_alive();
	test_parse();
	test_refusals();
	test_once_over_file_rses();
	return tap_done();
}
