/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hermes.c - Rucio's hermes as a loop of `didfs daemon`: delivers the
 * outbox (the messages table, catalog/outbox.c) at least once to every
 * configured sink, and deletes a message only once every sink has it.
 *
 * Sinks (hermes.* keys, config.c):
 *   "stomp"         a STOMP 1.2 broker (daemons/stomp.c: RabbitMQ's STOMP
 *                   plugin, ActiveMQ): one SEND per message to
 *                   hermes.stomp_destination, body as Rucio's hermes sends it
 *                   {"event_type": <lower case>, "payload": {...},
 *                   "created_at": "<UTC time>"}, headers event_type,
 *                   didfs-message-id (the outbox id: consumers count distinct
 *                   ids, since at-least-once may repeat one), persistent:true
 *                   and a receipt: a batch counts as delivered once the
 *                   broker has acknowledged every frame of it
 *   "webhook:<URL>" each URL of hermes.webhooks: one HTTP POST (libcurl) of
 *                   a JSON list of such objects (with "id") per batch; any
 *                   2xx is delivered
 * Each cycle takes, per sink, up to hermes.chunk_size of the oldest messages
 * that sink does not have yet, delivers them, and records them
 * (cat_messages_delivered: one transaction, deleting those every sink now
 * has).  A crash between a delivery and its record re-delivers (at least
 * once, never lost).  A failing sink is retried after a back-off doubling
 * from 1 s up to hermes.max_delay, its STOMP connection reopened, while the
 * other sinks go on; its messages wait in the catalog, across restarts of
 * the daemon or the broker.
 */
#include "daemon_i.h"
#include "stomp.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define HERMES_MAX_SINKS 9

struct sink {
	char name[DMN_PATH_MAX + 16]; /* "stomp", "webhook:URL" */
	const char *url;              /* webhook URL (into name) */
	int stomp;
	double next_try, delay;
	struct stomp_conn *conn;
};

struct hermes {
	struct sink sinks[HERMES_MAX_SINKS];
	int nsinks;
	char sinks_csv[HERMES_MAX_SINKS * (DMN_PATH_MAX + 18)];
	unsigned cfg_gen;
	CURL *curl;
};

struct batch {
	size_t n, cap;
	int64_t *ids;
	char **bodies; /* the STOMP body of each message */
	char **events; /* event_type (lower case) */
};

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->bodies[i]);
		free(b->events[i]);
	}
	free(b->ids);
	free(b->bodies);
	free(b->events);
	memset(b, 0, sizeof *b);
}

static int collect(void *ud, const struct cat_message *m)
{
	struct batch *b = ud;
	struct dm_buf body = DM_BUF_INIT;
	char t[40], *ev = dm_xstrdup(m->event_type);

	for (char *p = ev; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->ids = dm_xrealloc(b->ids, b->cap * sizeof *b->ids);
		b->bodies = dm_xrealloc(b->bodies, b->cap * sizeof *b->bodies);
		b->events = dm_xrealloc(b->events, b->cap * sizeof *b->events);
	}
	dm_fmt_time(m->created_at, t);
	/* payload is the catalog's own JSON object text */
	dm_buf_addf(&body, "{\"event_type\": \"%s\", \"payload\": %s, \"created_at\": \"%s\"}", ev,
		    m->payload, t);
	b->ids[b->n] = m->id;
	b->bodies[b->n] = dm_xstrdup(body.s);
	b->events[b->n] = ev;
	b->n++;
	dm_buf_release(&body);
	return 0;
}

