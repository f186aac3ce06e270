/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_account.c - catalog creation, accounts, identities, scopes, account
 * limits and usage: init, whoami, add-account, list-accounts,
 * set-account-attribute, list-account-attributes, add-identity, add-scope,
 * list-scopes, set-account-limit, get-account-limits, list-account-usage.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A generated root password: 24 characters of [A-Za-z0-9-_] (144 bits;
 * 64 divides 256, so every character is uniform). */
static int gen_password(char out[25])
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char b[24];

	if (dm_random_bytes(b, sizeof b))
		return -1;
	for (size_t i = 0; i < sizeof b; i++)
		out[i] = alphabet[b[i] & 63];
	out[24] = '\0';
	return 0;
}

/* Write the password to a new file readable by its owner only. */
static int write_password_file(const char *path, const char *pass, struct dm_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	size_t n = strlen(pass);

	if (fd < 0) {
		dm_seterr(err, DM_EIO, "InputValidationError", "cannot create %s: %s%s", path,
			   strerror(errno), errno == EEXIST ? " (it is never overwritten)" : "");
		return -1;
	}
	if (write(fd, pass, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd)) {
		dm_seterr(err, DM_EIO, "RucioException", "cannot write %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

/* init: there is no default password.  --root-password gives one; else one
 * is generated and printed once, or written to --root-password-file (0600,
 * never overwritten) and not printed. */
int cli_init(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root-username", required_argument, NULL, 'u' },
		{ "root-password", required_argument, NULL, 'p' },
		{ "root-password-file", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *user = "ddmlab", *pass = NULL, *pwfile = NULL;
	char generated[25];
	struct dm_err err = { 0 };
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': user = optarg; break;
		case 'p': pass = optarg; break;
		case 'f': pwfile = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc)
		return cli_usage(c);
	if (pass && pwfile) {
		dm_seterr(&err, DM_EINVAL, "InputValidationError",
			   "--root-password and --root-password-file exclude each other "
			   "(the file receives a generated password)");
		return cli_fail(c, &err);
	}
	if (pass && !*pass) {
		dm_seterr(&err, DM_EINVAL, "InputValidationError", "--root-password must not be empty");
		return cli_fail(c, &err);
	}
	if (!pass) {
		if (gen_password(generated)) {
			dm_seterr(&err, DM_EINTERNAL, "RucioException", "no random bytes for a password");
			return cli_fail(c, &err);
		}
		pass = generated;
	}
	if (cat_open(c->catalog_path, CAT_OPEN_CREATE, &c->db, &err))
		return cli_fail(c, &err);
	if (cat_bootstrap(c->db, user, pass))
		return cli_fail(c, NULL);
	/* The catalog exists now; a password file that cannot be written leaves
	 * root without a known password, so say how to set one. */
	if (pass == generated && pwfile && write_password_file(pwfile, pass, &err)) {
		cli_fail(c, &err);
		fprintf(stderr, "didfs: the catalog was created; give root a password with "
				"'didfs add-identity root --type userpass ...'\n");
		return 1;
	}
	int show = pass == generated && !pwfile;
	char shown[1024];
	cat_uri_shown(c->catalog_path, shown, sizeof shown);
	if (c->json) {
		printf("{\"catalog\": \"%s\", \"account\": \"root\", \"identity\": \"%s\"", shown,
		       user);
		if (show)
			printf(", \"password\": \"%s\"", pass);
		else if (pwfile)
			printf(", \"password_file\": \"%s\"", pwfile);
		printf("}\n");
	} else {
		printf("Catalog %s created; account root (admin) with userpass identity %s.\n",
		       shown, user);
		if (show)
			printf("Generated password for %s (shown only now): %s\n", user, pass);
		else if (pwfile)
			printf("Generated password for %s written to %s (mode 0600).\n", user, pwfile);
	}
	return 0;
}

static int print_account(void *ud, const struct cat_account *a)
{
	struct cli *c = ud;
	static const char *const keys[] = { "account", "account_type", "status", "email", "created_at" };

	cli_out_kv(c, keys, 5, "ssss" "t", a->account, cat_account_type_name(a->type), a->status,
		   a->email, a->created_at);
	return 0;
}

int cli_whoami(struct cli *c, int argc, char **argv)
{
	if (argc != 1)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_account_get(c->db, cat_issuer(c->db), print_account, c))
		return cli_fail(c, NULL);
	return 0;
}

int cli_add_account(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "email", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	enum cat_account_type type = CAT_ACCOUNT_USER;
	const char *email = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (cat_account_type_parse(optarg, &type))
				return cli_failf(c, "InvalidAccountType",
						 "account type must be USER, GROUP or SERVICE, not '%s'", optarg);
			break;
		case 'e': email = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc - 1)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_account_add(c->db, argv[optind], type, email))
		return cli_fail(c, NULL);
	if (!c->json)
		printf("Added new account: %s\n", argv[optind]);
	return 0;
}

struct list_accounts {
	struct cli_out *o;
	int filter;
	enum cat_account_type type;
};

static int account_row(void *ud, const struct cat_account *a)
{
	struct list_accounts *l = ud;

	if (l->filter && a->type != l->type)
		return 0;
	cli_out_row(l->o, "sss", a->account, cat_account_type_name(a->type), a->email);
	return 0;
}

int cli_list_accounts(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cols[] = { "account", "type", "email" };
	struct list_accounts l = { 0 };
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 't')
			return cli_usage(c);
		if (cat_account_type_parse(optarg, &l.type))
			return cli_failf(c, "InvalidAccountType",
					 "account type must be USER, GROUP or SERVICE, not '%s'", optarg);
		l.filter = 1;
	}
	if (optind != argc)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	l.o = cli_out_begin(c, cols, 3);
	rc = cat_account_list(c->db, account_row, &l);
	return cli_out_finish(c, l.o, rc);
}

