/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - the REST catalog's configuration, the way Rucio users have it
 * (catalog/rest/; no I/O beyond reading the one file, no network).
 *
 * Where: $RUCIO_CONFIG, else $RUCIO_HOME/etc/rucio.cfg, else
 * /opt/rucio/etc/rucio.cfg; a missing file is no error (everything can come
 * from the catalog URI and the environment).  What: the [client] section of
 * that INI file (Python configparser's syntax: "key = value" or "key: value",
 * '#' and ';' comment lines, indented continuation lines, keys case-
 * insensitive, "%%" for '%'): rucio_host, auth_host, auth_type
 * (userpass | x509 | x509_proxy), username, password, account, ca_cert,
 * client_cert, client_key, client_x509_proxy, vo, request_retries, and
 * didfs's own auth_token_file and timeout.  Other sections and keys are
 * ignored, as Rucio's client ignores what it does not use.
 *
 * Then the environment overrides (rest_config_env): $RUCIO_ACCOUNT,
 * $RUCIO_AUTH_TYPE, $X509_USER_PROXY (for x509_proxy), $DIDFS_TIMEOUT, and
 * the catalog URI gives the host (rest_config_host).
 */
#ifndef CAT_REST_CONFIG_H
#define CAT_REST_CONFIG_H

#include "dm.h"

struct rest_config {
	char *rucio_host;   /* https://host[:port], no trailing '/' */
	char *auth_host;    /* default: rucio_host */
	char *auth_type;    /* userpass, x509, x509_proxy; NULL: by what is given */
	char *username, *password, *account;
	char *ca_cert;      /* a CA file or a directory of hashed CA PEMs */
	char *client_cert, *client_key, *client_x509_proxy;
	char *auth_token_file; /* a file holding a token (bearer or Rucio's) */
	char *vo;
	int request_retries;   /* 502/503/504 retries; default 3 */
	double timeout;        /* seconds per call; default 60 */
	char origin[512];      /* the file it came from, or "" */
};

void rest_config_init(struct rest_config *c);
void rest_config_free(struct rest_config *c);
/* Parse INI text (len bytes, need not be NUL-terminated) into c; `origin`
 * names it in errors.  Bad syntax is InputValidationError naming the line. */
enum dm_status rest_config_parse(struct rest_config *c, const char *text, size_t len,
				 const char *origin, struct dm_err *err);
/* Find and parse the file ($RUCIO_CONFIG ...); a file named by
 * $RUCIO_CONFIG that cannot be read is an error, the defaults are not. */
enum dm_status rest_config_load(struct rest_config *c, struct dm_err *err);
/* Environment overrides (see above). */
enum dm_status rest_config_env(struct rest_config *c, struct dm_err *err);
/* The catalog URI "https://host[:port][/]" sets rucio_host (and auth_host
 * when the file named none, or named the same host). */
enum dm_status rest_config_host(struct rest_config *c, const char *uri, struct dm_err *err);
/* Replace *slot by a copy of v (NULL clears). */
void rest_config_set(char **slot, const char *v);

#endif
