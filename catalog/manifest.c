/* SPDX-License-Identifier: Apache-2.0 */
/*
 * manifest.c - per-block checksum manifests of files, and replicas declared
 * suspicious by readers.
 *
 * A manifest is the adler32 of every CAT_MANIFEST_CHUNK (1 MiB) piece of a
 * file, in order (the last piece short).  It is recorded by whoever sees a
 * file's bytes whole (upload, the conveyor after a verified transfer, a
 * whole-file read through the mount, `add-replicas --walk`) and lets a reader
 * verify any range made of whole pieces before handing out a byte: the
 * mount's blocks (1-16 MiB, multiples of 1 MiB) and any other aligned range.
 * The pieces combine (adler32 concatenation) into the file's adler32, so a
 * manifest is accepted only when it is consistent with the DID's bytes and
 * adler32: that check, not the issuer, is what makes it trustworthy, so any
 * account may record one.  An existing manifest is never replaced (the bytes
 * of a Rucio file never change).
 *
 * Storage: table file_manifests(did_id PRIMARY KEY -> dids ON DELETE
 * CASCADE, chunk_size, bytes, sums BLOB of 4-byte big-endian adler32s,
 * created_at): 4 bytes per MiB, so 4 MiB for a 1 TiB file.
 *
 * Suspicious replicas (Rucio's bad_replicas, state S): a reader that found a
 * replica's bytes differ from the file's checksums records a SUSPICIOUS row
 * (reason, account) and, because a mismatch against a verified checksum is
 * proof rather than a transient error, marks the replica BAD at once (what
 * Rucio's replica-recoverer does after enough suspicious declarations): BAD
 * replicas are not listed as sources, so later readers skip it.
 */
#include "catalog_i.h"

#include <stdlib.h>
#include <string.h>

#define ADLER_MOD 65521u

uint32_t cat_adler32_concat(uint32_t a1, uint32_t a2, uint64_t len2)
{
	uint64_t s1 = a1 & 0xffffu, t1 = a1 >> 16, s2 = a2 & 0xffffu, t2 = a2 >> 16;
	uint64_t s = (s1 + s2 + ADLER_MOD - 1) % ADLER_MOD;
	uint64_t t = (t1 + t2 + (len2 % ADLER_MOD) * ((s1 + ADLER_MOD - 1) % ADLER_MOD)) % ADLER_MOD;

	return (uint32_t)(s | (t << 16));
}

size_t cat_manifest_count(uint64_t bytes)
{
	return bytes ? (size_t)((bytes - 1) / CAT_MANIFEST_CHUNK + 1) : 0;
}

void cat_manifest_free(struct cat_manifest *m)
{
	if (!m)
		return;
	free(m->sums);
	memset(m, 0, sizeof *m);
}

void cat_manifest_builder_init(struct cat_manifest_builder *b)
{
	memset(b, 0, sizeof *b);
	b->cur = DM_ADLER32_INIT;
}

void cat_manifest_builder_add(struct cat_manifest_builder *b, const void *p, size_t len)
{
	const unsigned char *s = p;

	while (len) {
		size_t room = CAT_MANIFEST_CHUNK - b->fill, n = len < room ? len : room;

		b->cur = dm_adler32_update(b->cur, s, n);
		b->fill += n;
		b->bytes += n;
		s += n;
		len -= n;
		if (b->fill == CAT_MANIFEST_CHUNK) {
			if (b->n == b->cap) {
				b->cap = b->cap ? b->cap * 2 : 16;
				b->sums = dm_xrealloc(b->sums, b->cap * sizeof *b->sums);
			}
			b->sums[b->n++] = b->cur;
			b->cur = DM_ADLER32_INIT;
			b->fill = 0;
		}
	}
}

void cat_manifest_builder_finish(struct cat_manifest_builder *b, struct cat_manifest *out)
{
	if (b->fill) {
		b->sums = dm_xrealloc(b->sums, (b->n + 1) * sizeof *b->sums);
		b->sums[b->n++] = b->cur;
	}
	out->bytes = b->bytes;
	out->chunk = CAT_MANIFEST_CHUNK;
	out->n = b->n;
	out->sums = b->sums;
	memset(b, 0, sizeof *b);
}

uint32_t cat_manifest_adler32(const struct cat_manifest *m)
{
	uint32_t a = DM_ADLER32_INIT;

	for (size_t i = 0; i < m->n; i++) {
		uint64_t len = i + 1 < m->n ? m->chunk : m->bytes - (uint64_t)i * m->chunk;

		a = cat_adler32_concat(a, m->sums[i], len);
	}
	return a;
}

