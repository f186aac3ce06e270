// SPDX-License-Identifier: Apache-2.0
/*
 * xrdcl_shim.cc - the extern "C" shim over XrdCl declared in xrdcl_shim.h,
 * and the only C++ in didfs.  It stays thin: each function is one XrdCl
 * call (or the small asynchronous pipeline of a streamed get/put) plus the
 * translation of XrdCl's status into an errno and a message.  No C++
 * exception or object crosses the boundary.
 *
 * Streamed get keeps `inflight` asynchronous reads outstanding in separate
 * buffers; XrdCl's own threads fill them while the caller's thread hands
 * completed chunks, in order, to the sink.  Put mirrors that with writes,
 * and opens with POSC (persist on successful close) so that an upload cut
 * short leaves no partial file behind.
 */
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <unistd.h>

#include "XProtocol/XProtocol.hh"
#include "XrdCl/XrdClCopyProcess.hh"
#include "XrdCl/XrdClDefaultEnv.hh"
#include "XrdCl/XrdClFile.hh"
#include "XrdCl/XrdClFileSystem.hh"
#include "XrdCl/XrdClPropertyList.hh"
#include "XrdCl/XrdClURL.hh"
#include "XrdCl/XrdClXRootDResponses.hh"

#include "xrdcl_shim.h"

using namespace XrdCl;

namespace {

int status_errno(const XRootDStatus &st)
{
	if (st.IsOK())
		return 0;
	switch (st.code) {
	case errErrorResponse: {
		int e = XProtocol::toErrno((int)st.errNo);

		// XRootD reports a read-only export as a generic FS error
		if (st.GetErrorMessage().find("read/only") != std::string::npos)
			return EROFS;
		switch (e) {
		case ENOENT: case EACCES: case EEXIST: case EISDIR: case ENOTSUP:
		case EINVAL: case ENAMETOOLONG: case ENOSPC: case EDQUOT: case EROFS:
		case ETIMEDOUT: case ENOMEM: case EHOSTUNREACH:
			return e;
		default:
			return EIO;
		}
	}
	case errOperationExpired:
	case errSocketTimeout:
		return ETIMEDOUT;
	case errConnectionError:
	case errSocketError:
	case errSocketDisconnected:
	case errStreamDisconnect:
	case errPollerError:
		return ECONNREFUSED;
	case errInvalidAddr:
		return EHOSTUNREACH;
	case errCheckSumError:
		return EBADMSG;
	case errNotSupported:
	case errNotImplemented:
	case errQueryNotSupported:
		return ENOTSUP;
	case errInvalidArgs:
	case errInvalidRedirectURL:
		return EINVAL;
	case errLoginFailed:
	case errAuthFailed:
		return EACCES;
	case errOSError:
		return st.errNo ? (int)st.errNo : EIO;
	default:
		return EIO;
	}
}

int fail(const XRootDStatus &st, const char *what, struct xrdcl_err *e)
{
	int err = status_errno(st);

	if (!err)
		err = EIO;
	if (e) {
		e->err = err;
		snprintf(e->msg, sizeof(e->msg), "%s: %s", what, st.ToStr().c_str());
	}
	return err;
}

int fail_msg(int err, struct xrdcl_err *e, const char *msg)
{
	if (e) {
		e->err = err;
		snprintf(e->msg, sizeof(e->msg), "%s", msg);
	}
	return err;
}

uint16_t tmo(int s)
{
	if (s <= 0)
		return 0; // XrdCl's default (RequestTimeout)
	return s > 65535 ? 65535 : (uint16_t)s;
}

// Path (with CGI) and a FileSystem on the URL's host; false if unparsable.
bool split(const char *url, URL &u, struct xrdcl_err *e)
{
	u.FromString(url);
	if (!u.IsValid()) {
		fail_msg(EINVAL, e, "not a valid root:// URL");
		return false;
	}
	return true;
}

const Access::Mode kFileMode = Access::UR | Access::UW | Access::GR | Access::OR;
const Access::Mode kDirMode = Access::UR | Access::UW | Access::UX | Access::GR | Access::GX |
			      Access::OR | Access::OX;

// One outstanding asynchronous request and its buffer.
struct Pipe;
struct Slot : public ResponseHandler {
	Pipe *p = nullptr;
	char *buf = nullptr;
	uint64_t off = 0;
	uint32_t want = 0;
	uint32_t got = 0;
	bool busy = false;
	bool done = false;
	XRootDStatus st;
	void HandleResponse(XRootDStatus *s, AnyObject *r) override;
};

struct Pipe {
	std::mutex m;
	std::condition_variable cv;
	int pending = 0;
};

void Slot::HandleResponse(XRootDStatus *s, AnyObject *r)
{
	XRootDStatus copy = s ? *s : XRootDStatus(stError, errInternal);
	uint32_t g = 0;

	if (copy.IsOK() && r) {
		ChunkInfo *ci = nullptr;

		r->Get(ci);
		if (ci)
			g = ci->GetLength();
	}
	delete s;
	delete r;
	std::lock_guard<std::mutex> lk(p->m);
	st = copy;
	got = g;
	done = true;
	p->pending--;
	p->cv.notify_all();
}

void wait_slot(Pipe &p, Slot &s)
{
	std::unique_lock<std::mutex> lk(p.m);
	p.cv.wait(lk, [&] { return !s.busy || s.done; });
}

void drain(Pipe &p)
{
	std::unique_lock<std::mutex> lk(p.m);
	p.cv.wait(lk, [&] { return p.pending == 0; });
}

} // namespace

