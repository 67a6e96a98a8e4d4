"""
remote.py - mcache.remote.Client: a host's mcache registry and cache over
mcache-serve's REST API (docs/http.md), from any machine, standard library only.

    from mcache.remote import Client

    c = Client("https://models.example:8420", token="mct_...", cafile="ca.pem")
    c.push("vision/resnet", "1.2.0", "resnet.safetensors", framework="torch",
           metrics={"acc": 0.93}, progress=lambda done, total: print(done, total))
    c.set_alias("vision/resnet", "production", "1.1.0=90 1.2.0=10", why="canary")
    c.download("vision/resnet", "production", "/tmp/resnet.safetensors")

Unlike mcache.attach(), nothing here touches shared memory: bytes travel over
HTTP, so a client can run anywhere the server can be reached.

STREAMING. push() sends the file in chunks (sendfile where the socket allows
it) with its Content-Length, never holding it whole; download() writes the
body in chunks. Both run in constant memory whatever the size. push() sends
`Expect: 100-continue` and waits (up to 5 s) for the server's go-ahead, so a
refusal (the version exists, a bad token, a weak role) comes back before any
byte of the file is sent.

RESUMING. download() writes to DEST.part and keeps the artifact's ETag (its
checksum) in DEST.part.etag until the file is complete, then renames it to
DEST. A later download() of the same thing continues from where the partial
file stops (a Range request), but only if the server's ETag is still the one
the partial file came from: if the ref now names other bytes (an alias moved),
it starts again from the first byte. The checksum is not recomputed here
(xxh3 is not in the standard library); the server computed it, and its ETag
names it.

ERRORS. A failed request raises an mcache.Error subclass (the package's
exceptions, plus the HTTP-only ones defined here) whose text is the server's
message (the thing, the value, what to do), with:
  .status      the HTTP status (None when no answer came)
  .error_code  the server's stable code ("not_found", "conflict", ...) or None
  .reason      the same as error_code (for the libmcache exceptions it is
               mc_strerror's name; here the server's code says it)
  .code        the MC_E* code it corresponds to (mcache.errors.ENOENT ...) or None
  .method, .url  the request
The mapping: 404 NotFoundError, 401 UnauthorizedError, 403
PermissionDeniedError, 409 ConflictError (exists, busy), 400/411/413/415/416
and 422 "checksum_mismatch" BadRequestError, 422 "corrupt" CorruptError, 422
"load_failed" LoadFailedError, 503 "no_daemon" NoDaemonError, 504 and client
time-outs TimedOutError; no connection at all, or an answer that is not HTTP,
UnreachableError. Anything else is mcache.Error.

THREADS. Each request opens its own connection, so one Client may be used
from any number of threads at once.
"""

from __future__ import annotations

import errno
import http.client
import io
import json
import os
import select
import socket
import ssl
import urllib.parse
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import __version__
from . import errors as _e
from .errors import (
    Error,
    LoadFailedError,
    NoDaemonError,
    NotFoundError,
    PermissionDeniedError,
    TimedOutError,
)

__all__ = [
    "Client",
    "Error",
    "BadRequestError",
    "ConflictError",
    "CorruptError",
    "LoadFailedError",
    "NoDaemonError",
    "NotFoundError",
    "PermissionDeniedError",
    "TimedOutError",
    "UnauthorizedError",
    "UnreachableError",
]

JSON = Dict[str, Any]
Progress = Callable[[int, int], Any]
PathLike = Union[str, "os.PathLike[str]"]

_USER_AGENT = "mcache-python-remote/" + __version__
_CHUNK = 4 << 20  # bytes per piece of an upload or download (and between progress calls)
_CONTINUE_WAIT = 5.0  # seconds push() waits for "100 Continue" before sending anyway


# ---- exceptions -----------------------------------------------------------


class UnauthorizedError(Error, PermissionError):
    """HTTP 401: no token where one is required, or a token the server does
    not know (mistyped, removed). Distinct from PermissionDeniedError (403),
    which means the token is valid but its role is too weak."""


class ConflictError(Error):
    """HTTP 409: the thing exists already (a re-push of a version: .reason
    "conflict") or is in use (.reason "busy": a version an alias points at,
    a rollout in progress)."""


class BadRequestError(Error, ValueError):
    """HTTP 400 and its kin (411, 413, 415, 416, 422 "checksum_mismatch"): the
    request was refused as malformed: a bad name or version, an unknown
    field, a body too large, an upload whose checksum did not match."""


class CorruptError(Error):
    """HTTP 422 "corrupt": stored bytes do not match their checksum."""


class UnreachableError(Error, ConnectionError):
    """No answer from the server: the connection was refused, dropped, or
    TLS failed (the message says which and what to check); or what answered
    does not speak HTTP."""


