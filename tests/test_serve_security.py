"""Who may use ``vidcat serve`` (issue 21 items 3-4): bearer token on every API route, Host and
Origin checks, and uploads that cannot hold the server: a stalled one is dropped (408), one client
cannot take every slot (429). The slow-client tests run a real uvicorn and raw sockets."""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("multipart")

from test_serve import FakePredictor, _multipart  # noqa: E402

TOKEN = "s3cret-token-for-tests"
BOUNDARY = "vidcatboundary"


def _client(**kw):
    from fastapi.testclient import TestClient

    from vidcat.inference.server import create_app

    return TestClient(create_app(FakePredictor(), **kw))


def _file():
    return {"file": ("v.mp4", b"data", "video/mp4")}


def test_token_guards_every_api_route():
    client = _client(token=TOKEN)
    routes = [("get", "/classes", {}), ("post", "/predict", {"files": _file()}), ("get", "/openapi.json", {}),
              ("get", "/docs", {})]
    for method, path, kw in routes:
        for headers in ({}, {"Authorization": "Bearer wrong-token-xx"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}):
            r = getattr(client, method)(path, headers=headers, **kw)
            assert r.status_code == 401, (path, headers, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["error"]
        r = getattr(client, method)(path, headers={"Authorization": f"Bearer {TOKEN}"}, **kw)
        assert r.status_code == 200, (path, r.text)
    # open routes: the page (it asks for the token) and a health probe that says auth is on and no more
    page = client.get("/")
    assert page.status_code == 200 and 'id="token"' in page.text and "const AUTH = true" in page.text
    assert "fake" not in page.text  # the model's name is not shown to anyone who loads the page
    assert client.get("/health").json() == {"status": "ok", "auth": "bearer"}
    full = client.get("/health", headers={"Authorization": f"bearer {TOKEN}"}).json()
    assert full["auth"] == "bearer" and full["model"] == "fake"
    # without a token nothing changes: the page names the model and asks for nothing
    open_client = _client()
    assert open_client.post("/predict", files=_file()).status_code == 200
    assert "const AUTH = false" in open_client.get("/").text and open_client.get("/health").json()["auth"] == "none"


def test_host_and_origin_checks():
    client = _client(allowed_hosts=("localhost", "127.0.0.1"))
    assert client.get("/classes", headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/classes", headers={"Host": "127.0.0.1"}).status_code == 200
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example"):
        r = client.get("/classes", headers={"Host": host})
        assert r.status_code == 400 and "--allowed-hosts" in r.json()["error"], host
        assert client.post("/predict", files=_file(), headers={"Host": host}).status_code == 400
    # a browser post from another site is refused; the page's own posts and non-browser clients pass
    host = {"Host": "localhost:8000"}
    for origin in ("http://evil.example", "null", "http://localhost:9999"):
        r = client.post("/predict", files=_file(), headers={**host, "Origin": origin})
        assert r.status_code == 403 and "cross-origin" in r.json()["error"], origin
    assert client.post("/predict", files=_file(), headers={**host, "Origin": "http://localhost:8000"}).status_code == 200
    assert client.post("/predict", files=_file(), headers=host).status_code == 200
    assert _client(allowed_hosts=("*",)).get("/classes", headers={"Host": "any.example"}).status_code == 200
    sub = _client(allowed_hosts=("*.models.example", "::1"))  # Starlette's subdomain wildcard; IPv6 literals
    for host, status in (("a.models.example", 200), ("models.example.evil", 400), ("[::1]:8000", 200)):
        assert sub.get("/classes", headers={"Host": host}).status_code == status, host


def test_serve_options(tmp_path, monkeypatch, capsys):
    from vidcat.cli import main
    from vidcat.errors import VidcatError
    from vidcat.inference.server import ServeConfig, app_options

    monkeypatch.delenv("VIDCAT_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    cfg = ServeConfig(checkpoint="m.onnx", token_file=str(token_file), max_concurrent=4)
    opts = app_options(cfg)
    assert opts["token"] == TOKEN and opts["per_client"] == 2 and opts["upload_timeout"] == 30
    assert set(opts["allowed_hosts"]) == {"localhost", "127.0.0.1", "::1"}
    monkeypatch.setenv("VIDCAT_TOKEN", "from-the-environment")
    assert app_options(ServeConfig(checkpoint="m.onnx"))["token"] == "from-the-environment"
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("VIDCAT_TOKEN")
    opts = app_options(ServeConfig(checkpoint="m.onnx", host="0.0.0.0", allowed_hosts="models.example,localhost"))
    assert opts["token"] is None and opts["allowed_hosts"] == ("models.example", "localhost")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("vidcat: warning: serving 0.0.0.0 without a token"), err
    assert app_options(ServeConfig(checkpoint="m.onnx", host="0.0.0.0"))["allowed_hosts"] == ("*",)
    capsys.readouterr()
    token_file.write_text("short\n")
    with pytest.raises(VidcatError, match="at least 8 characters"):
        ServeConfig(checkpoint="m.onnx", token_file=str(token_file)).token()
    for argv, want in ((["--token-file", str(tmp_path / "nope")], "no such file"),
                       (["--upload-timeout", "0"], "--upload-timeout must be > 0"),
                       (["--per-client", "-1"], "--per-client must be >= 0"),
                       (["--allowed-hosts", ","], "--allowed-hosts names no host"),
                       (["--allowed-hosts", "models.*.example"], "a wildcard is '*' or like '*.example.com'")):
        assert main(["serve", "--checkpoint", "m.onnx", *argv]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("vidcat: error: ") and want in lines[0], (argv, lines)


# -- slow clients against a real server ------------------------------------------------------------
@contextlib.contextmanager
def running(app):
    """``app`` served by uvicorn in a thread on a free loopback port; yields the port."""
    uvicorn = pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(10)


def _request(port: int, body: bytes, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """A connected socket (from ``source``) and the raw POST /predict for a multipart ``body``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode()
    return sock, head


def _status(sock: socket.socket) -> tuple[int, dict]:
    """Read one response: (status, JSON body)."""
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def _slow_upload(port: int, source: str = "127.0.0.1") -> socket.socket:
    """An upload that sends its headers and one byte of the body, then a byte every 3 s at best."""
    body = b"".join(_multipart([b"x" * 4000]))
    sock, head = _request(port, body, source)
    sock.sendall(head + body[:1])
    return sock


def _post(port: int, source: str = "127.0.0.1") -> tuple[int, dict]:
    body = b"".join(_multipart([b"x" * 100]))
    sock, head = _request(port, body, source)
    with sock:
        sock.sendall(head + body)
        return _status(sock)


def _in_flight(port: int, n: int) -> None:
    import httpx

    deadline = time.time() + 10
    while httpx.get(f"http://127.0.0.1:{port}/health").json()["in_flight"] != n and time.time() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"http://127.0.0.1:{port}/health").json()["in_flight"] == n


def test_stalled_uploads_are_dropped_and_free_their_slots():
    from vidcat.inference.server import create_app

    app = create_app(FakePredictor(), max_concurrent=2, upload_timeout=1.0)
    with running(app) as port:
        slow = [_slow_upload(port), _slow_upload(port)]
        _in_flight(port, 2)
        status, body = _post(port)
        assert status == 503 and "busy" in body["error"]  # both slots held by the trickling clients
        t0 = time.monotonic()
        for sock in slow:
            with sock:
                status, body = _status(sock)
                assert status == 408 and "stalled" in body["error"], body
        assert time.monotonic() - t0 < 5
        _in_flight(port, 0)
        assert _post(port) == (200, {"path": "clip.mp4", "labels": ["b", "a"], "scores": [0.7, 0.2],
                                     "warning": "truncated: test"})


def test_one_client_cannot_hold_every_slot():
    from vidcat.inference.server import create_app

    app = create_app(FakePredictor(), max_concurrent=3, per_client=1, upload_timeout=30)
    with running(app) as port:
        with _slow_upload(port):
            _in_flight(port, 1)
            status, body = _post(port)  # the same address, while its first upload is still running
            assert status == 429 and "too many requests from 127.0.0.1" in body["error"], body
            assert _post(port, source="127.0.0.2")[0] == 200  # another client is served
        _in_flight(port, 0)  # the slow client went away: its slot is free again
        assert _post(port)[0] == 200


NODE_DOM = """
const els = {}, handlers = {};
function el(id) {
  return els[id] = els[id] || { id, style: {}, value: "", files: id === "file" ? [{ name: "v.mp4" }] : [],
    addEventListener: (ev, fn) => { handlers[id + ":" + ev] = fn; }, querySelectorAll: () => [],
    set innerHTML(v) { this.html = v; }, get innerHTML() { return this.html || ""; } };
}
globalThis.document = { getElementById: el, createElement: () => ({ set textContent(v) { this.t = v; },
  get innerHTML() { return this.t; } }) };
globalThis.FormData = class { append() {} };
globalThis.requestAnimationFrame = (f) => f();
const sent = [];
globalThis.fetch = async (url, opts) => { sent.push({ url, headers: opts.headers });
  return { ok: true, json: async () => ({ labels: ["a"], scores: [0.9] }) }; };
"""


def test_upload_page_sends_the_token(tmp_path):
    """The page's own script (run in node with a stub DOM): the typed token goes out as the header."""
    import re
    import shutil
    import subprocess

    from vidcat.inference.server import _page

    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        pytest.skip("node not installed (the page's script is also covered by tests/test_browser.py)")
    results = {}
    for auth in (True, False):
        script = re.search(r"<script>(.*)</script>", _page("m", "onnx", 3, auth), re.S).group(1)
        run = NODE_DOM + script + """
els.token.value = " %s ";
handlers["form:submit"]({ preventDefault() {} }).then(() => {
  console.log(JSON.stringify({ sent, auth: el("auth").style.display || "none", out: els.out.html }));
});""" % TOKEN
        (tmp_path / "page.js").write_text(run)
        out = subprocess.run([node, str(tmp_path / "page.js")], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        results[auth] = json.loads(out.stdout)
    assert results[True]["sent"] == [{"url": "predict", "headers": {"Authorization": f"Bearer {TOKEN}"}}]
    assert results[True]["auth"] == "block" and 'class="row"' in results[True]["out"]
    assert results[False]["sent"] == [{"url": "predict", "headers": {}}] and results[False]["auth"] == "none"
