/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rule_codes.c - the bottom of the rule engine (rule_i.h), used by every
 * file of it and by stats.c and subscription.c: the names of rule, lock,
 * grouping and request states and the one-letter codes their rows store,
 * the rule options' defaults, and small SQL helpers.
 */
#include "catalog_i.h"
#include "rule_i.h"

#include <string.h>
#include <strings.h>

const char rl_rule_codes[] = "ROSUWI";
static const char *const rule_names[] = { "REPLICATING", "OK", "STUCK", "SUSPENDED",
					  "WAITING_APPROVAL", "INJECT" };
const char rl_lock_codes[] = "ROS";
static const char *const lock_names[] = { "REPLICATING", "OK", "STUCK" };
const char rl_grouping_codes[] = "ADN";
static const char *const grouping_names[] = { "ALL", "DATASET", "NONE" };
const char rl_req_codes[] = "QSDFNL";
const char *const rl_req_names[] = { "QUEUED", "SUBMITTED", "DONE", "FAILED", "NO_SOURCES",
					 "LOST" };

const char *cat_rule_state_name(enum cat_rule_state s)
{
	return (unsigned)s < 6 ? rule_names[s] : "?";
}

const char *cat_lock_state_name(enum cat_lock_state s)
{
	return (unsigned)s < 3 ? lock_names[s] : "?";
}

const char *cat_grouping_name(enum cat_grouping g)
{
	return (unsigned)g < 3 ? grouping_names[g] : "?";
}

int cat_grouping_parse(const char *s, enum cat_grouping *g)
{
	for (int i = 0; i < 3; i++) {
		if (s && (!strcasecmp(s, grouping_names[i]) || (s[0] == rl_grouping_codes[i] && !s[1]))) {
			*g = (enum cat_grouping)i;
			return 0;
		}
	}
	return -1;
}

const char *cat_req_state_name(enum cat_req_state s)
{
	return (unsigned)s < 6 ? rl_req_names[s] : "?";
}

int rl_code_index(const char *codes, const char *c)
{
	const char *p = c && *c ? strchr(codes, c[0]) : NULL;

	return p ? (int)(p - codes) : 0;
}

void cat_rule_opts_init(struct cat_rule_opts *o)
{
	memset(o, 0, sizeof *o);
	o->copies = 1;
	o->grouping = CAT_GROUPING_DATASET;
	o->priority = 3;
}

/* ------------------------------------------------------------------ */
/* small SQL helpers                                                   */

enum dm_status rl_step_done(struct cat_db *db, struct sqldrv_stmt *st, const char *what)
{
	int r = sqldrv_step(st);

	sqldrv_reset(st);
	if (r != SQLDRV_DONE && r != SQLDRV_ROW)
		return cat_dberr(db, what);
	return DM_OK;
}

/* Run a one-int64-result query; *out untouched if no row. */
enum dm_status rl_query_i64(struct cat_db *db, struct sqldrv_stmt *st, int64_t *out, int *found)
{
	int r = sqldrv_step(st);

	if (found)
		*found = r == SQLDRV_ROW;
	if (r == SQLDRV_ROW && out)
		*out = sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "query");
	return DM_OK;
}

int64_t rl_now_s(void)
{
	return dm_now();
}
