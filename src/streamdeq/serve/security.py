"""Who may drive the service, and which sources it may open.

Two separate guards:

* :class:`SecurityMiddleware` guards the HTTP API. A token, when set, is needed for anything that
  changes state or shows video (a camera picture is as sensitive as a write). On a loopback bind
  the Host and Origin headers are checked as well: a web page elsewhere could otherwise make the
  operator's browser drive the API (DNS rebinding, cross-site form posts), because the browser
  happily sends requests to 127.0.0.1.
* :class:`SourcePolicy` guards what a *request* may make the server open: files only under a media
  root, and URLs only of streaming schemes (FFmpeg would otherwise read ``file:``, ``concat:`` or
  ``pipe:`` sources on the caller's behalf) and, optionally, only of listed hosts.
"""

from __future__ import annotations

import fnmatch
import hmac
import ipaddress
import json
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import SettingsError
from .errors import SourceRejectedError

#: Host names that reach this machine only; a bind to any of them needs no token.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: URL schemes a request may name by default: streaming protocols that only read a stream.
DEFAULT_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https"})
#: Schemes never allowed, whatever the flags say: FFmpeg protocols that read local files or
#: processes (``file:``, ``concat:``, ``subfile:``, ``pipe:``, ``fd:``) or wrap another URL so
#: that the checks below would see the wrong one (``cache:``, ``crypto:``, ``async:``, ``data:``).
FORBIDDEN_SCHEMES = frozenset(
    {"file", "concat", "concatf", "subfile", "pipe", "fd", "data", "cache", "crypto", "async"}
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_MAX_SOURCE_CHARS = 4096
#: Requests that only read; everything else changes state.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Reads that show video or results, so they need the token like a write does.
_WATCH_PATHS = re.compile(r"^/api/(events|streams/[^/]+/(result|overlay\.jpg))$")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    name = host.strip().lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def token_matches(presented: str | None, token: str) -> bool:
    """Constant-time comparison, so response timing does not leak the token byte by byte."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), token.encode("utf-8"))


def needs_token(method: str, path: str) -> bool:
    """Whether a request must carry the token (when one is set): writes and video."""
    return method.upper() not in SAFE_METHODS or bool(_WATCH_PATHS.match(path))


def _split_host(value: str) -> tuple[str, int | None]:
    """``"name:port"`` / ``"[::1]:port"`` / ``"name"`` -> (lower-case name, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        name += "]"
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port_text = value.partition(":")
    if port_text:
        if not port_text.isdigit():
            return value, -1  # unparseable: never matches
        return name, int(port_text)
    return name, None


class HostCheck:
    """The Host header check of a loopback bind: a loopback name, or one of the names an operator
    allowed (``--allow-hosts``: ``name`` or ``name:port``).

    A loopback name passes with any port: a rebinding page can only send its own host name, and
    an SSH tunnel (``ssh -L 9000:localhost:8000``) legitimately sends another port.
    """

    def __init__(self, allowed_hosts: Iterable[str] | None = None) -> None:
        self.allowed = [_split_host(host) for host in allowed_hosts or ()]

    def allows(self, host_header: str) -> bool:
        name, port = _split_host(host_header)
        if port == -1 or not name:
            return False
        if name in LOOPBACK_NAMES:
            return True
        return self.allows_listed(host_header)

    def allows_listed(self, host_header: str) -> bool:
        """Whether ``host_header`` is one of the operator's ``--allow-hosts`` (not a loopback
        name: a page on another local port is another origin)."""
        name, port = _split_host(host_header)
        return any(
            name == allowed_name and (allowed_port is None or port == allowed_port)
            for allowed_name, allowed_port in self.allowed
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def presented_token(scope: Scope) -> str | None:
    """The token a request carries: ``Authorization: Bearer <token>``, else ``?token=`` (which
    ``<img>`` and ``EventSource`` need, as they cannot set headers)."""
    authorization = _header(scope, b"authorization")
    if authorization is not None:
        # header bytes arrive as latin-1; a UTF-8 token must compare as the text it was
        authorization = authorization.encode("latin-1").decode("utf-8", "replace")
        kind, _, value = authorization.partition(" ")
        if kind.lower() == "bearer":
            return value.strip()
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


class SecurityMiddleware:
    """Pure ASGI middleware (streaming responses pass through untouched) that answers a refused
    request with one line of JSON, and adds defensive headers to every response."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allowed_hosts: Iterable[str] | None,
        loopback: bool,
    ) -> None:
        self.app = app
        self.token = token or None
        self.loopback = loopback
        self.hosts = HostCheck(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            status, message = refusal
            # RFC 6750: a 401 says which scheme would be accepted
            extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
            await _send_json(send, status, {"error": message}, extra)
            return
        await self.app(scope, receive, _with_headers(send))

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, reason) when the request must be refused, else None."""
        method, path = scope["method"], scope["path"]
        host = _header(scope, b"host") or ""
        if self.loopback and not self.hosts.allows(host):
            port = (scope.get("server") or (None, None))[1]
            address = f"http://127.0.0.1:{port}/" if port else "http://127.0.0.1/"
            return 421, f"host {host[:80]!r} is not this server; open it as {address}"
        if self.loopback and method.upper() not in SAFE_METHODS:
            origin = _header(scope, b"origin")
            if origin is not None and not self._same_origin(origin, scope, host):
                return 403, f"cross-origin request from {origin!r} refused"
        if (
            self.token
            and needs_token(method, path)
            and not token_matches(presented_token(scope), self.token)
        ):
            return 401, "missing or wrong token (Authorization: Bearer <token> or ?token=)"
        return None

    def _same_origin(self, origin: str, scope: Scope, host: str) -> bool:
        scheme = scope.get("scheme", "http")
        if origin.lower() == f"{scheme}://{host}".lower():
            return True
        parts = urlsplit(origin)
        return parts.scheme in {"http", "https"} and self.hosts.allows_listed(parts.netloc)


def _with_headers(send: Send) -> Send:
    """Headers that keep the page's token and pictures where they belong: no referrer (the token
    rides in ``<img>`` URLs), no framing, no MIME sniffing, scripts only from this server."""
    extra = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (
            b"content-security-policy",
            b"default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
        ),
    ]

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped


async def _send_json(
    send: Send, status: int, payload: dict[str, str], extra: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(payload).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SourcePolicy:
    """Which sources an API request may open.

    Args:
        media_root: the folder files and image folders must lie in (after resolving symlinks);
            None: no files from the API at all (sources given on the command line or in the
            config file are the operator's own and do not pass through here).
        allowed_schemes: URL schemes allowed (lower case); :data:`FORBIDDEN_SCHEMES` never are.
        allowed_hosts: when given, URL hosts must match one of these (exact names or IPs, or
            shell patterns such as ``*.cams.example``); None: any host except link-local
            addresses (cloud metadata endpoints live there).
    """

    def __init__(
        self,
        media_root: Path | None = None,
        allowed_schemes: Iterable[str] = DEFAULT_SCHEMES,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        self.media_root = Path(media_root).resolve() if media_root is not None else None
        if self.media_root is not None and not self.media_root.is_dir():
            raise SettingsError(f"media root {media_root} is not a folder", field="media_root")
        self.allowed_schemes = frozenset(scheme.lower() for scheme in allowed_schemes)
        forbidden = sorted(self.allowed_schemes & FORBIDDEN_SCHEMES)
        if forbidden:
            raise SettingsError(
                f"scheme {forbidden[0]!r} can never be allowed: it reads local files or processes",
                field="allowed_schemes",
            )
        self.allowed_hosts = (
            [host.lower() for host in allowed_hosts] if allowed_hosts is not None else None
        )

    def check(self, source: str) -> str:
        """The source to open (a file as its resolved absolute path, a URL with its scheme in
        lower case: FFmpeg's protocol names are case-sensitive, URL schemes are not).

        Raises:
            SourceRejectedError: the source is not allowed; the message says why.
        """
        if not isinstance(source, str) or not source.strip():
            raise SourceRejectedError("source must be a non-empty string")
        if len(source) > _MAX_SOURCE_CHARS or any(ord(char) < 32 for char in source):
            raise SourceRejectedError("source is too long or contains control characters")
        match = _SCHEME.match(source)
        if match:
            scheme = match.group(1).lower()
            return self._check_url(scheme + source[len(scheme) :], scheme)
        return self._check_path(source)

    def _check_url(self, source: str, scheme: str) -> str:
        if scheme in FORBIDDEN_SCHEMES or scheme not in self.allowed_schemes:
            allowed = ", ".join(sorted(self.allowed_schemes)) or "none"
            raise SourceRejectedError(f"scheme {scheme!r} is not allowed (allowed: {allowed})")
        try:
            host = (urlsplit(source).hostname or "").lower()
        except ValueError as err:
            raise SourceRejectedError(f"malformed URL: {err}") from None
        if not host:
            raise SourceRejectedError("URL has no host")
        if self.allowed_hosts is not None:
            if not any(fnmatch.fnmatchcase(host, pattern) for pattern in self.allowed_hosts):
                raise SourceRejectedError(f"host {host!r} is not in the allowed hosts")
        elif _is_link_local(host):
            raise SourceRejectedError(f"host {host!r} is link-local; allow it explicitly")
        return source

    def _check_path(self, source: str) -> str:
        if self.media_root is None:
            raise SourceRejectedError("files cannot be added through the API without --media-root")
        if ".." in PurePosixPath(source).parts:
            raise SourceRejectedError("'..' is not allowed in a source path")
        path = Path(source)
        candidate = path if path.is_absolute() else self.media_root / path
        resolved = candidate.resolve()  # follows symlinks, so a link out of the root is caught
        if not resolved.is_relative_to(self.media_root):
            raise SourceRejectedError(f"{source} is outside the media root")
        return str(resolved)


def _is_link_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_link_local
    except ValueError:
        return False