struct xrdcl_file {
	File f;
};

extern "C" {

void xrdcl_setup(const struct xrdcl_setup *s)
{
	static std::once_flag once;

	std::call_once(once, [s] {
		Env *env = DefaultEnv::GetEnv();

		if (s->request_timeout_s > 0)
			env->PutInt("RequestTimeout", s->request_timeout_s);
		if (s->stream_timeout_s > 0)
			env->PutInt("StreamTimeout", s->stream_timeout_s);
		if (s->connect_timeout_s > 0) {
			env->PutInt("ConnectionWindow", s->connect_timeout_s);
			// after a stream failed, retry connecting this soon
			env->PutInt("StreamErrorWindow", s->connect_timeout_s);
		}
		if (s->connect_retry > 0)
			env->PutInt("ConnectionRetry", s->connect_retry);
		// check timeouts every second, not every 15
		env->PutInt("TimeoutResolution", 1);
		if (s->ca_dir && *s->ca_dir && !getenv("X509_CERT_DIR"))
			setenv("X509_CERT_DIR", s->ca_dir, 0);
	});
}

int xrdcl_stat(const char *url, int timeout_s, struct xrdcl_stat *st, struct xrdcl_err *e)
{
	URL u;
	StatInfo *si = nullptr;

	if (!split(url, u, e))
		return EINVAL;
	FileSystem fs(u);
	XRootDStatus s = fs.Stat(u.GetPathWithParams(), si, tmo(timeout_s));
	if (!s.IsOK()) {
		delete si;
		return fail(s, "stat", e);
	}
	st->size = si ? si->GetSize() : 0;
	st->is_dir = si ? si->TestFlags(StatInfo::IsDir) : 0;
	delete si;
	return 0;
}

int xrdcl_open_read(const char *url, int timeout_s, struct xrdcl_file **out, uint64_t *size,
		    struct xrdcl_err *e)
{
	struct xrdcl_file *f = new (std::nothrow) xrdcl_file;
	StatInfo *si = nullptr;

	*out = nullptr;
	if (!f)
		return fail_msg(ENOMEM, e, "out of memory");
	XRootDStatus s = f->f.Open(url, OpenFlags::Read, Access::None, tmo(timeout_s));
	if (!s.IsOK()) {
		delete f;
		return fail(s, "open", e);
	}
	s = f->f.Stat(false, si, tmo(timeout_s));
	if (!s.IsOK()) {
		delete si;
		XRootDStatus c = f->f.Close(tmo(timeout_s));
		(void)c;
		delete f;
		return fail(s, "stat after open", e);
	}
	if (si && si->TestFlags(StatInfo::IsDir)) {
		delete si;
		XRootDStatus c = f->f.Close(tmo(timeout_s));
		(void)c;
		delete f;
		return fail_msg(EISDIR, e, "is a directory");
	}
	if (size)
		*size = si ? si->GetSize() : 0;
	delete si;
	*out = f;
	return 0;
}

int xrdcl_pread(struct xrdcl_file *f, void *buf, size_t len, uint64_t off, int timeout_s,
		size_t *got, struct xrdcl_err *e)
{
	size_t done = 0;

	*got = 0;
	while (done < len) {
		size_t want = len - done;
		uint32_t n = 0;

		if (want > (64u << 20))
			want = 64u << 20;
		XRootDStatus s = f->f.Read(off + done, (uint32_t)want, (char *)buf + done, n,
					   tmo(timeout_s));
		if (!s.IsOK())
			return fail(s, "read", e);
		done += n;
		if (n < want)
			break; // end of file
	}
	*got = done;
	return 0;
}

int xrdcl_close(struct xrdcl_file *f, int timeout_s, struct xrdcl_err *e)
{
	int rc = 0;

	if (!f)
		return 0;
	if (f->f.IsOpen()) {
		XRootDStatus s = f->f.Close(tmo(timeout_s));
		if (!s.IsOK())
			rc = fail(s, "close", e);
	}
	delete f;
	return rc;
}

int xrdcl_get(const char *url, int open_timeout_s, int stall_s, size_t chunk, int inflight,
	      xrdcl_sink_fn sink, void *arg, uint64_t *bytes, struct xrdcl_err *e)
{
	File f;
	StatInfo *si = nullptr;
	uint64_t size, nchunks, total = 0;
	size_t nslots, bufsz;
	std::vector<Slot> slots;
	Pipe pipe;
	int rc = 0;

	if (bytes)
		*bytes = 0;
	XRootDStatus s = f.Open(url, OpenFlags::Read, Access::None, tmo(open_timeout_s));
	if (!s.IsOK())
		return fail(s, "open", e);
	s = f.Stat(false, si, tmo(open_timeout_s));
	if (!s.IsOK() || !si) {
		delete si;
		rc = fail(s, "stat after open", e);
		XRootDStatus c = f.Close(tmo(open_timeout_s));
		(void)c;
		return rc;
	}
	if (si->TestFlags(StatInfo::IsDir)) {
		delete si;
		XRootDStatus c = f.Close(tmo(open_timeout_s));
		(void)c;
		return fail_msg(EISDIR, e, "is a directory");
	}
	size = si->GetSize();
	delete si;
	if (chunk == 0)
		chunk = 8u << 20;
	if (inflight < 1)
		inflight = 1;
	nchunks = (size + chunk - 1) / chunk;
	nslots = nchunks < (uint64_t)inflight ? (size_t)nchunks : (size_t)inflight;
	bufsz = size < chunk ? (size_t)size : chunk;
	slots.resize(nslots);
	for (size_t i = 0; i < nslots; i++) {
		slots[i].p = &pipe;
		slots[i].buf = (char *)malloc(bufsz ? bufsz : 1);
		if (!slots[i].buf) {
			rc = fail_msg(ENOMEM, e, "out of memory for read buffers");
			goto out;
		}
	}

	{
		// issue chunk k into its slot
		auto issue = [&](uint64_t k) -> int {
			Slot &sl = slots[k % nslots];
			uint64_t off = k * chunk;
			uint64_t left = size - off;

			sl.off = off;
			sl.want = (uint32_t)(left < chunk ? left : chunk);
			sl.got = 0;
			sl.done = false;
			sl.busy = true;
			{
				std::lock_guard<std::mutex> lk(pipe.m);
				pipe.pending++;
			}
			XRootDStatus rs = f.Read(off, sl.want, sl.buf, &sl, tmo(stall_s));
			if (!rs.IsOK()) {
				std::lock_guard<std::mutex> lk(pipe.m);
				pipe.pending--;
				sl.busy = false;
				return fail(rs, "read", e);
			}
			return 0;
		};

		for (uint64_t k = 0; k < nslots && rc == 0; k++)
			rc = issue(k);
		for (uint64_t seq = 0; seq < nchunks && rc == 0; seq++) {
			Slot &sl = slots[seq % nslots];

			wait_slot(pipe, sl);
			sl.busy = false;
			if (!sl.st.IsOK()) {
				char what[64];

				snprintf(what, sizeof(what), "read at offset %llu",
					 (unsigned long long)sl.off);
				rc = fail(sl.st, what, e);
				break;
			}
			if (sl.got > 0) {
				int r = sink(arg, sl.buf, sl.got);

				if (r) {
					rc = r;
					break;
				}
				total += sl.got;
			}
			if (sl.got < sl.want) {
				char msg[128];

				snprintf(msg, sizeof(msg),
					 "short read at offset %llu: the file is shorter than its size %llu",
					 (unsigned long long)(sl.off + sl.got),
					 (unsigned long long)size);
				rc = fail_msg(EIO, e, msg);
				break;
			}
			if (seq + nslots < nchunks)
				rc = issue(seq + nslots);
		}
	}
out:
	drain(pipe);
	for (auto &sl : slots)
		free(sl.buf);
	if (f.IsOpen()) {
		// after a failure the server may be gone: do not wait long on it
		XRootDStatus c = f.Close(tmo(rc ? 1 : open_timeout_s));
		(void)c;
	}
	if (bytes)
		*bytes = total;
	return rc;
}

int xrdcl_put(const char *url, int fd, uint64_t size, int open_timeout_s, int stall_s,
	      size_t chunk, int inflight, struct xrdcl_err *e)
{
	File f;
	std::vector<Slot> slots;
	Pipe pipe;
	size_t nslots;
	uint64_t off = 0;
	int rc = 0;

	if (chunk == 0)
		chunk = 8u << 20;
	if (inflight < 1)
		inflight = 1;
	XRootDStatus s = f.Open(url, OpenFlags::Update | OpenFlags::Delete | OpenFlags::MakePath |
					     OpenFlags::POSC,
				kFileMode, tmo(open_timeout_s));
	if (!s.IsOK())
		return fail(s, "open for writing", e);
	{
		uint64_t nchunks = (size + chunk - 1) / chunk;

		nslots = nchunks < (uint64_t)inflight ? (size_t)nchunks : (size_t)inflight;
	}
	slots.resize(nslots);
	for (size_t i = 0; i < nslots; i++) {
		slots[i].p = &pipe;
		slots[i].buf = (char *)malloc(size < chunk ? (size_t)size : chunk);
		if (!slots[i].buf) {
			rc = fail_msg(ENOMEM, e, "out of memory for write buffers");
			goto out;
		}
	}
	for (uint64_t seq = 0; off < size; seq++) {
		Slot &sl = slots[seq % nslots];
		size_t want = size - off < chunk ? (size_t)(size - off) : chunk, have = 0;

		wait_slot(pipe, sl);
		if (sl.busy && !sl.st.IsOK()) {
			char what[64];

			snprintf(what, sizeof(what), "write at offset %llu", (unsigned long long)sl.off);
			rc = fail(sl.st, what, e);
			sl.busy = false;
			break;
		}
		sl.busy = false;
		while (have < want) {
			ssize_t r = pread(fd, sl.buf + have, want - have, (off_t)(off + have));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				char msg[160];

				snprintf(msg, sizeof(msg), "reading the local source at offset %llu: %s",
					 (unsigned long long)(off + have),
					 r < 0 ? strerror(errno) : "unexpected end of file");
				rc = fail_msg(EIO, e, msg);
				goto out;
			}
			have += (size_t)r;
		}
		sl.off = off;
		sl.want = (uint32_t)want;
		sl.done = false;
		sl.busy = true;
		{
			std::lock_guard<std::mutex> lk(pipe.m);
			pipe.pending++;
		}
		XRootDStatus ws = f.Write(off, (uint32_t)want, sl.buf, &sl, tmo(stall_s));
		if (!ws.IsOK()) {
			{
				std::lock_guard<std::mutex> lk(pipe.m);
				pipe.pending--;
			}
			sl.busy = false;
			rc = fail(ws, "write", e);
			goto out;
		}
		off += want;
	}
out:
	drain(pipe);
	if (rc == 0) {
		for (auto &sl : slots) {
			if (sl.busy && !sl.st.IsOK()) {
				char what[64];

				snprintf(what, sizeof(what), "write at offset %llu",
					 (unsigned long long)sl.off);
				rc = fail(sl.st, what, e);
				break;
			}
		}
	}
	for (auto &sl : slots)
		free(sl.buf);
	if (rc == 0) {
		XRootDStatus c = f.Close(tmo(stall_s > open_timeout_s ? stall_s : open_timeout_s));
		if (!c.IsOK())
			rc = fail(c, "close after writing", e);
	} else if (f.IsOpen()) {
		// POSC: a file not closed successfully is removed by the server;
		// make that explicit so nothing partial stays behind.
		URL u(url);
		FileSystem fs(u);
		XRootDStatus c = f.Close(tmo(1));
		(void)c;
		if (rc != ETIMEDOUT && rc != ECONNREFUSED) {
			XRootDStatus r = fs.Rm(u.GetPath(), tmo(open_timeout_s));
			(void)r;
		}
	}
	return rc;
}