# The server's stable error codes (serve/http.h, reply_mc_error) to our
# exceptions and the MC_E* codes they stand for.
_BY_ERROR_CODE = {
    "bad_request": (BadRequestError, _e.EINVAL),
    "bad_json": (BadRequestError, _e.EINVAL),
    "unknown_field": (BadRequestError, _e.EINVAL),
    "unprocessable": (BadRequestError, _e.EINVAL),
    "checksum_mismatch": (BadRequestError, _e.ECORRUPT),
    "range_not_satisfiable": (BadRequestError, _e.EINVAL),
    "too_large": (BadRequestError, _e.EINVAL),
    "unsupported_media_type": (BadRequestError, _e.EINVAL),
    "unauthorized": (UnauthorizedError, None),
    "forbidden": (PermissionDeniedError, _e.EPERM),
    "not_found": (NotFoundError, _e.ENOENT),
    "conflict": (ConflictError, _e.EEXIST),
    "busy": (ConflictError, _e.EBUSY),
    "corrupt": (CorruptError, _e.ECORRUPT),
    "load_failed": (LoadFailedError, _e.EFAILED),
    "no_daemon": (NoDaemonError, _e.ENODAEMON),
    "timeout": (TimedOutError, _e.ETIMEDOUT),
    "no_space": (Error, _e.ENOSPC),
}
# When the body is not the server's error object (a proxy answered, say).
_BY_STATUS = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    411: BadRequestError,
    413: BadRequestError,
    415: BadRequestError,
    416: BadRequestError,
    422: BadRequestError,
    504: TimedOutError,
}


def _error(cls, message, *, code=None, error_code=None, status=None, method=None, url=None):
    e = cls(message, code, error_code)
    e.status = status
    e.error_code = error_code
    e.method = method
    e.url = url
    return e


# ---- helpers --------------------------------------------------------------


def _seg(value: str, what: str) -> str:
    """One path segment: percent-encoded whole, '/' included ("org/llama" is org%2Fllama)."""
    if not isinstance(value, str):
        raise TypeError("mcache.remote: %s must be a str, not %s" % (what, type(value).__name__))
    if value == "":
        raise ValueError("mcache.remote: %s is empty; give one" % what)
    return urllib.parse.quote(value, safe="")


def _targets_text(targets: Union[str, Mapping[str, Any]]) -> Union[str, JSON]:
    if isinstance(targets, str):
        return targets
    if isinstance(targets, Mapping):
        return {str(k): v for k, v in targets.items()}
    raise TypeError("mcache.remote: targets must be a str (\"1.0.0\", \"1.0.0=90 2.0.0=10\") "
                    "or a dict {version: weight}, not %s" % type(targets).__name__)


def _unwrap(obj: Any, key: str) -> Any:
    """obj[key] when the answer wraps a list in an object ({"versions": [...]})."""
    if isinstance(obj, dict) and isinstance(obj.get(key), list):
        return obj[key]
    return obj


class _Replay(io.RawIOBase):
    """A status line already read, then the rest of a buffered reader: what
    http.client.HTTPResponse parses a final answer from, when push() read its
    first line to tell it from a "100 Continue"."""

    def __init__(self, first: bytes, fp):
        self._first = first
        self._fp = fp

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._first:
            n = min(len(b), len(self._first))
            b[:n] = self._first[:n]
            self._first = self._first[n:]
            return n
        data = self._fp.read1(len(b))  # at most one read: never waits for more than is there
        b[:len(data)] = data
        return len(data)


class _ReplaySock:
    """What HTTPResponse wants of a socket (makefile), over a _Replay."""

    def __init__(self, first: bytes, fp):
        self._reader = io.BufferedReader(_Replay(first, fp))

    def makefile(self, mode, *args, **kwargs):
        return self._reader


def _readable(sock, wait: float) -> bool:
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    r, _, _ = select.select([sock], [], [], wait)
    return bool(r)


# ---- the client -----------------------------------------------------------


