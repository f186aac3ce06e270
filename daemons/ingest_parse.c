/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ingest_parse.c - the parsers of watch-folder ingest's outside input
 * (daemons/ingest.h): trigger files, extractor output, dataset name
 * patterns, and the metadata set they fill.  Pure functions: no catalog,
 * no files; every refusal names the line and the reason.  Fuzzed by
 * tests/fuzz/fuzz_ingest.c, tested by tests/unit/daemons/test_ingest.c.
 */
#include "ingest.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "dmcheck.h"

/* Catalog columns Rucio does not take as generic metadata (catalog/did.c). */
static const char *const column_keys[] = {
	"scope", "name", "account", "did_type", "type", "is_open", "monotonic", "bytes", "length",
	"adler32", "md5", "availability", "expired_at", "closed_at", "created_at", "updated_at",
	"lifetime",
};

void ing_meta_free(struct ing_meta *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->key[i]);
		free(m->value[i]);
	}
	m->n = 0;
}

const char *ing_meta_get(const struct ing_meta *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->key[i], key))
			return m->value[i];
	return NULL;
}

static enum dm_status key_ok(const char *key, size_t n, struct dm_err *err)
{
	if (n == 0 || n > ING_KEY_MAX)
		return dm_seterr(err, DM_EINVAL, "InvalidMetadata",
				 "metadata key must be 1 to %d characters", ING_KEY_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)key[i];
		if (!(isalnum(ch) || ch == '_' || ch == '-' || ch == '.'))
			return dm_seterr(err, DM_EINVAL, "InvalidMetadata",
					 "invalid metadata key '%.*s': use letters, digits, '_', '-', '.'",
					 (int)(n > 64 ? 64 : n), key);
	}
	for (size_t i = 0; i < DM_ARRAY_SIZE(column_keys); i++)
		if (strlen(column_keys[i]) == n && !memcmp(key, column_keys[i], n))
			return dm_seterr(err, DM_EINVAL, "InvalidMetadata",
					 "metadata key '%s' is a catalog column and cannot be set",
					 column_keys[i]);
	return DM_OK;
}

enum dm_status ing_meta_set(struct ing_meta *m, const char *key, const char *value,
			    struct dm_err *err)
{
	size_t vl = strlen(value);

	if (key_ok(key, strlen(key), err))
		return DM_EINVAL;
	if (vl > ING_VALUE_MAX)
		return dm_seterr(err, DM_EINVAL, "InvalidValueForKey",
				 "metadata value for '%s' is longer than %d characters", key,
				 ING_VALUE_MAX);
	if (!dm_utf8_valid(value, vl))
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "metadata value for '%s' is not valid UTF-8 text", key);
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->key[i], key)) {
			free(m->value[i]);
			m->value[i] = dm_xstrdup(value);
			return DM_OK;
		}
	if (m->n == ING_META_MAX)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "more than %d metadata keys", ING_META_MAX);
	m->key[m->n] = dm_xstrdup(key);
	m->value[m->n] = dm_xstrdup(value);
	m->n++;
	return DM_OK;
}

void ing_trigger_free(struct ing_trigger *t)
{
	ing_meta_free(&t->meta);
	memset(t, 0, sizeof *t);
}