int xrdcl_rm(const char *url, int timeout_s, struct xrdcl_err *e)
{
	URL u;

	if (!split(url, u, e))
		return EINVAL;
	FileSystem fs(u);
	XRootDStatus s = fs.Rm(u.GetPathWithParams(), tmo(timeout_s));
	if (!s.IsOK())
		return fail(s, "rm", e);
	return 0;
}

int xrdcl_mkdir_p(const char *url, int timeout_s, struct xrdcl_err *e)
{
	URL u;

	if (!split(url, u, e))
		return EINVAL;
	FileSystem fs(u);
	XRootDStatus s = fs.MkDir(u.GetPathWithParams(), MkDirFlags::MakePath, kDirMode,
				  tmo(timeout_s));
	if (!s.IsOK()) {
		// an existing directory is success
		StatInfo *si = nullptr;
		XRootDStatus t = fs.Stat(u.GetPath(), si, tmo(timeout_s));
		bool isdir = t.IsOK() && si && si->TestFlags(StatInfo::IsDir);

		delete si;
		if (!isdir)
			return fail(s, "mkdir", e);
	}
	return 0;
}

int xrdcl_mv(const char *from, const char *to, int timeout_s, struct xrdcl_err *e)
{
	URL fu, tu;

	if (!split(from, fu, e) || !split(to, tu, e))
		return EINVAL;
	FileSystem fs(fu);
	XRootDStatus s = fs.Mv(fu.GetPath(), tu.GetPath(), tmo(timeout_s));
	if (!s.IsOK() && status_errno(s) == ENOENT) {
		// maybe the target's directory is missing: make it and retry
		StatInfo *si = nullptr;
		XRootDStatus t = fs.Stat(fu.GetPath(), si, tmo(timeout_s));
		delete si;
		std::string dir = tu.GetPath();
		size_t slash = dir.find_last_of('/');

		if (t.IsOK() && slash != std::string::npos && slash > 0) {
			dir.resize(slash);
			XRootDStatus m = fs.MkDir(dir, MkDirFlags::MakePath, kDirMode,
						  tmo(timeout_s));
			if (m.IsOK())
				s = fs.Mv(fu.GetPath(), tu.GetPath(), tmo(timeout_s));
		}
	}
	if (!s.IsOK())
		return fail(s, "mv", e);
	return 0;
}

