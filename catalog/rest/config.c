/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - rucio.cfg's [client] section and its overrides (config.h).
 * A small configparser: sections, "key = value" / "key: value", comment
 * lines, continuation lines, "%%".  Only what Rucio's client reads counts.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REST_CONFIG_MAX (1u << 20) /* a rucio.cfg is a few hundred bytes */

void rest_config_init(struct rest_config *c)
{
	memset(c, 0, sizeof *c);
	c->request_retries = 3;
	c->timeout = 60;
}

void rest_config_set(char **slot, const char *v)
{
	free(*slot);
	*slot = v ? dm_xstrdup(v) : NULL;
}

void rest_config_free(struct rest_config *c)
{
	char **all[] = { &c->rucio_host, &c->auth_host, &c->auth_type, &c->username,
			 &c->password, &c->account, &c->ca_cert, &c->client_cert,
			 &c->client_key, &c->client_x509_proxy, &c->auth_token_file, &c->vo };

	for (size_t i = 0; i < DM_ARRAY_SIZE(all); i++)
		rest_config_set(all[i], NULL);
}

static char **slot_of(struct rest_config *c, const char *key)
{
	static const struct { const char *key; size_t off; } keys[] = {
		{ "rucio_host", offsetof(struct rest_config, rucio_host) },
		{ "auth_host", offsetof(struct rest_config, auth_host) },
		{ "auth_type", offsetof(struct rest_config, auth_type) },
		{ "username", offsetof(struct rest_config, username) },
		{ "password", offsetof(struct rest_config, password) },
		{ "account", offsetof(struct rest_config, account) },
		{ "ca_cert", offsetof(struct rest_config, ca_cert) },
		{ "client_cert", offsetof(struct rest_config, client_cert) },
		{ "client_key", offsetof(struct rest_config, client_key) },
		{ "client_x509_proxy", offsetof(struct rest_config, client_x509_proxy) },
		{ "auth_token_file", offsetof(struct rest_config, auth_token_file) },
		{ "vo", offsetof(struct rest_config, vo) },
	};

	for (size_t i = 0; i < DM_ARRAY_SIZE(keys); i++)
		if (!strcmp(keys[i].key, key))
			return (char **)((char *)c + keys[i].off);
	return NULL;
}

/* Strip a trailing '/' from a host URL. */
static void trim_host(char *h)
{
	size_t n;

	if (!h)
		return;
	n = strlen(h);
	while (n > 0 && h[n - 1] == '/')
		h[--n] = 0;
}

static enum dm_status apply(struct rest_config *c, const char *key, const char *val,
			    const char *origin, int line, struct dm_err *err)
{
	char **slot = slot_of(c, key);

	if (slot) {
		rest_config_set(slot, val);
		if (slot == &c->rucio_host || slot == &c->auth_host)
			trim_host(*slot);
		return DM_OK;
	}
	if (!strcmp(key, "request_retries")) {
		int64_t v;
		if (dm_parse_i64(val, &v) || v < 0 || v > 100)
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "%s:%d: request_retries '%s' is not a number 0..100",
					 origin, line, val);
		c->request_retries = (int)v;
	} else if (!strcmp(key, "timeout")) {
		char *end;
		double v;
		errno = 0;
		v = strtod(val, &end);
		if (errno || end == val || *end || !(v > 0 && v <= 86400))
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "%s:%d: timeout '%s' is not a number of seconds (0..86400]",
					 origin, line, val);
		c->timeout = v;
	}
	return DM_OK;
}

/* Copy [p, p+n) trimmed, with "%%" as '%', into b (appending). */
static void add_value(struct dm_buf *b, const char *p, size_t n)
{
	while (n > 0 && isspace((unsigned char)*p))
		p++, n--;
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '%' && i + 1 < n && p[i + 1] == '%')
			i++;
		dm_buf_addc(b, p[i]);
	}
}