static int is_hexlower(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* One checksum or size field of a trigger; 1 if key is one, 0 if it is
 * metadata, -1 on a bad value. */
static int trigger_field(struct ing_trigger *t, const char *key, const char *value,
			 const char *where, struct dm_err *err)
{
	size_t vl = strlen(value);

	if (!strcmp(key, "adler32")) {
		if (t->adler32[0])
			goto dup;
		if (vl == 0 || vl > 8 || !is_hexlower(value, vl))
			goto bad;
		/* Rucio's form: 8 lowercase hex digits, zero padded */
		snprintf(t->adler32, sizeof t->adler32, "%08lx", strtoul(value, NULL, 16));
		return 1;
	}
	if (!strcmp(key, "md5")) {
		if (t->md5[0])
			goto dup;
		if (vl != 32 || !is_hexlower(value, vl))
			goto bad;
		for (size_t i = 0; i < 32; i++)
			t->md5[i] = (char)tolower((unsigned char)value[i]);
		t->md5[32] = 0;
		return 1;
	}
	if (!strcmp(key, "bytes") || !strcmp(key, "size") || !strcmp(key, "filesize")) {
		if (t->has_bytes)
			goto dup;
		if (dm_parse_u64(value, &t->bytes) || t->bytes > (uint64_t)INT64_MAX)
			goto bad;
		t->has_bytes = 1;
		return 1;
	}
	return 0;
dup:
	dm_seterr(err, DM_EINVAL, "InputValidationError", "%s: '%s' given twice", where, key);
	return -1;
bad:
	dm_seterr(err, DM_EINVAL, "InputValidationError", "%s: bad %s '%.80s'", where, key, value);
	return -1;
}

static enum dm_status add_meta(struct ing_trigger *t, const char *key, const char *value,
			       const char *where, struct dm_err *err)
{
	struct dm_err e = { 0 };

	if (ing_meta_get(&t->meta, key))
		return dm_seterr(err, DM_EINVAL, "InputValidationError", "%s: '%s' given twice",
				 where, key);
	if (ing_meta_set(&t->meta, key, value, &e))
		return dm_seterr(err, DM_EINVAL, e.cls, "%s: %s", where, e.msg);
	return DM_OK;
}

static enum dm_status json_scalar(json_t *v, struct dm_buf *out)
{
	dm_buf_reset(out);
	if (json_is_string(v))
		dm_buf_add(out, json_string_value(v), json_string_length(v));
	else if (json_is_integer(v))
		dm_buf_addf(out, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		dm_buf_addf(out, "%.17g", json_real_value(v));
	else if (json_is_true(v))
		dm_buf_adds(out, "True");
	else if (json_is_false(v))
		dm_buf_adds(out, "False");
	else
		return DM_EINVAL;
	/* a string holding NUL cannot be metadata */
	return strlen(out->s) == out->len ? DM_OK : DM_EINVAL;
}

static enum dm_status json_object_into(struct ing_trigger *t, json_t *obj, int top,
				       struct dm_err *err)
{
	const char *key;
	json_t *v;
	struct dm_buf val = DM_BUF_INIT;
	enum dm_status rc = DM_OK;
	char where[300];

	json_object_foreach(obj, key, v) {
		snprintf(where, sizeof where, "JSON key '%.80s'", key);
		if (top && (!strcmp(key, "meta") || !strcmp(key, "metadata"))) {
			if (!json_is_object(v)) {
				rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
					       "%s: must be an object", where);
				break;
			}
			rc = json_object_into(t, v, 0, err);
			if (rc)
				break;
			continue;
		}
		if (json_scalar(v, &val)) {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s: the value must be a string, number or boolean", where);
			break;
		}
		if (top) {
			int f = trigger_field(t, key, val.s, where, err);
			if (f < 0) {
				rc = DM_EINVAL;
				break;
			}
			if (f)
				continue;
		}
		rc = add_meta(t, key, val.s, where, err);
		if (rc)
			break;
	}
	dm_buf_release(&val);
	return rc;
}

static void trim(const char **s, const char **e)
{
	while (*s < *e && isspace((unsigned char)**s))
		(*s)++;
	while (*e > *s && isspace((unsigned char)(*e)[-1]))
		(*e)--;
}

/* key=value lines: fn(ud, key, value, where) for each; '#' comments and
 * blank lines skipped. */
typedef enum dm_status (*kv_fn)(void *ud, const char *key, const char *value,
				const char *where, struct dm_err *err);

static enum dm_status kv_lines(const char *text, size_t len, const char *origin, kv_fn fn,
			       void *ud, struct dm_err *err)
{
	const char *p = text, *end = text + len;
	long lineno = 0;
	struct dm_buf k = DM_BUF_INIT, v = DM_BUF_INIT;
	enum dm_status rc = DM_OK;

	if (memchr(text, 0, len))
		return dm_seterr(err, DM_EINVAL, "InputValidationError", "%s: holds a NUL byte",
				 origin);
	while (p < end && !rc) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end, *ks = p, *ke, *vs, *ve = le, *eq;
		char where[320];

		lineno++;
		p = nl ? nl + 1 : end;
		trim(&ks, &ve);
		if (ks == ve || *ks == '#')
			continue;
		snprintf(where, sizeof where, "%s:%ld", origin, lineno);
		eq = memchr(ks, '=', (size_t)(ve - ks));
		if (!eq) {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s: not a key=value line", where);
			break;
		}
		ke = eq;
		vs = eq + 1;
		trim(&ks, &ke);
		trim(&vs, &ve);
		if (ks == ke) {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError", "%s: empty key", where);
			break;
		}
		/* a value in double quotes loses them */
		if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
			vs++;
			ve--;
		}
		dm_buf_reset(&k);
		dm_buf_reset(&v);
		dm_buf_add(&k, ks, (size_t)(ke - ks));
		dm_buf_add(&v, vs, (size_t)(ve - vs));
		rc = fn(ud, k.s, v.s, where, err);
	}
	dm_buf_release(&k);
	dm_buf_release(&v);
	return rc;
}

