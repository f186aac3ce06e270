/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json.c - the request parsers and the JSON writer of `didfs serve`.
 *
 * Output uses Python's json.dumps separators (", " and ": "), as Rucio's
 * server does and as fuse-posix needs.  A comma goes in unless the buffer
 * ends with '{' or '[' (no writer state).
 *
 * Parsers for outside input (fuzzed by tests/fuzz/fuzz_rest.c):
 * percent-decoding (NUL refused), UTF-8 validation, the DID path split of
 * rucio-rest.md §2 (raw path split at the first '/', a known suffix taken
 * from the right, then each part decoded), and Rucio's `filters` argument, a
 * Python literal ([{'name': 'x*', 'length.gt': 3}], ...) parsed as a small
 * subset: lists, dicts, quoted strings, numbers, True/False/None.
 */
#include "server.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void jw_sep(struct dm_buf *b)
{
	if (b->len && b->s[b->len - 1] != '{' && b->s[b->len - 1] != '[')
		dm_buf_adds(b, ", ");
}

void jw_str(struct dm_buf *b, const char *s)
{
	if (!s) {
		dm_buf_adds(b, "null");
		return;
	}
	dm_buf_addc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': dm_buf_adds(b, "\\\""); break;
		case '\\': dm_buf_adds(b, "\\\\"); break;
		case '\n': dm_buf_adds(b, "\\n"); break;
		case '\r': dm_buf_adds(b, "\\r"); break;
		case '\t': dm_buf_adds(b, "\\t"); break;
		default:
			if (*p < 0x20)
				dm_buf_addf(b, "\\u%04x", *p);
			else
				dm_buf_addc(b, (char)*p);
		}
	}
	dm_buf_addc(b, '"');
}

void jw_key(struct dm_buf *b, const char *k)
{
	jw_sep(b);
	jw_str(b, k);
	dm_buf_adds(b, ": ");
}

void jw_ks(struct dm_buf *b, const char *k, const char *v) { jw_key(b, k); jw_str(b, v); }
void jw_ki(struct dm_buf *b, const char *k, int64_t v) { jw_key(b, k); dm_buf_addf(b, "%lld", (long long)v); }
void jw_ku(struct dm_buf *b, const char *k, uint64_t v) { jw_key(b, k); dm_buf_addf(b, "%llu", (unsigned long long)v); }
void jw_kb(struct dm_buf *b, const char *k, int v) { jw_key(b, k); dm_buf_adds(b, v ? "true" : "false"); }
void jw_knull(struct dm_buf *b, const char *k) { jw_key(b, k); dm_buf_adds(b, "null"); }

void jw_kt(struct dm_buf *b, const char *k, int64_t t)
{
	char s[40];

	if (!t) {
		jw_knull(b, k);
		return;
	}
	dm_fmt_time(t, s);
	jw_ks(b, k, s);
}