int cat_manifest_covers(const struct cat_manifest *m, uint64_t off, uint64_t len)
{
	if (!m || !m->n || off % m->chunk || off > m->bytes || len > m->bytes - off)
		return 0;
	return (off + len) % m->chunk == 0 || off + len == m->bytes;
}

int cat_manifest_verify(const struct cat_manifest *m, uint64_t off, const void *buf, size_t len,
			uint64_t *bad_off)
{
	const unsigned char *p = buf;

	if (!cat_manifest_covers(m, off, len))
		return -1;
	for (size_t done = 0; done < len;) {
		size_t i = (size_t)((off + done) / m->chunk);
		size_t n = len - done < m->chunk ? len - done : m->chunk;

		if (dm_adler32_update(DM_ADLER32_INIT, p + done, n) != m->sums[i]) {
			if (bad_off)
				*bad_off = off + done;
			return 1;
		}
		done += n;
	}
	return 0;
}

enum dm_status cat_manifest_check(const struct cat_manifest *m, uint64_t bytes, const char *adler32,
				  struct dm_err *err)
{
	char got[9];

	if (!m || m->chunk != CAT_MANIFEST_CHUNK || m->n != cat_manifest_count(m->bytes) ||
	    (m->n && !m->sums))
		return dm_seterr(err, DM_EINVAL, "InputValidationError",
				 "a manifest needs one adler32 per %u bytes", CAT_MANIFEST_CHUNK);
	if (m->bytes != bytes)
		return dm_seterr(err, DM_ECONFLICT, "FileConsistencyMismatch",
				 "manifest covers %llu bytes, the file has %llu",
				 (unsigned long long)m->bytes, (unsigned long long)bytes);
	dm_adler32_hex(cat_manifest_adler32(m), got);
	if (adler32 && *adler32 && strcasecmp(got, adler32) != 0)
		return dm_seterr(err, DM_ECONFLICT, "FileConsistencyMismatch",
				 "manifest combines to adler32 %s, the file has %s", got, adler32);
	return DM_OK;
}

/* The DID id, bytes and adler32 of a file; DM_ENOENT if no such file. */
static enum dm_status file_row(struct cat_db *db, const char *scope, const char *name, int64_t *id,
			       uint64_t *bytes, char adler[9])
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT id, bytes, adler32 FROM dids WHERE scope=? AND name=?"
					" AND did_type='F'");
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, name, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		*id = sqldrv_col_int64(st, 0);
		*bytes = (uint64_t)sqldrv_col_int64(st, 1);
		dm_strlcpy(adler, cat_col_text(st, 2) ? cat_col_text(st, 2) : "", 9);
	}
	sqldrv_reset(st);
	if (r == SQLDRV_ROW)
		return DM_OK;
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "looking up a file");
	return cat_fail(db, DM_ENOENT, "DataIdentifierNotFound", "File '%s:%s' not found", scope,
			name);
}

enum dm_status cat_manifest_set(struct cat_db *db, const char *scope, const char *name,
				const struct cat_manifest *m)
{
	enum dm_status rc = cat_tx_begin(db);
	unsigned char *blob = NULL;
	uint64_t bytes = 0;
	int64_t id = 0;
	struct sqldrv_stmt *st;
	char adler[9];
	struct dm_err e = { 0 };

	if (rc)
		return rc;
	rc = file_row(db, scope, name, &id, &bytes, adler);
	if (rc)
		goto out;
	if (cat_manifest_check(m, bytes, adler, &e)) {
		rc = cat_fail(db, e.code, e.cls, "%s:%s: %s", scope, name, e.msg);
		goto out;
	}
	blob = dm_xmalloc(m->n * 4 + 1);
	for (size_t i = 0; i < m->n; i++) {
		blob[4 * i] = (unsigned char)(m->sums[i] >> 24);
		blob[4 * i + 1] = (unsigned char)(m->sums[i] >> 16);
		blob[4 * i + 2] = (unsigned char)(m->sums[i] >> 8);
		blob[4 * i + 3] = (unsigned char)m->sums[i];
	}
	st = cat_stmt(db, "INSERT INTO file_manifests(did_id, chunk_size, bytes, sums, created_at)"
			  " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, id);
	sqldrv_bind_int64(st, 2, m->chunk);
	sqldrv_bind_int64(st, 3, (int64_t)m->bytes);
	sqldrv_bind_blob(st, 4, blob, (int)(m->n * 4));
	sqldrv_bind_int64(st, 5, dm_now());
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "recording a manifest");
	sqldrv_reset(st);
out:
	free(blob);
	return cat_tx_end(db, rc);
}