static enum dm_status trigger_kv(void *ud, const char *key, const char *value,
				 const char *where, struct dm_err *err)
{
	struct ing_trigger *t = ud;
	int f = trigger_field(t, key, value, where, err);

	if (f < 0)
		return DM_EINVAL;
	if (f)
		return DM_OK;
	return add_meta(t, key, value, where, err);
}

enum dm_status ing_trigger_parse(const char *text, size_t len, struct ing_trigger *t,
				 struct dm_err *err)
{
	enum dm_status rc;
	size_t i = 0;

	memset(t, 0, sizeof *t);
	if (len > ING_TRIGGER_MAX)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "trigger file is larger than %d bytes", ING_TRIGGER_MAX);
	while (i < len && isspace((unsigned char)text[i]))
		i++;
	if (i < len && text[i] == '{') {
		json_error_t je;
		json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);

		if (!root)
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "trigger JSON line %d: %s", je.line, je.text);
		if (!json_is_object(root)) {
			json_decref(root);
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "trigger JSON is not an object");
		}
		rc = json_object_into(t, root, 1, err);
		json_decref(root);
	} else {
		rc = kv_lines(text, len, "trigger line", trigger_kv, t, err);
	}
	if (rc)
		ing_trigger_free(t);
	return rc;
}

static enum dm_status meta_kv(void *ud, const char *key, const char *value, const char *where,
			      struct dm_err *err)
{
	struct ing_meta *m = ud;
	struct dm_err e = { 0 };

	if (ing_meta_get(m, key))
		return dm_seterr(err, DM_EINVAL, "InputValidationError", "%s: '%s' given twice",
				 where, key);
	if (ing_meta_set(m, key, value, &e))
		return dm_seterr(err, DM_EINVAL, e.cls, "%s: %s", where, e.msg);
	return DM_OK;
}

enum dm_status ing_kv_parse(const char *text, size_t len, const char *origin,
			    struct ing_meta *m, struct dm_err *err)
{
	if (len > ING_EXTRACT_MAX)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "%s: more than %d bytes of output", origin, ING_EXTRACT_MAX);
	return kv_lines(text, len, origin, meta_kv, m, err);
}

enum dm_status ing_pattern_expand(const char *pattern, ing_lookup_fn lookup, void *ud,
				  struct dm_buf *out, struct dm_err *err)
{
	const char *p = pattern;

	while (*p) {
		if (p[0] == '{' && p[1] == '{') {
			dm_buf_addc(out, '{');
			p += 2;
		} else if (p[0] == '}' && p[1] == '}') {
			dm_buf_addc(out, '}');
			p += 2;
		} else if (*p == '{') {
			const char *e = strchr(p + 1, '}'), *v;
			char key[ING_KEY_MAX + 1];
			size_t n;

			if (!e)
				return dm_seterr(err, DM_EINVAL, "InputValidationError",
						 "pattern '%s': '{' without '}'", pattern);
			n = (size_t)(e - p - 1);
			if (n == 0 || n > ING_KEY_MAX || memchr(p + 1, '{', n))
				return dm_seterr(err, DM_EINVAL, "InputValidationError",
						 "pattern '%s': bad placeholder", pattern);
			memcpy(key, p + 1, n);
			key[n] = 0;
			v = lookup(ud, key);
			if (!v)
				return dm_seterr(err, DM_EINVAL, "InputValidationError",
						 "pattern '%s' needs '%s', which the file's metadata lacks",
						 pattern, key);
			dm_buf_adds(out, v);
			p = e + 1;
		} else if (*p == '}') {
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "pattern '%s': '}' without '{'", pattern);
		} else {
			dm_buf_addc(out, *p++);
		}
	}
	return DM_OK;
}