static void sinks_setup(struct dmn_loop *l, struct hermes *h)
{
	const struct dmn_config *c = &l->cfg;
	char *list, *save = NULL, *tok;

	for (int i = 0; i < h->nsinks; i++)
		stomp_close(h->sinks[i].conn);
	h->nsinks = 0;
	if (c->stomp_host[0]) {
		struct sink *s = &h->sinks[h->nsinks++];

		memset(s, 0, sizeof *s);
		dm_strlcpy(s->name, "stomp", sizeof s->name);
		s->stomp = 1;
	}
	list = dm_xstrdup(c->webhooks);
	for (tok = strtok_r(list, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		struct sink *s;

		if (h->nsinks == HERMES_MAX_SINKS) {
			dm_log(DM_LOG_WARN, l->name, "more than %d sinks: %s ignored", HERMES_MAX_SINKS, tok);
			continue;
		}
		s = &h->sinks[h->nsinks++];
		memset(s, 0, sizeof *s);
		snprintf(s->name, sizeof s->name, "webhook:%s", tok);
		s->url = s->name + 8;
	}
	free(list);
	h->sinks_csv[0] = 0;
	for (int i = 0; i < h->nsinks; i++) {
		size_t n = strlen(h->sinks_csv);

		snprintf(h->sinks_csv + n, sizeof h->sinks_csv - n, "%s%s,", n ? "" : ",", h->sinks[i].name);
	}
	h->cfg_gen = l->cfg_gen;
	if (!h->nsinks)
		dm_log(DM_LOG_WARN, l->name, "no sinks configured (hermes.stomp_host, hermes.webhooks):"
		       " messages are kept");
	else
		dm_log(DM_LOG_INFO, l->name, "delivering to %d sink(s): %s", h->nsinks, h->sinks_csv);
}

static enum dm_status hermes_init(struct dmn_loop *l)
{
	struct hermes *h = dm_xcalloc(1, sizeof *h);

	h->curl = curl_easy_init();
	l->state = h;
	sinks_setup(l, h);
	return DM_OK;
}

static void hermes_fini(struct dmn_loop *l)
{
	struct hermes *h = l->state;

	if (!h)
		return;
	for (int i = 0; i < h->nsinks; i++)
		stomp_close(h->sinks[i].conn);
	if (h->curl)
		curl_easy_cleanup(h->curl);
	free(h);
	l->state = NULL;
}

static enum dm_status deliver_stomp(struct dmn_loop *l, struct sink *s, const struct batch *b,
				    struct dm_err *err)
{
	const struct dmn_config *c = &l->cfg;
	struct stomp_msg *m;
	char (*idtxt)[24];
	const char **hdrs;
	enum dm_status rc;

	if (!s->conn && (rc = stomp_connect(c->stomp_host, c->stomp_port, c->stomp_vhost, c->stomp_user,
					    c->stomp_password, c->hermes_timeout, &s->conn, err)))
		return rc;
	m = dm_xcalloc(b->n, sizeof *m);
	idtxt = dm_xcalloc(b->n, sizeof *idtxt);
	hdrs = dm_xcalloc(b->n * 9, sizeof *hdrs);
	for (size_t i = 0; i < b->n; i++) {
		const char **h = hdrs + i * 9;

		snprintf(idtxt[i], sizeof idtxt[i], "%lld", (long long)b->ids[i]);
		h[0] = "content-type", h[1] = "application/json";
		h[2] = "event_type", h[3] = b->events[i];
		h[4] = "didfs-message-id", h[5] = idtxt[i];
		h[6] = "persistent", h[7] = "true";
		h[8] = NULL;
		m[i].body = b->bodies[i];
		m[i].len = strlen(b->bodies[i]);
		m[i].headers = h;
	}
	rc = stomp_send(s->conn, c->stomp_destination, m, b->n, err);
	free(m);
	free(idtxt);
	free(hdrs);
	if (rc) {
		stomp_close(s->conn);
		s->conn = NULL;
	}
	return rc;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

static enum dm_status deliver_webhook(struct dmn_loop *l, struct hermes *h, struct sink *s,
				      const struct batch *b, struct dm_err *err)
{
	struct dm_buf body = DM_BUF_INIT;
	struct curl_slist *hl = NULL;
	long status = 0;
	CURLcode cc;

	if (!h->curl)
		return dm_seterr(err, DM_EIO, "MessagingError", "libcurl could not start");
	dm_buf_addc(&body, '[');
	for (size_t i = 0; i < b->n; i++) {
		/* {"id": N, "event_type": ...} */
		dm_buf_addf(&body, "%s{\"id\": %lld, %s", i ? ", " : "", (long long)b->ids[i], b->bodies[i] + 1);
	}
	dm_buf_addc(&body, ']');
	hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_reset(h->curl);
	curl_easy_setopt(h->curl, CURLOPT_URL, s->url);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body.s);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE, (long)body.len);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, (long)l->cfg.hermes_timeout);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, discard);
	if (l->cfg.ca_path[0])
		curl_easy_setopt(h->curl, CURLOPT_CAPATH, l->cfg.ca_path);
	if (l->cfg.ca_file[0])
		curl_easy_setopt(h->curl, CURLOPT_CAINFO, l->cfg.ca_file);
	cc = curl_easy_perform(h->curl);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hl);
	dm_buf_release(&body);
	if (cc != CURLE_OK)
		return dm_seterr(err, DM_EIO, "MessagingError", "webhook %s: %s", s->url,
				 curl_easy_strerror(cc));
	if (status < 200 || status > 299)
		return dm_seterr(err, DM_EIO, "MessagingError", "webhook %s: HTTP %ld", s->url, status);
	return DM_OK;
}

static enum dm_status hermes_cycle(struct dmn_loop *l, int *more)
{
	struct hermes *h = l->state;
	int limit = l->cfg.chunk[l->kind];
	double now = dm_now_f();
	enum dm_status rc = DM_OK;

	*more = 0;
	if (l->index != 0)
		return DM_OK; /* one instance delivers: the order of a sink's messages is kept */
	if (h->cfg_gen != l->cfg_gen)
		sinks_setup(l, h);
	for (int i = 0; i < h->nsinks && rc == DM_OK; i++) {
		struct sink *s = &h->sinks[i];
		struct batch b = { 0 };
		struct dm_err err;
		int deleted = 0;

		if (s->next_try > now)
			continue;
		if ((rc = cat_messages_pending(l->db, s->name, limit, collect, &b))) {
			batch_free(&b);
			break;
		}
		if (b.n == 0) {
			batch_free(&b);
			continue;
		}
		if ((s->stomp ? deliver_stomp(l, s, &b, &err) : deliver_webhook(l, h, s, &b, &err))) {
			s->delay = s->delay ? s->delay * 2 : 1;
			if (s->delay > l->cfg.hermes_max_delay)
				s->delay = l->cfg.hermes_max_delay;
			s->next_try = now + s->delay;
			dm_log(DM_LOG_WARN, l->name, "%s: %s; %zu message(s) kept, retry in %.0f s",
			       s->stomp ? "stomp" : s->url, err.msg, b.n, s->delay);
			batch_free(&b);
			continue;
		}
		if (s->delay)
			dm_log(DM_LOG_INFO, l->name, "%s: delivering again", s->stomp ? "stomp" : s->url);
		s->delay = 0;
		s->next_try = 0;
		rc = cat_messages_delivered(l->db, s->name, b.ids, b.n, h->sinks_csv, h->nsinks, &deleted);
		if (rc == DM_OK) {
			dm_log(DM_LOG_DEBUG, l->name, "%s: %zu message(s) delivered, %d done",
			       s->stomp ? "stomp" : s->url, b.n, deleted);
			if ((int)b.n >= limit)
				*more = 1;
		}
		batch_free(&b);
	}
	return rc;
}

const struct dmn_def dmn_hermes_def = { DMN_HERMES, hermes_init, hermes_cycle, hermes_fini };
