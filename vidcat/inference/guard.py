"""Who may use ``vidcat serve``: the library pieces, and the little they leave to do.

- Host: Starlette's ``TrustedHostMiddleware`` (DNS rebinding); :func:`add_host_check` only words its 400 as
  every other refusal is worded and names the option to change.
- Token: FastAPI's ``HTTPBearer`` reads ``Authorization: Bearer <token>``; :func:`bearer_checks` compares it in
  constant time (:func:`secrets.compare_digest`) and answers 401 otherwise.
- Origin: CORS governs what a page may *read*; a simple cross-site form post reaches the app all the same, so
  :func:`origin_check` refuses a browser POST from another origin (403).
- Slots: :class:`Slots` holds anyio ``CapacityLimiter`` s, overall (503) and per client address (429), taken
  without waiting: a request past either limit is refused at once instead of queueing without bound.

No torch; FastAPI, Starlette and anyio load when an app is built (serving an ``.onnx`` file needs no torch).
"""
import contextlib
import ipaddress
import math
import secrets
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
TOKEN_MESSAGE = "missing or wrong API token (send Authorization: Bearer TOKEN)"


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


def host_pattern(name: str) -> str:
    """A Host name as Starlette compares it: ``"::1"`` -> ``"[::1]"``, ``"example.org:8000"`` -> ``"example.org"``."""
    name = name.strip().lower()
    if name.count(":") > 1 and not name.startswith("["):
        return f"[{name}]"
    return name.rsplit(":", 1)[0] if name.count(":") == 1 and not name.endswith("]") else name


def add_host_check(app, allowed_hosts, refusal) -> None:
    """Put Starlette's ``TrustedHostMiddleware`` in front of ``app``; ``refusal(status, message)`` -> the
    response it sends instead of its plain-text 400."""
    from starlette.datastructures import Headers
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    class TrustedHosts(TrustedHostMiddleware):
        def __init__(self, inner, hosts):
            async def passed(scope, receive, send):  # reached only for an allowed Host
                scope["vidcat.host_ok"] = True
                await inner(scope, receive, send)

            super().__init__(passed, allowed_hosts=[host_pattern(h) for h in hosts], www_redirect=False)

        async def __call__(self, scope, receive, send):
            async def reworded(message):
                if scope.get("vidcat.host_ok"):
                    await send(message)
                elif message["type"] == "http.response.start":  # the parent's own refusal
                    host = Headers(scope=scope).get("host", "")
                    msg = f"Host {host!r} is not served here (vidcat serve --allowed-hosts)"
                    await refusal(400, msg)(scope, receive, send)

            await super().__call__(scope, receive, reworded)

    app.add_middleware(TrustedHosts, hosts=tuple(allowed_hosts or ("*",)))


def bearer_checks(token: str | None):
    """FastAPI dependencies ``(authorised, require_token)``: whether the request carries ``token`` (always
    True without one), and a 401 when it does not."""
    from fastapi import Depends, HTTPException
    from fastapi.security import HTTPBearer

    bearer = HTTPBearer(auto_error=False, description="the token given to vidcat serve")

    def authorised(credentials=Depends(bearer)) -> bool:
        if not token:
            return True
        given = credentials.credentials.strip() if credentials else ""
        return secrets.compare_digest(given.encode(), token.encode())

    def require_token(ok=Depends(authorised)) -> None:
        if not ok:
            raise HTTPException(401, TOKEN_MESSAGE, headers={"WWW-Authenticate": "Bearer"})

    return authorised, require_token


def origin_check():
    """A FastAPI dependency: a browser request from another origin (``Origin`` not this Host) is a 403."""
    from fastapi import HTTPException, Request

    def same_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and (origin == "null" or
                                   urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()):
            raise HTTPException(403, f"cross-origin request from {origin!r} refused")

    return same_origin


class Slots:
    """Requests in flight: at most ``total`` at once (503) and ``per_client`` per client address (429)."""

    def __init__(self, total: int, per_client: int | None = None):
        import anyio

        self.all, self.per_client, self.clients = anyio.CapacityLimiter(total), per_client, {}

    @property
    def in_flight(self) -> int:
        return int(self.all.borrowed_tokens)

    @contextlib.asynccontextmanager
    async def hold(self, client: str):
        """A slot for one request of ``client`` while the block runs; HTTPException 429 / 503 when none is free."""
        import anyio
        from fastapi import HTTPException

        mine = self.clients.setdefault(client, anyio.CapacityLimiter(self.per_client or math.inf))
        limits = ((mine, 429, f"too many requests from {client} at once ({self.per_client} allowed)"),
                  (self.all, 503, f"server busy ({int(self.all.total_tokens)} requests in progress)"))
        held = []
        try:
            for limiter, status, msg in limits:
                try:
                    limiter.acquire_nowait()
                except anyio.WouldBlock:
                    raise HTTPException(status, f"{msg}; retry shortly", headers={"Retry-After": "1"}) from None
                held.append(limiter)
            yield
        finally:
            for limiter in reversed(held):
                limiter.release()
            if not mine.borrowed_tokens:
                self.clients.pop(client, None)