int xrdcl_checksum(const char *url, const char *type, char *out, size_t outlen, int timeout_s,
		   struct xrdcl_err *e)
{
	URL u;
	Buffer arg, *resp = nullptr;
	std::string q;

	if (!split(url, u, e))
		return EINVAL;
	q = u.GetPath();
	if (strcmp(type, "adler32") != 0)
		q += std::string("?cks.type=") + type;
	arg.FromString(q);
	FileSystem fs(u);
	XRootDStatus s = fs.Query(QueryCode::Checksum, arg, resp, tmo(timeout_s));
	if (!s.IsOK()) {
		delete resp;
		return fail(s, "checksum query", e);
	}
	std::string r = resp ? resp->ToString() : std::string();
	delete resp;
	// "adler32 f3b35be6" (possibly NUL-terminated)
	r = r.c_str();
	size_t sp = r.find(' ');
	if (sp == std::string::npos) {
		std::string m = "unexpected checksum response '" + r + "'";
		return fail_msg(EIO, e, m.c_str());
	}
	std::string name = r.substr(0, sp), val = r.substr(sp + 1);
	while (!val.empty() && (val.back() == '\n' || val.back() == ' ' || val.back() == '\r'))
		val.pop_back();
	if (strcasecmp(name.c_str(), type) != 0) {
		std::string m = "server answered with a " + name + " checksum, not " + type;
		return fail_msg(ENOTSUP, e, m.c_str());
	}
	if (val.empty() || val.size() + 1 > outlen) {
		std::string m = "bad checksum value '" + val + "'";
		return fail_msg(EIO, e, m.c_str());
	}
	for (size_t i = 0; i < val.size(); i++) {
		char c = val[i];

		out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	out[val.size()] = 0;
	return 0;
}

int xrdcl_tpc(const char *src, const char *dst, int init_timeout_s, int tpc_timeout_s,
	      int verify, struct xrdcl_err *e)
{
	CopyProcess cp;
	PropertyList props, results;

	props.Set("source", std::string(src));
	props.Set("target", std::string(dst));
	props.Set("thirdParty", std::string("only"));
	props.Set("force", true);
	props.Set("makeDir", true);
	props.Set("posc", true);
	if (verify) {
		props.Set("checkSumMode", std::string("end2end"));
		props.Set("checkSumType", std::string("adler32"));
	}
	props.Set("initTimeout", tmo(init_timeout_s));
	props.Set("tpcTimeout", tmo(tpc_timeout_s));
	XRootDStatus s = cp.AddJob(props, &results);
	if (!s.IsOK())
		return fail(s, "third-party copy setup", e);
	s = cp.Prepare();
	if (!s.IsOK())
		return fail(s, "third-party copy prepare", e);
	s = cp.Run(nullptr);
	XRootDStatus js;
	if (results.Get("status", js) && !js.IsOK())
		return fail(js, "third-party copy", e);
	if (!s.IsOK())
		return fail(s, "third-party copy", e);
	return 0;
}

} // extern "C"
