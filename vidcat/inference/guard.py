"""Who may use ``vidcat serve``: a bearer token, the Host header, browser origins, and request slots.

:class:`Guard` is an ASGI middleware in front of the app: a ``Host`` header outside ``allowed_hosts``
is a 400 (DNS rebinding), a browser ``POST`` from another origin a 403 (a form on some other site),
and with a token every API route but the open ones (the page and ``/health``) wants
``Authorization: Bearer <token>`` (401 otherwise; compared in constant time).
:class:`Slots` caps requests in flight, overall (503) and per client address (429).
No torch, no FastAPI imports at module level: serving an ``.onnx`` file needs neither.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
from urllib.parse import urlsplit

OPEN_PATHS = ("/", "/health")  # the upload page (it asks for the token) and a liveness probe
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only reaches this machine."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_allowed_hosts(bind: str) -> tuple:
    """The Host names accepted by default: loopback names when bound to loopback, any otherwise."""
    if not is_loopback(bind):
        return ("*",)
    return LOOPBACK_NAMES + ((bind,) if bind not in LOOPBACK_NAMES else ())


def host_name(value: str) -> str:
    """``"example.org:8000"`` -> ``"example.org"``; ``"[::1]:8000"`` -> ``"::1"``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def authorised(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (always True without a token)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class Guard:
    """ASGI middleware: Host check, Origin check for browser posts, bearer token on API routes."""

    def __init__(self, app, token: str | None = None, allowed_hosts=None, open_paths=OPEN_PATHS):
        self.app, self.token, self.open_paths = app, token or None, tuple(open_paths)
        hosts = tuple(h.lower() for h in (allowed_hosts or ("*",)))
        self.any_host = "*" in hosts
        self.hosts = {host_name(h) for h in hosts}

    def problem(self, scope, headers: dict) -> tuple[int, str, dict] | None:
        """``(status, message, extra headers)`` for a request to refuse, else None."""
        host = headers.get("host", "")
        if not self.any_host and host_name(host) not in self.hosts:
            return 400, f"Host {host!r} is not served here (vidcat serve --allowed-hosts)", {}
        origin = headers.get("origin")
        if scope.get("method") not in ("GET", "HEAD", "OPTIONS") and origin is not None:
            if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
                return 403, f"cross-origin request from {origin!r} refused", {}
        if scope.get("path") not in self.open_paths and not authorised(headers.get("authorization"), self.token):
            return 401, "missing or wrong API token (send Authorization: Bearer TOKEN)", {"WWW-Authenticate": "Bearer"}
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        refused = self.problem(scope, headers)
        if refused is None:
            return await self.app(scope, receive, send)
        status, msg, extra = refused
        body = json.dumps({"error": msg}).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


class Slots:
    """Requests in flight: at most ``total`` at once (503) and ``per_client`` per client address (429).
    Only touched on the event loop, so no lock is needed."""

    def __init__(self, total: int, per_client: int | None = None):
        self.total, self.per_client, self.n, self.clients = total, per_client, 0, {}

    def refuse(self, client: str) -> tuple[int, str] | None:
        """Take a slot for ``client``, or ``(status, message)`` when none is free for it."""
        if self.per_client and self.clients.get(client, 0) >= self.per_client:
            return 429, f"too many requests from {client} at once ({self.per_client} allowed); retry shortly"
        if self.n >= self.total:
            return 503, f"server busy ({self.total} requests in progress); retry shortly"
        self.n += 1
        self.clients[client] = self.clients.get(client, 0) + 1
        return None

    def release(self, client: str) -> None:
        self.n -= 1
        left = self.clients.pop(client, 1) - 1
        if left:
            self.clients[client] = left