class Client:
    """A connection to mcache-serve at `url` ("http://host:8420",
    "https://host", with a path prefix if a proxy serves it under one).

    token:   a bearer token ("mct_..."), sent as `Authorization: Bearer`; None
             for open access (the server's loopback default).
    timeout: seconds any one network operation may wait (connect, a read, a
             write); a request that takes longer overall is fine as long as
             bytes keep moving.
    cafile:  a PEM file of the CA(s) that signed an https server's
             certificate (a self-signed one: the certificate itself); None
             uses the system's store.
    """

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 30,
                 cafile: Optional[PathLike] = None):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("mcache.remote: url %r is not an http:// or https:// URL with a host; "
                             "give one like http://127.0.0.1:8420" % (url,))
        if parts.query or parts.fragment:
            raise ValueError("mcache.remote: url %r has a query or fragment; give the server's "
                             "base URL only (e.g. https://host:8420/mcache)" % (url,))
        if token is not None and (not isinstance(token, str) or not token
                                  or any(c in token for c in "\r\n")):
            raise ValueError("mcache.remote: token must be a non-empty one-line str "
                             "(as `mcache token add` printed it)")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = float(timeout)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._ctx = None
        if self._https:
            self._ctx = ssl.create_default_context(cafile=os.fspath(cafile) if cafile else None)
        elif cafile is not None:
            raise ValueError("mcache.remote: cafile is given but url %r is not https://" % (url,))

    def __repr__(self) -> str:
        return "<mcache.remote.Client %s%s>" % (self.url, " with a token" if self.token else "")

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def close(self) -> None:
        """Nothing to release (each request has its own connection); for symmetry."""

    # ---- plumbing ----

    def _path(self, *segments: str, query: Optional[Mapping[str, Any]] = None) -> str:
        path = self._prefix + "/" + "/".join(segments)
        if query:
            items = []
            for k, v in query.items():
                if v is None or v is False:
                    continue
                if v is True:
                    v = "true"
                for one in (v if isinstance(v, (list, tuple)) else [v]):
                    items.append((k, str(one)))
            if items:
                path += "?" + urllib.parse.urlencode(items, quote_via=urllib.parse.quote)
        return path

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                               context=self._ctx)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        return conn

    def _headers(self, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        h = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if extra:
            h.update(extra)
        return h

    def _net_error(self, exc: BaseException, method: str, path: str, during: str = "") -> Error:
        """An OSError from the socket as one of our exceptions."""
        url = self.url + path[len(self._prefix):]
        where = "%s %s" % (method, url)
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return _error(TimedOutError, "mcache.remote: %s: no answer within %g s%s (the timeout; "
                          "pass a larger timeout= to Client for slow links)"
                          % (where, self.timeout, during), code=_e.ETIMEDOUT, method=method,
                          url=url)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return _error(UnreachableError, "mcache.remote: %s: the server's TLS certificate was "
                          "refused (%s); pass cafile= the CA that signed it (or the self-signed "
                          "certificate itself)" % (where, exc.verify_message or exc), method=method,
                          url=url)
        if isinstance(exc, ssl.SSLError):
            return _error(UnreachableError, "mcache.remote: %s: TLS failed (%s); is the server "
                          "really https:// at that port?" % (where, exc), method=method, url=url)
        if isinstance(exc, http.client.RemoteDisconnected):
            return _error(UnreachableError, "mcache.remote: %s: the server closed the connection "
                          "without answering%s; its log may say why" % (where, during),
                          method=method, url=url)
        if isinstance(exc, http.client.HTTPException):
            return _error(UnreachableError, "mcache.remote: %s: the answer is not HTTP (%s: %s); "
                          "is %s an mcache-serve (and http:// vs https:// right)?"
                          % (where, type(exc).__name__, exc, self.url), method=method, url=url)
        if isinstance(exc, ConnectionRefusedError):
            return _error(UnreachableError, "mcache.remote: %s: connection refused; is "
                          "mcache-serve running at %s (see its --listen)?"
                          % (where, self.url), method=method, url=url)
        if isinstance(exc, socket.gaierror):
            return _error(UnreachableError, "mcache.remote: %s: cannot resolve host %r (%s); check "
                          "the URL" % (where, self._host, exc.strerror), method=method, url=url)
        return _error(UnreachableError, "mcache.remote: %s: %s%s" % (where, exc, during),
                      method=method, url=url)

    def _http_error(self, method: str, path: str, resp: http.client.HTTPResponse,
                    data: bytes) -> Error:
        url = self.url + path[len(self._prefix):]
        status = resp.status
        code = message = None
        try:
            err = json.loads(data.decode("utf-8")).get("error")
            if isinstance(err, dict):
                code = err.get("code") if isinstance(err.get("code"), str) else None
                message = err.get("message") if isinstance(err.get("message"), str) else None
        except (ValueError, AttributeError, UnicodeDecodeError):
            pass
        if code in _BY_ERROR_CODE:
            cls, mc = _BY_ERROR_CODE[code]
        else:
            cls, mc = _BY_STATUS.get(status, Error), None
        if not message:
            text = data[:300].decode("utf-8", "replace").strip()
            message = "mcache.remote: %s %s: HTTP %d %s%s" % (method, url, status, resp.reason,
                                                             (": " + text) if text else "")
        return _error(cls, message, code=mc, error_code=code, status=status, method=method,
                      url=url)

    def _request(self, method: str, path: str, body: Any = None,
                 headers: Optional[Mapping[str, str]] = None,
                 ok: Iterable[int] = (200, 201)) -> Tuple[int, http.client.HTTPMessage, bytes]:
        """One request with a small body (JSON object, or bytes); the whole answer.
        A status outside `ok` raises."""
        h = self._headers(headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8") if not isinstance(body, bytes) else body
            h.setdefault("Content-Type", "application/json")
        elif method not in ("GET", "HEAD"):
            h.setdefault("Content-Type", "application/json")  # mcache-serve asks it of changes
        conn = self._connect()
        try:
            try:
                conn.request(method, path, body=data, headers=h)
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                raise self._net_error(exc, method, path) from exc
            if resp.status not in ok:
                raise self._http_error(method, path, resp, payload)
            return resp.status, resp.headers, payload
        finally:
            conn.close()

    def _json(self, method: str, path: str, body: Any = None, ok: Iterable[int] = (200, 201)) -> Any:
        _, _, payload = self._request(method, path, body, ok=ok)
        if not payload:
            return None
        try:
            return json.loads(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            url = self.url + path[len(self._prefix):]
            raise _error(UnreachableError, "mcache.remote: %s %s: the answer is not JSON (%s); is "
                         "%s an mcache-serve?" % (method, url, exc, self.url), method=method,
                         url=url) from exc

    def _get(self, *segments: str, query: Optional[Mapping[str, Any]] = None) -> Any:
        return self._json("GET", self._path(*segments, query=query))

    def _model(self, name: str) -> Tuple[str, str, str]:
        return ("v1", "models", _seg(name, "model name"))

    # ---- open routes ----

    def health(self) -> JSON:
        """GET /healthz: {"ok": true, "version": ...}; raises if the server is not up."""
        return self._get("healthz")

    def ready(self) -> JSON:
        """GET /readyz: {"ready": bool, "checks": {"registry", "arena", "mcached": "ok" or why}}.
        A server that is up but not ready (503) is answered, not raised."""
        path = self._path("readyz")
        _, _, payload = self._request("GET", path, ok=(200, 503))
        return json.loads(payload.decode("utf-8"))

    def openapi(self) -> JSON:
        """GET /v1/openapi.json: the API's OpenAPI 3 document."""
        return self._get("v1", "openapi.json")

    def metrics(self) -> str:
        """GET /metrics: the Prometheus text exposition (0.0.4), as a str."""
        _, _, payload = self._request("GET", self._path("metrics"),
                                      headers={"Accept": "text/plain"})
        return payload.decode("utf-8")

    # ---- models and versions (reader) ----

    def models(self, pattern: Optional[str] = None,
               tag: Union[None, str, Mapping[str, str], Iterable[str]] = None,
               metric: Union[None, str, Iterable[str]] = None, ref: Optional[str] = None,
               status: Union[None, str, Iterable[str]] = None, order: Optional[str] = None,
               limit: Optional[int] = None) -> List[JSON]:
        """GET /v1/models, as `mcache ls`'s search.

        pattern: a glob on names ("vision/*"). Without a version filter the
        answer is one summary per model: {"name", "versions": N, "latest",
        "aliases": {alias: targets}}. With a version filter it is the matching
        versions (Version objects, as `mcache ls --json`): tag ("k=v", or
        {k: v, ...}: all must match), metric ("acc>0.9", or several), ref
        (a version, alias, latest or range), status ("ready", "failed",
        "archived", "registering", or several). order: "version" (default),
        "time", "version-asc", "time-asc"; limit: at most this many."""
        if isinstance(tag, Mapping):
            tag = ["%s=%s" % (k, v) for k, v in tag.items()]
        q = {"pattern": pattern, "tag": tag, "metric": metric, "ref": ref, "status": status,
             "order": order, "limit": limit}
        for key in ("tag", "metric", "status"):  # several: the server splits on commas
            if q[key] is not None and not isinstance(q[key], str):
                q[key] = ",".join(str(x) for x in q[key])
        ans = self._get("v1", "models", query=q)
        if isinstance(ans, dict):
            for key in ("models", "versions"):
                if isinstance(ans.get(key), list):
                    return ans[key]
        return ans

    def model(self, name: str) -> JSON:
        """GET /v1/models/{name}: as `mcache show NAME --json` (versions, aliases, history)."""
        return self._get(*self._model(name))

    def versions(self, name: str) -> List[JSON]:
        """GET /v1/models/{name}/versions: its Version objects."""
        return _unwrap(self._get(*self._model(name), "versions"), "versions")

    def version(self, name: str, ref: str = "latest") -> JSON:
        """GET /v1/models/{name}/versions/{ref}: one Version; ref is an exact version,
        an alias, "latest" or a range ("^1.2")."""
        return self._get(*self._model(name), "versions", _seg(ref, "ref"))

    def aliases(self, name: str) -> List[JSON]:
        """GET /v1/models/{name}/aliases: each alias with its targets and weights."""
        return _unwrap(self._get(*self._model(name), "aliases"), "aliases")

    def history(self, name: str, alias: str) -> List[JSON]:
        """GET /v1/models/{name}/aliases/{alias}/history: the alias's moves, oldest
        first ({"alias", "action", "from", "to", "at", "uid", "generation", "why"?})."""
        return _unwrap(self._get(*self._model(name), "aliases", _seg(alias, "alias"), "history"),
                       "moves")

    # ---- push and download ----

    def push(self, name: str, version: str, path: PathLike, *,
             description: Optional[str] = None, framework: Optional[str] = None,
             precision: Optional[str] = None, device: Optional[str] = None,
             parent: Optional[str] = None, source: Optional[str] = None,
             metrics: Optional[Mapping[str, float]] = None,
             params: Optional[Mapping[str, str]] = None,
             tags: Optional[Mapping[str, str]] = None, preload: Optional[bool] = None,
             pin: Optional[bool] = None, aliases: Optional[Iterable[str]] = None,
             checksum: Optional[str] = None, progress: Optional[Progress] = None,
             chunk_size: int = _CHUNK) -> JSON:
        """PUT /v1/models/{name}/versions/{version}: register the file at `path`
        as name@version, with its metadata (as `mcache push`'s options; None
        leaves a field unset). Returns the new Version.

        The file is streamed (never read whole) with its Content-Length; the
        server checksums it as it arrives and registers it atomically: if
        anything fails, or the upload is cut, nothing is registered. checksum
        ("xxh3-128:<32 hex>"), if you know it, makes the server refuse bytes
        that differ (BadRequestError, nothing registered).
        progress(done, total) is called with bytes sent, at the start, after
        every chunk_size bytes and at the end; an exception it raises stops
        the upload (nothing is registered) and propagates."""
        meta: JSON = {}
        for key, val in (("description", description), ("framework", framework),
                         ("precision", precision), ("device", device), ("parent", parent),
                         ("source", source), ("preload", preload), ("pin", pin)):
            if val is not None:
                meta[key] = val
        for key, val in (("metrics", metrics), ("params", params), ("tags", tags)):
            if val is not None:
                meta[key] = dict(val)
        if aliases is not None:
            if isinstance(aliases, str):
                aliases = [aliases]
            meta["aliases"] = list(aliases)
        if chunk_size < 1:
            raise ValueError("mcache.remote: chunk_size must be at least 1 byte")
        url_path = self._path(*self._model(name), "versions", _seg(version, "version"))
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            headers = self._headers({
                "Content-Type": "application/octet-stream",
                "Content-Length": str(total),
                "Mcache-Meta": json.dumps(meta, separators=(",", ":")),  # ASCII: \u escapes
                "Expect": "100-continue",
            })
            if checksum:
                headers["Mcache-Checksum"] = checksum
            resp, payload = self._upload("PUT", url_path, headers, f, total, progress, chunk_size)
        if resp.status not in (200, 201):
            raise self._http_error("PUT", url_path, resp, payload)
        try:
            ans = json.loads(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(UnreachableError, "mcache.remote: PUT %s: the answer is not JSON (%s)"
                         % (url_path, exc), method="PUT", url=url_path) from exc
        if isinstance(ans, dict) and isinstance(ans.get("version"), dict):
            return ans["version"]
        return ans

    def _upload(self, method, path, headers, f, total, progress, chunk_size):
        """Send headers, wait for 100 Continue (or an early refusal), stream f.
        Returns (response, body bytes)."""
        conn = self._connect()
        fp = None
        try:
            try:
                conn.putrequest(method, path, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders()
                sock = conn.sock
                fp = sock.makefile("rb")
                # Wait for the go-ahead: a refusal (409, 401, 403, 413...) arrives
                # instead, before we send a byte. No answer in time (a proxy that
                # drops the expectation): send anyway, as RFC 9110 says.
                if _readable(sock, min(self.timeout, _CONTINUE_WAIT)):
                    status, line = self._status_line(fp)
                    if status != 100:
                        return self._read_response(fp, method, line)
            except (OSError, http.client.HTTPException) as exc:
                raise self._net_error(exc, method, path) from exc
            done = 0
            if progress:
                progress(0, total)
            while done < total:
                n = min(chunk_size, total - done)
                try:
                    sent = sock.sendfile(f, offset=done, count=n)
                except OSError as exc:
                    # The server may have answered and closed (a body too large, a
                    # full disk): its answer says more than EPIPE.
                    if exc.errno in (errno.EPIPE, errno.ECONNRESET) and _readable(sock, 1.0):
                        break
                    raise self._net_error(exc, method, path,
                                          " after %d of %d bytes" % (done, total)) from exc
                if sent == 0:
                    raise _error(Error, "mcache.remote: %s %s: %s shrank while being sent (%d of "
                                 "%d bytes); push a file nobody is writing"
                                 % (method, path, getattr(f, "name", "the file"), done, total),
                                 method=method, url=path)
                done += sent
                if progress:
                    progress(done, total)
                if done < total and _readable(sock, 0):
                    # A late 100 Continue (we stopped waiting for it), or a refusal
                    # before the end (a body too large, a full disk).
                    try:
                        status, line = self._status_line(fp)
                        if status != 100:
                            return self._read_response(fp, method, line)
                    except (OSError, http.client.HTTPException) as exc:
                        raise self._net_error(exc, method, path, " after %d of %d bytes"
                                              % (done, total)) from exc
            try:
                return self._read_response(fp, method)
            except (OSError, http.client.HTTPException) as exc:
                raise self._net_error(exc, method, path,
                                      " after sending %d of %d bytes" % (done, total)) from exc
        finally:
            if fp is not None:
                fp.close()  # the socket's last reference: makefile() keeps it open
            conn.close()

    @staticmethod
    def _status_line(fp) -> Tuple[int, bytes]:
        """Read an answer's status line. A "100 Continue" is consumed whole (its
        blank line too): (100, b""). A final answer's line is returned for
        _read_response: (0, line)."""
        line = fp.readline(65537)
        if not line:
            raise http.client.RemoteDisconnected("closed")
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1] == b"100":
            while True:
                header = fp.readline(65537)
                if not header:
                    raise http.client.RemoteDisconnected("closed")
                if header in (b"\r\n", b"\n"):
                    return 100, b""
        return 0, line

    @staticmethod
    def _read_response(fp, method: str, first: bytes = b""):
        """The final answer (skipping any 100 Continue), its body read whole."""
        resp = http.client.HTTPResponse(_ReplaySock(first, fp), method=method)
        resp.begin()
        payload = resp.read()
        return resp, payload

    def download(self, name: str, ref: str, dest_path: PathLike,
                 progress: Optional[Progress] = None, resume: bool = True,
                 chunk_size: int = _CHUNK) -> JSON:
        """GET /v1/models/{name}/versions/{ref}/artifact into dest_path.

        Written to DEST.part, renamed to dest_path when complete (so dest_path
        is never a partial file). With resume=True a partial file left by an
        earlier download that failed or was interrupted is continued (a Range
        request), but only if the artifact's ETag is unchanged; otherwise it
        starts again. resume=False starts from the first byte and removes the
        partial file if this one fails.
        progress(done, total) as push()'s (done counts resumed bytes).
        Returns {"path", "size", "checksum", "etag", "source" ("arena",
        "store" or "remote": the object store), "resumed_from" (bytes
        already there)}."""
        dest = os.fspath(dest_path)
        part, tagfile = dest + ".part", dest + ".part.etag"
        url_path = self._path(*self._model(name), "versions", _seg(ref, "ref"), "artifact")
        offset, etag = 0, None
        if resume:
            try:
                with open(tagfile, encoding="ascii") as t:
                    etag = t.read().strip() or None
                offset = os.stat(part).st_size if etag else 0
            except (OSError, ValueError):
                offset, etag = 0, None
        else:
            for p in (part, tagfile):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
        for _ in range(2):
            result = self._download_once(url_path, dest, part, tagfile, offset, etag, progress,
                                         resume, chunk_size)
            if result is not None:
                return result
            offset, etag = 0, None  # the partial file is not of these bytes: start again
        raise _error(Error, "mcache.remote: GET %s: the artifact kept changing while it was "
                     "downloaded; try again" % url_path, method="GET", url=url_path)

    def _download_once(self, path, dest, part, tagfile, offset, etag, progress, resume,
                       chunk_size) -> Optional[JSON]:
        """One GET; None when the partial file must be dropped and the download restarted."""
        extra = {"Accept": "application/octet-stream"}
        if offset > 0 and etag:
            extra["Range"] = "bytes=%d-" % offset
            extra["If-Range"] = etag  # a server that knows it answers 200 if changed
        conn = self._connect()
        try:
            try:
                conn.request("GET", path, headers=self._headers(extra))
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise self._net_error(exc, "GET", path) from exc
            got_etag = resp.getheader("ETag")
            if resp.status == 416 and offset > 0:
                # The partial file is as long as the artifact (or longer: not ours).
                crange = resp.getheader("Content-Range") or ""
                resp.read()
                total = int(crange.rpartition("/")[2]) if crange.rpartition("/")[2].isdigit() else -1
                if total == offset and got_etag == etag:
                    return self._finish(part, tagfile, dest, total, etag, resp, offset)
                return None
            if resp.status == 206:
                start, _, total = self._content_range(resp)
                if got_etag != etag or start != offset:
                    resp.close()
                    return None
            elif resp.status == 200:
                total = int(resp.getheader("Content-Length") or -1)
                offset = 0
                etag = got_etag
            else:
                raise self._http_error("GET", path, resp, resp.read())
            if offset == 0:
                mode = "wb"
                if resume and etag:
                    with open(tagfile, "w", encoding="ascii") as t:
                        t.write(etag + "\n")
                else:  # no ETag to check a later resume by: none may use an older one
                    try:
                        os.unlink(tagfile)
                    except FileNotFoundError:
                        pass
            else:
                mode = "r+b"
            done = offset
            buf = bytearray(min(chunk_size, 1 << 20))
            view = memoryview(buf)
            with open(part, mode) as out:
                if mode == "r+b":
                    out.seek(offset)
                    out.truncate()
                try:
                    if progress:
                        progress(done, total)
                    since = 0
                    while True:
                        try:
                            n = resp.readinto(view)
                        except (OSError, http.client.HTTPException) as exc:
                            raise self._net_error(exc, "GET", path, " after %d of %d bytes"
                                                  % (done, total)) from exc
                        if not n:
                            break
                        out.write(view[:n])
                        done += n
                        since += n
                        if progress and (since >= chunk_size or done == total):
                            since = 0
                            progress(done, total)
                    if total >= 0 and done != total:
                        raise _error(UnreachableError, "mcache.remote: GET %s: the connection "
                                     "ended after %d of %d bytes; download again (it resumes)"
                                     % (path, done, total), method="GET", url=path)
                    out.flush()
                    os.fsync(out.fileno())
                except BaseException:
                    if not resume:
                        out.close()
                        for p in (part, tagfile):
                            try:
                                os.unlink(p)
                            except FileNotFoundError:
                                pass
                    raise
            return self._finish(part, tagfile, dest, done, etag, resp, offset)
        finally:
            conn.close()

    @staticmethod
    def _content_range(resp) -> Tuple[int, int, int]:
        """(first, last, total) of a 206's "Content-Range: bytes A-B/N"."""
        value = resp.getheader("Content-Range") or ""
        try:
            unit, _, rest = value.partition(" ")
            span, _, total = rest.partition("/")
            first, _, last = span.partition("-")
            if unit != "bytes":
                raise ValueError(value)
            return int(first), int(last), int(total)
        except ValueError:
            return -1, -1, -1

    @staticmethod
    def _finish(part, tagfile, dest, size, etag, resp, resumed_from) -> JSON:
        os.replace(part, dest)
        try:
            os.unlink(tagfile)
        except FileNotFoundError:
            pass
        checksum = etag.strip('"') if etag else None
        if checksum and checksum.startswith("W/"):
            checksum = None  # a weak ETag is no checksum
        return {"path": dest, "size": size, "checksum": checksum, "etag": etag,
                "source": resp.getheader("Mcache-Source"), "resumed_from": resumed_from}

    # ---- aliases (publisher) ----

    def set_alias(self, name: str, alias: str, targets: Union[str, Mapping[str, Any]],
                  why: Optional[str] = None, no_gate: bool = False) -> JSON:
        """PUT /v1/models/{name}/aliases/{alias}: create or move it (atomically: a
        blue-green switch). targets: "1.2.0", "1.0.0=90 2.0.0=10", or
        {"1.0.0": 90, "2.0.0": 10}. why is recorded in its history. no_gate
        skips mcached's health gate. Returns {"name", "alias", "action", "from",
        "to", "generation"} ("action": "none" when it already pointed there)."""
        body: JSON = {"targets": _targets_text(targets)}
        if why is not None:
            body["why"] = why
        if no_gate:
            body["no_gate"] = True
        return self._json("PUT", self._path(*self._model(name), "aliases", _seg(alias, "alias")),
                          body)

    def remove_alias(self, name: str, alias: str) -> JSON:
        """DELETE /v1/models/{name}/aliases/{alias}."""
        return self._json("DELETE",
                          self._path(*self._model(name), "aliases", _seg(alias, "alias")))

    def rollback(self, name: str, alias: str) -> JSON:
        """POST /v1/models/{name}/aliases/{alias}/rollback: back to where it pointed
        before its last move."""
        return self._json("POST", self._path(*self._model(name), "aliases",
                                             _seg(alias, "alias"), "rollback"))

    # ---- deployments (publisher) ----

    def deployments(self, name: str) -> List[JSON]:
        """GET /v1/models/{name}/deployments: its rollouts (Deployment objects)."""
        return _unwrap(self._get(*self._model(name), "deployments"), "deployments")

    def deploy(self, name: str, version: str, alias: str, strategy: Optional[str] = None,
               steps: Optional[Iterable[int]] = None, interval_ms: Optional[int] = None,
               max_error_rate: Optional[float] = None, max_p99_ratio: Optional[float] = None,
               min_requests: Optional[int] = None, health: Optional[Iterable[str]] = None,
               health_timeout_ms: Optional[int] = None) -> JSON:
        """POST /v1/models/{name}/deployments: start a rollout of version to alias,
        as `mcache deploy` (None leaves an option at its default: a canary
        10/50/100 every 5 min, at most 2% errors, 100 requests per step).
        health is a command (argv list) run before each step. Returns the
        Deployment mcached started."""
        body: JSON = {"version": version, "alias": alias}
        for key, val in (("strategy", strategy), ("interval_ms", interval_ms),
                         ("max_error_rate", max_error_rate), ("max_p99_ratio", max_p99_ratio),
                         ("min_requests", min_requests),
                         ("health_timeout_ms", health_timeout_ms)):
            if val is not None:
                body[key] = val
        if steps is not None:
            body["steps"] = list(steps)
        if health is not None:
            body["health"] = [health] if isinstance(health, str) else list(health)
        return self._json("POST", self._path(*self._model(name), "deployments"), body)

    def _deployment(self, name: str, alias: str, op: str) -> JSON:
        return self._json("POST", self._path(*self._model(name), "deployments",
                                             _seg(alias, "alias"), op))

    def pause_deployment(self, name: str, alias: str) -> JSON:
        """POST /v1/models/{name}/deployments/{alias}/pause."""
        return self._deployment(name, alias, "pause")

    def resume_deployment(self, name: str, alias: str) -> JSON:
        """POST /v1/models/{name}/deployments/{alias}/resume."""
        return self._deployment(name, alias, "resume")

    def abort_deployment(self, name: str, alias: str) -> JSON:
        """POST /v1/models/{name}/deployments/{alias}/abort."""
        return self._deployment(name, alias, "abort")

    # ---- the cache (mcached) ----

    def _version_op(self, name: str, ref: str, op: str) -> JSON:
        return self._json("POST", self._path(*self._model(name), "versions", _seg(ref, "ref"), op))

    def load(self, name: str, ref: str = "latest") -> JSON:
        """POST .../versions/{ref}/load: mcached loads it into the arena (waits)."""
        return self._version_op(name, ref, "load")

    def evict(self, name: str, ref: str = "latest") -> JSON:
        """POST .../versions/{ref}/evict (admin)."""
        return self._version_op(name, ref, "evict")

    def pin(self, name: str, ref: str = "latest") -> JSON:
        """POST .../versions/{ref}/pin (admin): keep it resident."""
        return self._version_op(name, ref, "pin")

    def unpin(self, name: str, ref: str = "latest") -> JSON:
        """POST .../versions/{ref}/unpin (admin)."""
        return self._version_op(name, ref, "unpin")

    def verify(self, name: str, ref: str = "latest") -> JSON:
        """POST .../versions/{ref}/verify (admin): recompute its checksum on the server."""
        return self._version_op(name, ref, "verify")

    def stats(self, name: str, ref: Optional[str] = None, window: Optional[str] = None) -> JSON:
        """GET /v1/models/{name}/stats: serving statistics (as `mcache stats --json`)."""
        return self._get(*self._model(name), "stats", query={"ref": ref, "window": window})

    def compare(self, name: str, a: str, b: str) -> JSON:
        """GET /v1/models/{name}/compare?a=&b=: two versions' statistics side by side."""
        return self._get(*self._model(name), "compare", query={"a": a, "b": b})

    def cache(self) -> JSON:
        """GET /v1/cache: mcached's status (as `mcache stat --json`)."""
        return self._get("v1", "cache")

    def readers(self) -> Any:
        """GET /v1/readers: the processes holding models."""
        return _unwrap(self._get("v1", "readers"), "readers")

    def status(self) -> JSON:
        """GET /v1/status: what the status page shows."""
        return self._get("v1", "status")

    def alerts(self) -> List[JSON]:
        """GET /v1/alerts: automatic rollbacks, failed health gates, breaches."""
        return _unwrap(self._get("v1", "alerts"), "alerts")

    # ---- snapshots ----

    def snapshots(self) -> List[JSON]:
        """GET /v1/snapshots."""
        return _unwrap(self._get("v1", "snapshots"), "snapshots")

    def create_snapshot(self, snap: str) -> JSON:
        """POST /v1/snapshots {"name"}: record every alias's targets (publisher)."""
        return self._json("POST", self._path("v1", "snapshots"), {"name": snap})

    def restore_snapshot(self, snap: str) -> JSON:
        """POST /v1/snapshots/{snap}/restore (publisher)."""
        return self._json("POST", self._path("v1", "snapshots", _seg(snap, "snapshot"), "restore"))

    def delete_snapshot(self, snap: str) -> JSON:
        """DELETE /v1/snapshots/{snap} (admin)."""
        return self._json("DELETE", self._path("v1", "snapshots", _seg(snap, "snapshot")))

    # ---- admin ----

    def delete(self, name: str, version: Optional[str] = None, force: bool = False) -> JSON:
        """DELETE a version (or, without version, the whole model). A version an
        alias points at is refused (ConflictError) unless force=True.
        Returns {"name", "removed": [...], "bytes", "generation"}."""
        segs = self._model(name) + (("versions", _seg(version, "version")) if version else ())
        return self._json("DELETE", self._path(*segs, query={"force": bool(force)}))

    def gc(self, name: Optional[str] = None, keep: Optional[int] = None,
           days: Optional[float] = None, dry_run: bool = False) -> JSON:
        """POST /v1/gc: remove old unaliased versions (dry_run: only list them)."""
        body: JSON = {"dry_run": bool(dry_run)}
        for key, val in (("name", name), ("keep", keep), ("days", days)):
            if val is not None:
                body[key] = val
        return self._json("POST", self._path("v1", "gc"), body)

    def fsck(self, checksums: bool = False) -> JSON:
        """POST /v1/fsck: check the store (checksums: reread every artifact)."""
        return self._json("POST", self._path("v1", "fsck"), {"checksums": bool(checksums)})

    def audit(self, limit: Optional[int] = None, model: Optional[str] = None) -> List[JSON]:
        """GET /v1/audit: recent state changes with who, what, when, from where, result."""
        ans = self._get("v1", "audit", query={"limit": limit, "model": model})
        for key in ("entries", "audit", "records"):
            if isinstance(ans, dict) and isinstance(ans.get(key), list):
                return ans[key]
        return ans

    def tokens(self) -> List[JSON]:
        """GET /v1/tokens: the tokens' names and roles (never the secrets)."""
        return _unwrap(self._get("v1", "tokens"), "tokens")

    def add_token(self, name: str, role: str) -> JSON:
        """POST /v1/tokens: a new token; {"name", "role", "token"}: the secret is shown
        only in this answer, keep it."""
        return self._json("POST", self._path("v1", "tokens"), {"name": name, "role": role})

    def remove_token(self, name: str) -> JSON:
        """DELETE /v1/tokens/{name}."""
        return self._json("DELETE", self._path("v1", "tokens", _seg(name, "token name")))