enum dm_status cat_manifest_get(struct cat_db *db, const char *scope, const char *name,
				struct cat_manifest *out, int *found)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT m.chunk_size, m.bytes, m.sums FROM file_manifests m"
					" JOIN dids d ON d.id=m.did_id WHERE d.scope=? AND d.name=?");
	enum dm_status rc = DM_OK;
	int r;

	memset(out, 0, sizeof *out);
	*found = 0;
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, name, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		size_t nb = 0;
		const unsigned char *b = sqldrv_col_blob(st, 2, &nb);

		out->chunk = (uint32_t)sqldrv_col_int64(st, 0);
		out->bytes = (uint64_t)sqldrv_col_int64(st, 1);
		out->n = nb / 4;
		if (out->chunk != CAT_MANIFEST_CHUNK || nb % 4 ||
		    out->n != cat_manifest_count(out->bytes)) {
			/* unusable: treated as absent, the whole-file adler32 still holds */
			memset(out, 0, sizeof *out);
		} else {
			out->sums = dm_xmalloc(out->n * sizeof *out->sums + 1);
			for (size_t i = 0; i < out->n; i++)
				out->sums[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
					       (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
			*found = 1;
		}
	} else if (r != SQLDRV_DONE) {
		rc = cat_dberr(db, "reading a manifest");
	}
	sqldrv_reset(st);
	return rc;
}

enum dm_status cat_replica_declare_suspicious(struct cat_db *db, const char *rse,
					      const char *scope, const char *name,
					      const char *reason)
{
	enum dm_status rc = cat_tx_begin(db);
	uint64_t bytes;
	int64_t id = 0, num = 0;
	struct sqldrv_stmt *st;
	char adler[9];

	if (rc)
		return rc;
	rc = cat_rse_num(db, rse, &num);
	if (rc == DM_OK)
		rc = file_row(db, scope, name, &id, &bytes, adler);
	if (rc)
		goto out;
	st = cat_stmt(db, "UPDATE replicas SET state='D', updated_at=? WHERE did_id=? AND rse_num=?"
			  " AND state='A'");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, dm_now());
	sqldrv_bind_int64(st, 2, id);
	sqldrv_bind_int64(st, 3, num);
	if (sqldrv_step(st) != SQLDRV_DONE) {
		sqldrv_reset(st);
		rc = cat_dberr(db, "declaring a replica suspicious");
		goto out;
	}
	sqldrv_reset(st);
	if (sqldrv_changes(db->sql) == 0) {
		/* not AVAILABLE (already BAD, or gone): nothing to declare */
		st = cat_stmt(db, "SELECT 1 FROM replicas WHERE did_id=? AND rse_num=?");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_int64(st, 1, id);
		sqldrv_bind_int64(st, 2, num);
		if (sqldrv_step(st) != SQLDRV_ROW)
			rc = cat_fail(db, DM_ENOENT, "ReplicaNotFound",
				      "No replica of '%s:%s' on RSE '%s'", scope, name, rse);
		sqldrv_reset(st);
		goto out;
	}
	st = cat_stmt(db, "INSERT INTO bad_replicas(did_id, rse_num, reason, state, account, created_at)"
			  " VALUES (?,?,?,'S',?,?)");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, id);
	sqldrv_bind_int64(st, 2, num);
	sqldrv_bind_text(st, 3, reason ? reason : "", -1);
	sqldrv_bind_text(st, 4, cat_issuer(db), -1);
	sqldrv_bind_int64(st, 5, dm_now());
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "declaring a replica suspicious");
	sqldrv_reset(st);
	/* its locks go STUCK, as for an UNAVAILABLE replica: the judge-repairer
	 * then queues a new copy from a good replica (Rucio's necromancer) */
	if (rc == DM_OK)
		rc = cat_locks_on_replica_state(db, id, num, CAT_REPLICA_UNAVAILABLE);
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_replica_suspicious_count(struct cat_db *db, const char *rse, const char *scope,
					    const char *name, int64_t *count)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT count(*) FROM bad_replicas b JOIN dids d ON d.id=b.did_id"
					" JOIN rses r ON r.num=b.rse_num WHERE d.scope=? AND d.name=?"
					" AND r.rse=? AND b.state='S'");
	int r;

	*count = 0;
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, name, -1);
	sqldrv_bind_text(st, 3, rse, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW)
		*count = sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	return r == SQLDRV_ROW ? DM_OK : cat_dberr(db, "counting suspicious declarations");
}
