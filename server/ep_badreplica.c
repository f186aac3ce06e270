/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ep_badreplica.c - declaring bad replicas over REST, as Rucio's
 * ReplicaClient calls it:
 *   POST /replicas/bad       {"replicas": [{scope, name, rse}, ...] | [PFN, ...],
 *                             "reason": R, "force": B}
 *   POST /replicas/bad/dids  {"rse": RSE, "dids": [{scope, name}], "reason": R}
 * -> 201 with a JSON object {RSE: [what was not declared, with why]} ({}
 * when everything was), as Rucio's.  Admin only (Rucio: root).  All the
 * declarations of a request are one transaction (the batch of srv_db_tx);
 * a replica that cannot be declared (unknown, no such DID) is reported, not
 * fatal, as Rucio does.  PFNs are not mapped to replicas here (Rucio's
 * minos does that): they come back undeclared with that reason.  The
 * catalog call is cat_replicas_declare_bad (catalog/necromancer.c).
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void undeclared(json_t *out, const char *rse, const char *what)
{
	json_t *l = json_object_get(out, rse);

	if (!l) {
		l = json_array();
		json_object_set_new(out, rse, l);
	}
	json_array_append_new(l, json_string(what));
}

int ep_replicas_bad(struct srv_req *r, const char *sub)
{
	json_t *j, *list, *out;
	const char *reason = NULL, *rse_all = NULL;
	struct cat_db *db;
	char *text;
	int rc, dids = !strcmp(sub, "dids") || !strcmp(sub, "dids/");

	if (strcmp(r->method, "POST"))
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	if (!(j = srv_body_json(r)))
		return 0;
	if (!json_is_object(j)) {
		json_decref(j);
		return srv_error(r, "TypeError", "the body must be a JSON object");
	}
	if (srv_jstr(r, j, "reason", &reason) || (dids && srv_jstr(r, j, "rse", &rse_all))) {
		json_decref(j);
		return 0;
	}
	list = json_object_get(j, dids ? "dids" : "replicas");
	if (!json_is_array(list)) {
		json_decref(j);
		return srv_error(r, "KeyError", "'%s' not defined", dids ? "dids" : "replicas");
	}
	if (dids && !rse_all) {
		json_decref(j);
		return srv_error(r, "KeyError", "'rse' not defined");
	}
	if (!(db = srv_db_tx(r))) {
		json_decref(j);
		return 0;
	}
	if (!cat_issuer_is_admin(db)) {
		json_decref(j);
		return srv_error(r, "AccessDenied", "Account %s can not declare bad replicas", r->account);
	}
	out = json_object();
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *x = json_array_get(list, i);
		const char *scope = json_string_value(json_object_get(x, "scope"));
		const char *name = json_string_value(json_object_get(x, "name"));
		const char *rse = rse_all ? rse_all : json_string_value(json_object_get(x, "rse"));
		char what[1200];

		if (json_is_string(x)) {
			snprintf(what, sizeof what, "%.1000s PFNs are not mapped to replicas by didfs;"
				 " declare {scope, name, rse}", json_string_value(x));
			undeclared(out, "unknown", what);
			continue;
		}
		if (!scope || !name || !rse) {
			undeclared(out, rse ? rse : "unknown", "an entry needs scope, name and rse");
			continue;
		}
		if (cat_replicas_declare_bad(db, rse, scope, name, reason ? reason : "")) {
			const struct dm_err *e = cat_error(db);

			if (e->code == DM_EINVAL || e->code == DM_EPERM) {
				json_decref(out);
				json_decref(j);
				return srv_cat_error(r, db);
			}
			if (e->code != DM_ENOENT) { /* the database: the whole request fails */
				json_decref(out);
				json_decref(j);
				return srv_cat_error(r, db);
			}
			snprintf(what, sizeof what, "%.250s:%.500s %.300s", scope, name, e->msg);
			undeclared(out, rse, what);
		}
	}
	text = json_dumps(out, JSON_COMPACT);
	rc = srv_reply(r, 201, "application/json", text, strlen(text));
	free(text);
	json_decref(out);
	json_decref(j);
	return rc;
}