enum dm_status rest_config_parse(struct rest_config *c, const char *text, size_t len,
				 const char *origin, struct dm_err *err)
{
	struct dm_buf key = DM_BUF_INIT, val = DM_BUF_INIT;
	int in_client = 0, have = 0, line = 0, key_line = 0;
	enum dm_status rc = DM_OK;
	size_t pos = 0;

	if (len > REST_CONFIG_MAX)
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "%s: %zu bytes is too large for a rucio.cfg", origin, len);
	while (pos < len && rc == DM_OK) {
		const char *p = text + pos, *nl = memchr(p, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - p) : len - pos, i = 0;

		pos += n + (nl ? 1 : 0);
		line++;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (memchr(p, 0, n)) {
			rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
				       "%s:%d: a NUL byte in the file", origin, line);
			break;
		}
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == n || p[i] == '#' || p[i] == ';') {
			continue; /* blank or comment (configparser keeps going) */
		}
		if (i > 0 && have) { /* continuation of the previous value */
			if (val.len)
				dm_buf_addc(&val, '\n');
			add_value(&val, p + i, n - i);
			continue;
		}
		if (have && in_client && (rc = apply(c, key.s, val.s, origin, key_line, err)))
			break;
		have = 0;
		if (p[i] == '[') {
			const char *close = memchr(p + i, ']', n - i);
			if (!close) {
				rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
					       "%s:%d: a section header without ']'", origin, line);
				break;
			}
			in_client = (size_t)(close - (p + i + 1)) == 6 && !memcmp(p + i + 1, "client", 6);
			continue;
		}
		{
			size_t k = i, sep;
			while (k < n && p[k] != '=' && p[k] != ':')
				k++;
			if (k == n || k == i) {
				rc = dm_seterr(err, DM_EINVAL, "InputValidationError",
					       "%s:%d: expected 'key = value'", origin, line);
				break;
			}
			sep = k;
			while (k > i && isspace((unsigned char)p[k - 1]))
				k--;
			dm_buf_reset(&key);
			for (size_t j = i; j < k; j++)
				dm_buf_addc(&key, (char)tolower((unsigned char)p[j]));
			dm_buf_reset(&val);
			add_value(&val, p + sep + 1, n - sep - 1);
			have = 1;
			key_line = line;
		}
	}
	if (rc == DM_OK && have && in_client)
		rc = apply(c, key.s, val.s, origin, key_line, err);
	dm_buf_release(&key);
	dm_buf_release(&val);
	return rc;
}

static enum dm_status load_file(struct rest_config *c, const char *path, int must,
				struct dm_err *err)
{
	FILE *f = fopen(path, "r");
	struct dm_buf b = DM_BUF_INIT;
	char chunk[4096];
	size_t n;
	enum dm_status rc;

	if (!f) {
		if (!must && errno == ENOENT)
			return DM_OK;
		return dm_seterr(err, DM_EINVAL, "ConfigNotFound", "cannot read %s: %s", path,
				 strerror(errno));
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= REST_CONFIG_MAX)
		dm_buf_add(&b, chunk, n);
	fclose(f);
	rc = rest_config_parse(c, b.s, b.len, path, err);
	if (rc == DM_OK)
		dm_strlcpy(c->origin, path, sizeof c->origin);
	dm_buf_release(&b);
	return rc;
}

enum dm_status rest_config_load(struct rest_config *c, struct dm_err *err)
{
	const char *e = getenv("RUCIO_CONFIG");
	char path[4096];

	if (e && *e)
		return load_file(c, e, 1, err);
	if ((e = getenv("RUCIO_HOME")) && *e) {
		snprintf(path, sizeof path, "%s/etc/rucio.cfg", e);
		return load_file(c, path, 0, err);
	}
	return load_file(c, "/opt/rucio/etc/rucio.cfg", 0, err);
}

enum dm_status rest_config_env(struct rest_config *c, struct dm_err *err)
{
	const char *e;

	if ((e = getenv("RUCIO_ACCOUNT")) && *e)
		rest_config_set(&c->account, e);
	if ((e = getenv("RUCIO_AUTH_TYPE")) && *e)
		rest_config_set(&c->auth_type, e);
	if ((e = getenv("X509_USER_PROXY")) && *e && !c->client_x509_proxy)
		rest_config_set(&c->client_x509_proxy, e);
	if ((e = getenv("DIDFS_TIMEOUT")) && *e) {
		char *end;
		double v = strtod(e, &end);
		if (end == e || *end || !(v > 0 && v <= 86400))
			return dm_seterr(err, DM_EINVAL, "InputValidationError",
					 "$DIDFS_TIMEOUT '%s' is not a number of seconds (0..86400]", e);
		c->timeout = v;
	}
	if (c->auth_type && strcmp(c->auth_type, "userpass") && strcmp(c->auth_type, "x509") &&
	    strcmp(c->auth_type, "x509_proxy") && strcmp(c->auth_type, "token"))
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "auth_type '%s'%s%s is not supported (userpass, x509, x509_proxy, token)",
				 c->auth_type, c->origin[0] ? " in " : "", c->origin);
	return DM_OK;
}

enum dm_status rest_config_host(struct rest_config *c, const char *uri, struct dm_err *err)
{
	const char *host;
	int same;

	if (strncasecmp(uri, "https://", 8) && strncasecmp(uri, "http://", 7))
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "catalog '%s' is not an https:// URL", uri);
	host = strstr(uri, "://") + 3;
	if (!*host || *host == '/' || strpbrk(host, "?#@ "))
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "catalog '%s': expected https://host[:port]", uri);
	same = !c->auth_host || (c->rucio_host && !strcmp(c->auth_host, c->rucio_host));
	rest_config_set(&c->rucio_host, uri);
	trim_host(c->rucio_host);
	if (strchr(strstr(c->rucio_host, "://") + 3, '/'))
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "catalog '%s': a REST catalog is https://host[:port], without a path",
				 uri);
	if (same)
		rest_config_set(&c->auth_host, c->rucio_host);
	return DM_OK;
}
