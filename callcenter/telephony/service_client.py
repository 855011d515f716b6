"""The process AGI's HTTP client: a few JSON calls to the service with hard time limits.

Lean by design, as the driver that uses it (``process_agi``): a raw HTTP/1.1 keep-alive
client on a C-level socket, because ``http.client`` imports the ``email`` package and
``socket``/``urllib.parse`` build enums and tables, which together cost a process AGI tens of
milliseconds at every call's start. ``tests/unit/test_process_agi_lean.py`` holds each lean
replacement to the standard library's answer.
"""

from __future__ import annotations

import json
import time

REPORT_TIMEOUT = 1.5


class HttpError(Exception):
    """The service answered with an error status (or with something that is not HTTP)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def permanent(self) -> bool:
        """A 4xx that sending again cannot fix (auth and rate limits aside)."""
        return 400 <= self.status < 500 and self.status not in (401, 403, 408, 429)


#: statuses meaning "this instance cannot answer now" (a balancer's, or one draining)
_NEXT = (502, 503, 504)


class _Stale(Exception):
    """A kept-alive socket the server had closed: nothing was answered, try a fresh one."""


class ServiceClient:
    """A few JSON calls with hard timeouts; after one failure it stops trying for this call.

    A raw HTTP/1.1 keep-alive client on a socket: ``http.client`` imports the ``email``
    package, which alone costs a process AGI ~30 ms at every call's start.

    ``base_url`` may name several instances, comma-separated: a call that cannot reach one
    (refused, timed out, 502/503/504, not HTTP) is tried on the next within the same time
    limit, each try given an equal share of what is left; the one that answered is kept for
    the rest of the process. A 4xx is an answer, not a reason to try elsewhere.
    """

    def __init__(self, base_url: str, token: str, lookup_timeout: float = 3.0) -> None:
        self.url = base_url
        self._targets = []
        for one in base_url.split(","):
            one = one.strip()
            if one:
                scheme, hostname, port, path = _split_url(one)
                tls = scheme == "https"
                target = (tls, hostname or "127.0.0.1", port or (443 if tls else 80))
                self._targets.append((*target, path.rstrip("/")))
        if not self._targets:
            self._targets.append((False, "127.0.0.1", 80, ""))
        self._use(0)
        self._auth = f"Bearer {token}"
        self.lookup_timeout = lookup_timeout
        self._sock = None
        self._buf = b""
        self.down = False
        self.errors: list[str] = []
        self.last_error: Exception | None = None
        #: how many times a call went on to the next instance
        self.failovers = 0

    def _use(self, index: int) -> None:
        self._at = index
        self._tls, self._host, self._port, self._prefix = self._targets[index]

    def call(self, method: str, path: str, body: object = None, timeout: float = REPORT_TIMEOUT):
        """The decoded JSON answer, or None when the service failed (and is now 'down')."""
        if self.down:
            return None
        deadline = time.monotonic() + timeout
        n = len(self._targets)
        for tried in range(n):
            left = deadline - time.monotonic()
            if tried and left <= 0.05:
                break
            share = left / (n - tried)  # the last try has all that is left
            try:
                try:
                    return self._request(method, path, body, share)
                except _Stale:
                    self.close()  # aiohttp drops idle keep-alive sockets after 75 s
                    return self._request(method, path, body, share)
            except (OSError, HttpError, _Stale, ValueError, KeyError, IndexError) as exc:
                self.last_error = exc
                self.errors.append(f"{method} {path} ({self._host}:{self._port}): {exc}")
                self.close()
                if isinstance(exc, HttpError) and exc.status and exc.status not in _NEXT:
                    break  # an answer (4xx, 500): another instance would say the same
                if n > 1 and tried + 1 < n:
                    self.failovers += 1
                    self._use((self._at + 1) % n)
        self.down = True
        return None

    def _connect(self, timeout: float):
        if not self._tls:
            return _tcp_connection(self._host, self._port, timeout)
        import socket
        import ssl

        sock = socket.create_connection((self._host, self._port), timeout=timeout)
        return ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)

    def _request(self, method: str, path: str, body: object, timeout: float):
        deadline = time.monotonic() + timeout
        payload = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
        head = (
            f"{method} {self._prefix}{path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Authorization: {self._auth}\r\nAccept: application/json\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        reused = self._sock is not None
        if self._sock is None:
            self._sock = self._connect(timeout)
        self._sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            self._sock.sendall(head.encode() + payload)
            status_line, headers = self._read_head(deadline)
        except (ConnectionError, BrokenPipeError) as exc:
            if reused and not self._buf:
                raise _Stale(str(exc)) from exc
            raise
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise HttpError("chunked responses are not supported")
        length = int(headers.get("content-length", "0"))
        data = self._read_exact(length, deadline)
        if headers.get("connection", "").lower() == "close":
            self.close()
        status = int(status_line.split()[1])
        if status >= 400:
            raise HttpError(f"HTTP {status}: {data[:200]!r}", status)
        return json.loads(data) if data else {}

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("service answer timed out")
        self._sock.settimeout(remaining)
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("service closed the connection")
        self._buf += chunk

    def _read_head(self, deadline: float) -> tuple[str, dict[str, str]]:
        while b"\r\n\r\n" not in self._buf:
            self._fill(deadline)
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return lines[0], headers

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self._fill(deadline)
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._buf = None, b""


# The characters urllib.parse.urlsplit and quote() leave alone; anything else takes the
# standard library's way (urllib.parse costs a script ~3 ms to import).
_PLAIN_HOST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def _split_url(url: str) -> tuple[str, str | None, int | None, str]:
    """Scheme, host name, port and path of the service URL, as ``urlsplit`` reads them."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    host, colon, port = netloc.partition(":")
    if (
        sep
        and scheme in ("http", "https")
        and host
        and _PLAIN_HOST.issuperset(host)
        and (not colon or (port.isascii() and port.isdigit() and 0 < int(port) <= 65535))
        and _URL_SAFE.issuperset(path)
    ):
        return scheme, host, int(port) if colon else None, slash + path
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port, parts.path


def quote(text: str) -> str:
    """``urllib.parse.quote(text)``."""
    if _URL_SAFE.issuperset(text):
        return text
    from urllib.parse import quote

    return quote(text)


def _tcp_connection(host: str, port: int, timeout: float):
    """``socket.create_connection``, imported at the first connection rather than at start
    (the module costs ~3 ms to import: it builds enums of every constant). The C-level
    ``_socket`` type would spare that, but it is not the standard library's public API."""
    import socket

    return socket.create_connection((host, port), timeout)


def utc_now_iso() -> str:
    """``datetime.now(UTC).isoformat()`` without importing datetime (~1.5 ms a start): the
    ``at`` a script sends, stamped when the event happened."""
    now = time.time()
    whole = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + (
        f".{int((now - whole) * 1e6):06d}+00:00"
    )