int cli_set_account_attribute(struct cli *c, int argc, char **argv)
{
	const char *account = NULL, *key, *value;

	if (cli_target_key_value(c, argc, argv, "account", "key", &account, &key, &value, 1))
		return 2;
	if (cli_open(c))
		return 1;
	if (cat_account_attr_set(c->db, account, key, value))
		return cli_fail(c, NULL);
	return 0;
}

int cli_list_account_attributes(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "key", "value" };
	struct cli_out *o;
	int rc;

	if (argc != 2)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, 2);
	rc = cat_account_attr_list(c->db, argv[1], cli_kv_row, o);
	return cli_out_finish(c, o, rc);
}

int cli_add_identity(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "username", required_argument, NULL, 'u' },
		{ "password", required_argument, NULL, 'p' },
		{ "email", required_argument, NULL, 'e' },
		{ "type", required_argument, NULL, 't' },
		{ "identity", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *user = NULL, *pass = NULL, *email = NULL, *type = "userpass", *ident = NULL;
	int opt, local;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': user = optarg; break;
		case 'p': pass = optarg; break;
		case 'e': email = optarg; break;
		case 't': type = optarg; break;
		case 'i': ident = optarg; break;
		default: return cli_usage(c);
		}
	}
	local = !strcasecmp(type, "local");
	if (!local && strcasecmp(type, "userpass"))
		return cli_failf(c, "InputValidationError",
				 "identity type '%s' is not one of userpass, local", type);
	if (optind != argc - 1 || (local ? !ident : (!user || !pass)))
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (local ? cat_identity_add_local(c->db, argv[optind], ident)
		  : cat_identity_add_userpass(c->db, argv[optind], user, pass, email))
		return cli_fail(c, NULL);
	return 0;
}

int cli_add_scope(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "account", required_argument, NULL, 'a' },
		{ "scope", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *account = NULL, *scope = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'a': account = optarg; break;
		case 's': scope = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (!scope && optind < argc)
		scope = argv[optind++];
	if (optind != argc || !scope)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_scope_add(c->db, scope, account ? account : cat_issuer(c->db)))
		return cli_fail(c, NULL);
	if (!c->json)
		printf("Added new scope to account: %s-%s\n", scope, account ? account : cat_issuer(c->db));
	return 0;
}

static int scope_row(void *ud, const char *scope, const char *account)
{
	cli_out_row(ud, "ss", scope, account);
	return 0;
}

int cli_list_scopes(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "account", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cols[] = { "scope", "account" };
	const char *account = NULL;
	struct cli_out *o;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'a')
			return cli_usage(c);
		account = optarg;
	}
	if (optind != argc)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, 2);
	rc = cat_scope_list(c->db, account, scope_row, o);
	return cli_out_finish(c, o, rc);
}

int cli_set_account_limit(struct cli *c, int argc, char **argv)
{
	int64_t bytes;
	uint64_t u;

	if (argc != 4)
		return cli_usage(c);
	if (!strcmp(argv[3], "-1") || !strcasecmp(argv[3], "infinity") || !strcasecmp(argv[3], "inf")) {
		bytes = -1;
	} else {
		if (cli_parse_u64(c, "BYTES", argv[3], &u))
			return 1;
		bytes = (int64_t)u;
	}
	if (cli_open(c))
		return 1;
	if (cat_account_limit_set(c->db, argv[1], argv[2], bytes))
		return cli_fail(c, NULL);
	if (!c->json)
		printf("Set account limit for account %s on RSE %s: %s\n", argv[1], argv[2],
		       bytes < 0 ? "infinity" : argv[3]);
	return 0;
}

struct usage_print {
	struct cli_out *o;
};

static int limit_row(void *ud, const struct cat_usage *u)
{
	struct usage_print *p = ud;

	if (!u->limit_set)
		return 0;
	cli_out_row(p->o, "si", u->rse, u->limit);
	return 0;
}

int cli_get_account_limits(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "rse", "bytes" };
	struct usage_print p;
	int rc;

	if (argc != 2)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	p.o = cli_out_begin(c, cols, 2);
	rc = cat_account_usage_list(c->db, argv[1], limit_row, &p);
	return cli_out_finish(c, p.o, rc);
}

static int usage_row(void *ud, const struct cat_usage *u)
{
	struct usage_print *p = ud;
	int64_t remaining = !u->limit_set ? 0 : u->limit < 0 ? -1 : u->limit - (int64_t)u->bytes;

	cli_out_row(p->o, "suuii", u->rse, u->files, u->bytes, u->limit_set ? u->limit : 0, remaining);
	return 0;
}

int cli_list_account_usage(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "rse", "files", "bytes", "bytes_limit", "bytes_remaining" };
	struct usage_print p;
	int rc;

	if (argc != 2)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_usage_refresh(c->db))
		return cli_fail(c, NULL);
	p.o = cli_out_begin(c, cols, 5);
	rc = cat_account_usage_list(c->db, argv[1], usage_row, &p);
	return cli_out_finish(c, p.o, rc);
}

static int rse_usage_row(void *ud, const struct cat_usage *u)
{
	struct usage_print *p = ud;

	cli_out_row(p->o, "ssuu", u->rse, u->account, u->files, u->bytes);
	return 0;
}

int cli_list_rse_usage(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "rse", "source", "files", "used" };
	struct usage_print p;
	int rc;

	if (argc > 2)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_usage_refresh(c->db))
		return cli_fail(c, NULL);
	p.o = cli_out_begin(c, cols, 4);
	rc = cat_rse_usage_list(c->db, argc == 2 ? argv[1] : NULL, rse_usage_row, &p);
	return cli_out_finish(c, p.o, rc);
}