void jw_kiso(struct dm_buf *b, const char *k, int64_t t)
{
	char s[40];
	struct tm tm;
	time_t tt = (time_t)t;

	if (!t) {
		jw_knull(b, k);
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	jw_ks(b, k, s);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int srv_pct_decode(const char *in, size_t n, int plus_space, char *out, size_t outn)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)in[i];

		if (c == '%') {
			int h, l;

			if (i + 2 >= n)
				return -1;
			h = hexval((unsigned char)in[i + 1]);
			l = hexval((unsigned char)in[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		if (c == 0 || o + 1 >= outn)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return 0;
}

int srv_utf8_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n;

	while (p < e) {
		unsigned c = *p;
		int k;
		unsigned min, cp;

		if (c < 0x80) {
			p++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
		else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
		else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
		else return 0;
		if (e - p <= k)
			return 0;
		for (int i = 1; i <= k; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += k + 1;
	}
	return 1;
}

static const char *const suffixes[] = {
	"/dids", "/files", "/meta", "/rules", "/parents", "/status", "/associated_rules",
};

int srv_did_path(const char *raw, char *scope, size_t sn, char *name, size_t nn,
		 const char **suffix, struct dm_err *err)
{
	const char *slash = strchr(raw, '/');
	size_t len = strlen(raw), end = len;

	*suffix = "";
	if (!slash || slash == raw)
		{
		dm_seterr(err, DM_EINVAL, "InvalidPath", "DID path '%s' is not scope/name", raw);
		return -1;
	}
	/* /meta/<key>: the key follows the suffix */
	{
		const char *m = strstr(slash, "/meta/");

		if (m && m != slash) {
			end = (size_t)(m - raw);
			*suffix = m;
		}
	}
	if (!**suffix) {
		for (size_t i = 0; i < DM_ARRAY_SIZE(suffixes); i++) {
			size_t sl = strlen(suffixes[i]);

			if (len > sl && (size_t)(slash - raw) + sl < len &&
			    !strcmp(raw + len - sl, suffixes[i])) {
				end = len - sl;
				*suffix = raw + end;
				break;
			}
		}
	}
	if (end > 0 && raw[end - 1] == '/' && (size_t)(slash - raw) + 1 < end)
		end--; /* trailing slash */
	if (srv_pct_decode(raw, (size_t)(slash - raw), 0, scope, sn) ||
	    srv_pct_decode(slash + 1, end - (size_t)(slash - raw) - 1, 0, name, nn)) {
		dm_seterr(err, DM_EINVAL, "InvalidPath", "DID path is not a valid percent-encoded scope/name");
		return -1;
	}
	if (!*scope || !*name) {
		dm_seterr(err, DM_EINVAL, "InvalidPath", "DID path '%s' is not scope/name", raw);
		return -1;
	}
	return 0;
}

/* ---- filters: a Python literal ---- */
struct lit {
	const char *p;
	struct dm_err *err;
	int depth;
};

static void ws(struct lit *l)
{
	while (*l->p == ' ' || *l->p == '\t' || *l->p == '\n')
		l->p++;
}

static int lit_fail(struct lit *l, const char *what)
{
	dm_seterr(l->err, DM_EINVAL, "ValueError", "malformed node or string: %s", what);
	return -1;
}

/* scalar into out: strings unquoted, True/False/None as true/false/null. */
static int lit_scalar(struct lit *l, char *out, size_t n)
{
	size_t o = 0;

	ws(l);
	if (*l->p == '\'' || *l->p == '"') {
		char q = *l->p++;

		while (*l->p && *l->p != q) {
			char c = *l->p++;

			if (c == '\\') {
				if (!*l->p)
					return lit_fail(l, "unterminated string");
				c = *l->p++;
			}
			if (o + 1 >= n)
				return lit_fail(l, "string too long");
			out[o++] = c;
		}
		if (*l->p != q)
			return lit_fail(l, "unterminated string");
		l->p++;
	} else {
		while (isalnum((unsigned char)*l->p) || *l->p == '.' || *l->p == '-' || *l->p == '+' ||
		       *l->p == '_') {
			if (o + 1 >= n)
				return lit_fail(l, "value too long");
			out[o++] = *l->p++;
		}
		out[o] = 0;
		if (!o)
			return lit_fail(l, "expected a value");
		if (!strcmp(out, "True"))
			strcpy(out, "true");
		else if (!strcmp(out, "False"))
			strcpy(out, "false");
		else if (!strcmp(out, "None"))
			strcpy(out, "null");
		else if (!isdigit((unsigned char)out[0]) && out[0] != '-' && out[0] != '+')
			return lit_fail(l, "unknown name");
		return 0;
	}
	out[o] = 0;
	return 0;
}

static int lit_dict(struct lit *l, int group, srv_filter_cb cb, void *ud)
{
	char key[512], val[1024];

	ws(l);
	if (*l->p != '{')
		return lit_fail(l, "expected a dict");
	l->p++;
	ws(l);
	if (*l->p == '}') {
		l->p++;
		return cb(ud, group, NULL, NULL, NULL);
	}
	for (;;) {
		char *dot, *op = "eq";

		if (lit_scalar(l, key, sizeof(key)))
			return -1;
		ws(l);
		if (*l->p++ != ':')
			return lit_fail(l, "expected ':'");
		if (lit_scalar(l, val, sizeof(val)))
			return -1;
		dot = strrchr(key, '.');
		if (dot && (!strcmp(dot, ".gt") || !strcmp(dot, ".lt") || !strcmp(dot, ".gte") ||
			    !strcmp(dot, ".lte") || !strcmp(dot, ".ne"))) {
			*dot = 0;
			op = dot + 1;
		}
		if (cb(ud, group, key, op, val))
			return -1;
		ws(l);
		if (*l->p == ',') {
			l->p++;
			ws(l);
			if (*l->p == '}') {
				l->p++;
				return 0;
			}
			continue;
		}
		if (*l->p == '}') {
			l->p++;
			return 0;
		}
		return lit_fail(l, "expected ',' or '}'");
	}
}

int srv_parse_filters(const char *s, srv_filter_cb cb, void *ud, struct dm_err *err)
{
	struct lit l = { s, err, 0 };
	int group = 0;

	ws(&l);
	if (*l.p == '{') {
		if (lit_dict(&l, 0, cb, ud))
			return -1;
	} else if (*l.p == '[') {
		l.p++;
		ws(&l);
		if (*l.p != ']') {
			for (;;) {
				if (lit_dict(&l, group++, cb, ud))
					return -1;
				ws(&l);
				if (*l.p == ',') {
					l.p++;
					ws(&l);
					if (*l.p == ']')
						break;
					continue;
				}
				break;
			}
		}
		ws(&l);
		if (*l.p != ']')
			return lit_fail(&l, "expected ']'");
		l.p++;
	} else {
		return lit_fail(&l, "expected a list of dicts");
	}
	ws(&l);
	if (*l.p)
		return lit_fail(&l, "trailing characters");
	return 0;
}

json_t *srv_body_json(struct srv_req *r)
{
	json_error_t je;
	json_t *j;

	if (!srv_utf8_ok(r->body.s, r->body.len)) {
		srv_error(r, "ValueError", "request body is not valid UTF-8");
		return NULL;
	}
	j = json_loadb(r->body.s, r->body.len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		srv_error(r, "ValueError", "cannot decode the request body as JSON: %s (line %d, column %d)",
			  je.text, je.line, je.column);
		return NULL;
	}
	return j;
}

int srv_jstr(struct srv_req *r, json_t *o, const char *key, const char **out)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		srv_error(r, "TypeError", "'%s' must be a string", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

void jw_kenum(struct dm_buf *b, const char *k, const char *cls, const char *v, int old)
{
	jw_key(b, k);
	if (old)
		dm_buf_addf(b, "\"%s.%s\"", cls, v);
	else
		jw_str(b, v);
}

/* ---- Rucio's generic NAME schema ---- */

int srv_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || n > 1 + CAT_NAME_MAX || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return 0;
	return 1;
}

/* Python's repr() of a str (the printable UTF-8 names that reach here). */
static void py_repr(struct dm_buf *b, const char *s)
{
	char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';

	dm_buf_addc(b, q);
	for (; *s; s++) {
		if (*s == '\\')
			dm_buf_adds(b, "\\\\");
		else if (*s == q)
			dm_buf_addf(b, "\\%c", q);
		else if (*s == '\n')
			dm_buf_adds(b, "\\n");
		else if (*s == '\t')
			dm_buf_adds(b, "\\t");
		else if ((unsigned char)*s < 0x20 || *s == 0x7f)
			dm_buf_addf(b, "\\x%02x", (unsigned char)*s);
		else
			dm_buf_addc(b, *s);
	}
	dm_buf_addc(b, q);
}

int srv_invalid_name(struct srv_req *r, int status, const char *schema, const char *schema_path,
		     const char *instance_path, const char *value)
{
	static const char pat[] = "'^[A-Za-z0-9][A-Za-z0-9\\\\.\\\\-\\\\_]{1,250}$'";
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	dm_buf_addf(&b, "Problem validating %s : ", schema);
	py_repr(&b, value);
	dm_buf_addf(&b, " does not match %s\n\nFailed validating 'pattern' in schema%s:\n"
		    "    {'description': 'Data Identifier name',\n     'pattern': %s,\n"
		    "     'type': 'string'}\n\nOn instance%s:\n    ", pat, schema_path, pat, instance_path);
	py_repr(&b, value);
	rc = srv_error_status(r, status, "InvalidObject", "%s", b.s);
	dm_buf_release(&b);
	return rc;
}

/* ---- fast path for bulk file bodies ----
 * {"dids"|"files": [{"scope": s, "name": n, "bytes": N, "adler32": a,
 * "md5": m, "pfn": p, "state": st}, ...], "rse": r} in one pass over a copy
 * of the body, strings terminated in place, no allocation per file.  Any
 * other shape (escapes, other keys, nested values, duplicates, floats,
 * invalid names) is "not for the fast path" (1): the caller then takes the
 * general jansson path, which gives Rucio's answer.  */

static const char *fj_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* A plain string (no escapes, no control characters): terminated in place. */
static char *fj_str(char **pp, char *e)
{
	char *p = *pp, *s;

	if (p >= e || *p != '"')
		return NULL;
	s = ++p;
	while (p < e && *p != '"') {
		if (*p == '\\' || (unsigned char)*p < 0x20)
			return NULL;
		p++;
	}
	if (p >= e)
		return NULL;
	*p = 0;
	*pp = p + 1;
	return s;
}

static int fj_u64(char **pp, char *e, uint64_t *v)
{
	char *p = *pp;
	uint64_t x = 0;

	if (p >= e || *p < '0' || *p > '9' || (*p == '0' && p + 1 < e && p[1] >= '0' && p[1] <= '9'))
		return -1;
	for (; p < e && *p >= '0' && *p <= '9'; p++) {
		if (x > (UINT64_MAX - 9) / 10 || x > (uint64_t)INT64_MAX / 10)
			return -1;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (p < e && (*p == '.' || *p == 'e' || *p == 'E'))
		return -1;
	*v = x;
	*pp = p;
	return 0;
}

static int fj_state(const char *s, int *out)
{
	static const struct { const char *code; enum cat_replica_state st; } codes[] = {
		{ "A", CAT_REPLICA_AVAILABLE }, { "U", CAT_REPLICA_UNAVAILABLE },
		{ "C", CAT_REPLICA_COPYING }, { "B", CAT_REPLICA_BEING_DELETED },
		{ "D", CAT_REPLICA_BAD }, { "T", CAT_REPLICA_TEMPORARY_UNAVAILABLE },
	};
	enum cat_replica_state st;

	for (size_t i = 0; i < DM_ARRAY_SIZE(codes); i++)
		if (!strcmp(s, codes[i].code)) {
			*out = (int)codes[i].st;
			return 0;
		}
	if (cat_replica_state_parse(s, &st))
		return -1;
	*out = (int)st;
	return 0;
}

static int fj_file(char **pp, char *e, struct cat_file_in *f)
{
	char *p = *pp;
	unsigned seen = 0;

	memset(f, 0, sizeof(*f));
	f->state = -1;
	if (p >= e || *p != '{')
		return -1;
	p = (char *)fj_ws(p + 1, e);
	if (p < e && *p == '}')
		return -1;
	for (;;) {
		static const char *const keys[] = { "scope", "name", "bytes", "adler32", "md5", "pfn", "state" };
		char *k = fj_str(&p, e), *v;
		unsigned i;

		if (!k)
			return -1;
		for (i = 0; i < DM_ARRAY_SIZE(keys) && strcmp(k, keys[i]); i++)
			;
		if (i == DM_ARRAY_SIZE(keys) || (seen & (1u << i)))
			return -1;
		seen |= 1u << i;
		p = (char *)fj_ws(p, e);
		if (p >= e || *p != ':')
			return -1;
		p = (char *)fj_ws(p + 1, e);
		if (i == 2) {
			if (fj_u64(&p, e, &f->bytes))
				return -1;
		} else {
			if (!(v = fj_str(&p, e)))
				return -1;
			switch (i) {
			case 0: f->scope = v; break;
			case 1: f->name = v; break;
			case 3: f->adler32 = v; break;
			case 4: f->md5 = v; break;
			case 5: f->pfn = v; break;
			case 6: if (fj_state(v, &f->state)) return -1; break;
			}
		}
		p = (char *)fj_ws(p, e);
		if (p < e && *p == ',') {
			p = (char *)fj_ws(p + 1, e);
			continue;
		}
		if (p < e && *p == '}')
			break;
		return -1;
	}
	if ((seen & 7u) != 7u || !srv_name_ok(f->name))
		return -1;
	*pp = p + 1;
	return 0;
}

int srv_fast_files(const char *body, size_t len, const char *list_key, struct srv_fast_files *out)
{
	char *p, *e;
	unsigned seen = 0;
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	if (!srv_utf8_ok(body, len))
		return 1;
	out->copy = dm_xmalloc(len + 1);
	memcpy(out->copy, body, len);
	out->copy[len] = 0;
	p = out->copy;
	e = p + len;
	p = (char *)fj_ws(p, e);
	if (p >= e || *p != '{')
		goto no;
	p = (char *)fj_ws(p + 1, e);
	for (;;) {
		char *k = fj_str(&p, e);

		if (!k)
			goto no;
		p = (char *)fj_ws(p, e);
		if (p >= e || *p != ':')
			goto no;
		p = (char *)fj_ws(p + 1, e);
		if (!strcmp(k, "rse") && !(seen & 1)) {
			seen |= 1;
			if (!(out->rse = fj_str(&p, e)))
				goto no;
		} else if (!strcmp(k, list_key) && !(seen & 2)) {
			seen |= 2;
			if (p >= e || *p != '[')
				goto no;
			p = (char *)fj_ws(p + 1, e);
			if (p < e && *p == ']') {
				p++;
			} else {
				for (;;) {
					if (out->n == cap) {
						cap = cap ? cap * 2 : 1024;
						out->files = dm_xrealloc(out->files, cap * sizeof(*out->files));
					}
					if (fj_file(&p, e, &out->files[out->n]))
						goto no;
					out->n++;
					p = (char *)fj_ws(p, e);
					if (p < e && *p == ',') {
						p = (char *)fj_ws(p + 1, e);
						continue;
					}
					if (p < e && *p == ']') {
						p++;
						break;
					}
					goto no;
				}
			}
		} else {
			goto no;
		}
		p = (char *)fj_ws(p, e);
		if (p < e && *p == ',') {
			p = (char *)fj_ws(p + 1, e);
			continue;
		}
		if (p < e && *p == '}')
			break;
		goto no;
	}
	p = (char *)fj_ws(p + 1, e);
	if (p != e || seen != 3)
		goto no;
	return 0;
no:
	srv_fast_files_free(out);
	return 1;
}

void srv_fast_files_free(struct srv_fast_files *f)
{
	free(f->copy);
	free(f->files);
	memset(f, 0, sizeof(*f));
}
