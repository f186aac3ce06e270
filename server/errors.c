/* SPDX-License-Identifier: Apache-2.0 */
/*
 * errors.c - Rucio's error contract (common.py generate_http_error_flask):
 * Content-Type application/octet-stream, headers ExceptionClass and
 * ExceptionMessage (newlines as spaces, cut at 125 characters plus "..."),
 * body {"ExceptionClass": .., "ExceptionMessage": ..} with the full message,
 * and the HTTP status Rucio uses for each class (transcripts T-02..T-45).
 */
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct { const char *cls; int status; } table[] = {
	{ "CannotAuthenticate", 401 }, { "IdentityNotFound", 401 }, { "AccessDenied", 401 },
	{ "InvalidRSEExpression", 409 }, { "KeyError", 400 }, { "ValueError", 400 },
	{ "TypeError", 400 }, { "InvalidPath", 400 }, { "InvalidType", 400 },
	{ "InputValidationError", 400 }, { "InvalidValueForKey", 400 },
	{ "UnsupportedRequestedContentType", 406 }, { "MethodNotAllowed", 405 },
	{ "RequestEntityTooLarge", 413 }, { "Duplicate", 409 }, { "DuplicateRule", 409 },
	{ "SubscriptionDuplicate", 409 },
	{ "DataIdentifierAlreadyExists", 409 }, { "FileAlreadyExists", 409 },
	{ "DuplicateContent", 409 }, { "InsufficientTargetRSEs", 409 },
	{ "InsufficientAccountLimit", 409 }, { "RSEWriteBlocked", 409 },
	{ "InvalidRuleWeight", 409 }, { "StagingAreaRuleRequiresLifetime", 409 },
	{ "InvalidReplicationRule", 409 }, { "InvalidSourceReplicaExpression", 409 },
	{ "UnsupportedOperation", 409 }, { "FileConsistencyMismatch", 409 },
	{ "ScopeAccessDenied", 401 }, { "InvalidObject", 500 }, { "DatabaseException", 503 },
	{ "ServerOverloaded", 503 }, { "RucioException", 500 },
};

int srv_class_status(const char *cls)
{
	size_t n;

	for (size_t i = 0; i < DM_ARRAY_SIZE(table); i++)
		if (!strcmp(table[i].cls, cls))
			return table[i].status;
	n = strlen(cls);
	if (n > 8 && !strcmp(cls + n - 8, "NotFound"))
		return 404; /* DataIdentifierNotFound, ScopeNotFound, RuleNotFound, ... */
	if (n > 12 && !strcmp(cls + n - 12, "NotSupported"))
		return 404; /* RSEProtocolNotSupported (rses.py) */
	return 500;
}

static int send_error(struct srv_req *r, int status, const char *cls, const char *msg)
{
	struct dm_buf b = DM_BUF_INIT;
	char hdr[160];
	size_t n = 0;
	int rc;

	for (const char *p = msg; *p && n < 125; p++)
		hdr[n++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
	hdr[n] = 0;
	if (strlen(msg) > 125)
		strcat(hdr, "...");
	srv_add_header(r, "ExceptionClass", cls);
	srv_add_header(r, "ExceptionMessage", hdr);
	dm_buf_adds(&b, "{");
	jw_ks(&b, "ExceptionClass", cls);
	jw_ks(&b, "ExceptionMessage", msg);
	dm_buf_adds(&b, "}");
	rc = srv_reply(r, status, "application/octet-stream", b.s, b.len);
	dm_buf_release(&b);
	return rc;
}

int srv_error_status(struct srv_req *r, int status, const char *cls, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return send_error(r, status, cls, msg);
}

int srv_error(struct srv_req *r, const char *cls, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return send_error(r, srv_class_status(cls), cls, msg);
}

int srv_err_error(struct srv_req *r, const struct dm_err *e)
{
	const char *cls = e->cls[0] ? e->cls : dm_status_class(e->code);
	int st = srv_class_status(cls);

	if (r->expr_400 && !strcmp(cls, "InvalidRSEExpression"))
		st = 400;
	return send_error(r, st, cls, e->msg);
}

int srv_cat_error(struct srv_req *r, struct cat_db *db)
{
	return srv_err_error(r, cat_error(db));
}
