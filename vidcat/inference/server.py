"""A small HTTP service around a predictor: ``vidcat serve --checkpoint CKPT_OR_ONNX``.

    app = create_app(OnnxPredictor("model.onnx"))   # or Predictor("runs/demo/best.pt")
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes: ``GET /`` an upload page (self-contained HTML + JS, top-k bars), ``POST /predict``
(multipart field ``file``; optional query ``topk`` up to the predictor's) → ``{"path", "labels", "scores"}``,
``GET /health``, ``GET /classes``. A bad upload (missing, empty, not a readable video) is a 400
with ``{"error": "..."}``; one over the size limit a 413, decided while it streams in (a chunked
upload without a Content-Length stops at the limit too). The file part is streamed straight into
a temp file that is always deleted after. At most ``max_concurrent`` requests are handled at once
(upload + inference); one more gets a 503 with ``Retry-After`` instead of queueing without bound, and
one client address may hold at most ``per_client`` of them (429). An upload that sends nothing for
``upload_timeout`` seconds is dropped with a 408, freeing its slot.

Access (:mod:`vidcat.inference.guard`): with a ``token`` every API route (``/predict``, ``/classes``)
wants ``Authorization: Bearer <token>`` (401 otherwise); ``/`` and ``/health`` stay open, and
``/health`` then says ``"auth": "bearer"`` and shows the model only to an authorised caller. A Host
header outside ``allowed_hosts`` is a 400, a browser POST from another origin a 403.
The module never imports torch: serving an ``.onnx`` file needs only ONNX Runtime.
"""

import asyncio
import json
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

from vidcat.config import MAX_UPLOAD_BYTES, TOKEN_ENV, UPLOAD_TIMEOUT, ServeConfig
from vidcat.errors import VidcatError
from vidcat.inference.guard import Guard, Slots, authorised, default_allowed_hosts, is_loopback

MULTIPART_SLACK = 65536  # multipart headers and boundaries around the file part
log = logging.getLogger("vidcat")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>vidcat</title>
<style>
 body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
        background: #f5f6f8; color: #1d2330; }
 main { max-width: 640px; margin: 40px auto; padding: 0 20px; }
 h1 { font-size: 22px; margin: 0 0 4px; }
 .sub { color: #5b6475; margin: 0 0 20px; }
 .card { background: #fff; border: 1px solid #dde1e8; border-radius: 10px; padding: 18px 20px; margin-bottom: 16px; }
 form { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
 input[type=file] { flex: 1; min-width: 0; }
 button { background: #2f6fed; color: #fff; border: 0; border-radius: 6px; padding: 8px 18px;
          font-size: 15px; cursor: pointer; }
 button:disabled { background: #9db6ea; cursor: default; }
 video { width: 100%; max-height: 280px; border-radius: 6px; background: #000; margin-top: 14px; display: none; }
 .row { display: grid; grid-template-columns: minmax(4em, 28%) 1fr 4em; gap: 10px; align-items: center;
        margin: 7px 0; }
 .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-weight: 500; }
 .track { background: #e9edf3; border-radius: 4px; height: 14px; overflow: hidden; }
 .bar { background: #2f6fed; height: 100%; width: 0; transition: width .3s; }
 .row:first-child .bar { background: #1a9e5c; }
 .score { text-align: right; font-variant-numeric: tabular-nums; color: #5b6475; }
 .error { color: #b3261e; }
 .muted { color: #5b6475; }
 #auth { display: none; margin-bottom: 12px; }
 #auth input { width: 100%; box-sizing: border-box; padding: 6px 8px; }
 footer { color: #8a92a3; font-size: 13px; }
</style></head>
<body><main>
 <h1>vidcat</h1>
 <p class="sub">Upload a video to see its top categories.
  __WHAT__.</p>
 <div class="card">
  <div id="auth"><input id="token" type="password" autocomplete="off" placeholder="API token"></div>
  <form id="form">
   <input id="file" name="file" type="file" accept="video/*" required>
   <button id="go" type="submit">Predict</button>
  </form>
  <video id="preview" controls muted></video>
 </div>
 <div class="card" id="out"><span class="muted">No prediction yet.</span></div>
 <footer>POST /predict &middot; GET /classes &middot; GET /health</footer>
</main>
<script>
const form = document.getElementById("form"), file = document.getElementById("file"),
      go = document.getElementById("go"), out = document.getElementById("out"),
      preview = document.getElementById("preview"), tokenBox = document.getElementById("token");
const AUTH = __AUTH__;  // this server wants a bearer token: sent as a header, kept in this page only
if (AUTH) document.getElementById("auth").style.display = "block";
function esc(s) { const d = document.createElement("div"); d.textContent = s; return d.innerHTML; }
preview.addEventListener("error", () => { preview.style.display = "none"; });  // not playable here
file.addEventListener("change", () => {
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.removeAttribute("src"); preview.style.display = "none";
  if (!file.files.length) return;
  preview.src = URL.createObjectURL(file.files[0]); preview.style.display = "block";
});
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!file.files.length) return;
  const body = new FormData(); body.append("file", file.files[0]);
  go.disabled = true; out.innerHTML = '<span class="muted">Predicting&hellip;</span>';
  try {
    const headers = AUTH && tokenBox.value ? { "Authorization": "Bearer " + tokenBox.value.trim() } : {};
    const r = await fetch("predict", { method: "POST", body, headers });
    const j = await r.json();
    if (!r.ok) { out.innerHTML = '<span class="error">' + esc(j.error || r.statusText) + '</span>'; return; }
    out.innerHTML = '<div class="muted" style="margin-bottom:8px">' + esc(file.files[0].name) + '</div>' +
      '<div class="rows">' + j.labels.map((lab, i) => {
        const p = Math.max(0, Math.min(1, j.scores[i]));
        return '<div class="row"><span class="label" title="' + esc(lab) + '">' + esc(lab) + '</span>' +
               '<div class="track"><div class="bar" data-w="' + (100 * p).toFixed(1) + '%"></div></div>' +
               '<span class="score">' + (100 * p).toFixed(1) + '%</span></div>';
      }).join("") + '</div>';
    requestAnimationFrame(() => out.querySelectorAll(".bar").forEach(b => b.style.width = b.dataset.w));
  } catch (e) {
    out.innerHTML = '<span class="error">Request failed: ' + esc(String(e)) + '</span>';
  } finally { go.disabled = false; }
});
</script>
</body></html>
"""


def _safe_suffix(name: str | None) -> str:
    """The upload's extension (the decoder may use it as a hint), or ``.bin``; never a path."""
    suffix = Path(name or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ".bin"


class UploadError(Exception):
    """A rejected upload: HTTP ``status`` and a one-line message."""

    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status, self.msg = status, msg


def default_concurrency() -> int:
    """Concurrent requests by default: the CPU count, at most 4 (a small box stays responsive)."""
    return max(1, min(4, os.cpu_count() or 1))


async def chunks(request, timeout: float | None):
    """The request body's chunks; a wait over ``timeout`` seconds for the next one is a 408."""
    from starlette.requests import ClientDisconnect

    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise UploadError(408, f"upload stalled: nothing received for {timeout:g} s") from None
        except ClientDisconnect:  # nobody is left to answer; the slot is freed all the same
            raise UploadError(400, "the client went away during the upload") from None
        yield chunk


async def receive_upload(request, dst, max_bytes: int, timeout: float | None = None) -> tuple[str, int]:
    """Stream the multipart field ``file`` of ``request`` into the open binary file ``dst``.

    Counts bytes as they arrive and stops at ``max_bytes`` (413) whatever the headers say; nothing
    but the file part is kept; a client that sends nothing for ``timeout`` seconds gets a 408.
    Returns ``(filename, size)``; raises :class:`UploadError`.
    """
    from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

    ctype, opts = parse_options_header(request.headers.get("content-type", ""))
    boundary = opts.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadError(400, "expected a multipart/form-data upload with a 'file' field")
    limit_msg = f"upload larger than {max_bytes // 2**20} MiB"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + MULTIPART_SLACK:
        raise UploadError(413, limit_msg)
    st = {"headers": {}, "field": b"", "value": b"", "writing": False, "found": False, "name": "upload", "size": 0}

    def on_part_begin():
        st["headers"] = {}

    def on_header_field(data, start, end):
        st["field"] += data[start:end]

    def on_header_value(data, start, end):
        st["value"] += data[start:end]

    def on_header_end():
        st["headers"][st["field"].lower()] = st["value"]
        st["field"], st["value"] = b"", b""

    def on_headers_finished():
        _, disp = parse_options_header(st["headers"].get(b"content-disposition", b""))
        if disp.get(b"name") == b"file" and not st["found"]:
            st["writing"] = st["found"] = True
            st["name"] = disp.get(b"filename", b"upload").decode("utf-8", "replace")

    def on_part_data(data, start, end):
        if st["writing"]:
            st["size"] += end - start
            if st["size"] > max_bytes:
                raise UploadError(413, limit_msg)
            dst.write(data[start:end])

    def on_part_end():
        st["writing"] = False

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished})
    received = 0
    try:
        async for chunk in chunks(request, timeout):
            received += len(chunk)
            if received > max_bytes + MULTIPART_SLACK:
                raise UploadError(413, limit_msg)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        raise UploadError(400, f"malformed multipart upload ({e})") from None
    if not st["found"]:
        raise UploadError(400, "no file: send the video as the multipart field 'file'")
    return Path(st["name"]).name or "upload", st["size"]


def create_app(predictor, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_concurrent: int | None = None, *,
               token: str | None = None, allowed_hosts=None, upload_timeout: float | None = UPLOAD_TIMEOUT,
               per_client: int | None = None):
    """A FastAPI app serving ``predictor`` (a :class:`Predictor` or :class:`OnnxPredictor`).

    ``max_concurrent`` requests (default :func:`default_concurrency`) upload and infer at once, at
    most ``per_client`` (None: no limit) from one client address; the next one is answered 503 / 429
    at once. ``token``: API routes want ``Authorization: Bearer <token>``; ``allowed_hosts``: Host
    header names accepted (None or ``*``: any); ``upload_timeout``: seconds of upload silence -> 408.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse

    from vidcat.config import __version__

    total = max_concurrent or default_concurrency()
    for name, value in (("max_concurrent", total), ("per_client", per_client or 1)):
        if value < 1:
            raise VidcatError(f"{name} must be >= 1, not {value}")
    slots = Slots(total, per_client)
    app = FastAPI(title="vidcat", version=__version__)
    app.add_middleware(Guard, token=token, allowed_hosts=allowed_hosts)
    backend = getattr(predictor, "backend", "torch")
    model_name = (getattr(predictor, "meta", None) or predictor.ckpt or {}).get("model", "?")
    info = {"model": model_name, "backend": backend, "classes": len(predictor.classes),
            "multilabel": predictor.multilabel, "version": __version__, "max_concurrent": total,
            "per_client": per_client}
    page = _page(model_name, backend, len(predictor.classes), bool(token))

    def error(status: int, msg: str, **headers) -> JSONResponse:
        return JSONResponse({"error": msg}, status_code=status, headers=headers or None)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return page

    @app.get("/health")
    def health(request: Request):
        auth = {"auth": "bearer" if token else "none"}
        if not authorised(request.headers.get("authorization"), token):  # open, but says no more
            return {"status": "ok", **auth}
        return {"status": "ok", "in_flight": slots.n, **auth, **info}

    @app.get("/classes")
    def classes():
        return {"classes": list(predictor.classes), "multilabel": predictor.multilabel}

    @app.post("/predict")
    async def predict(request: Request):
        topk = request.query_params.get("topk", str(predictor.topk))
        if not topk.isdigit() or int(topk) < 1:
            return error(400, f"topk must be a positive integer, not {topk!r}")
        client = request.client.host if request.client else "?"
        refused = slots.refuse(client)
        if refused:
            return error(*refused, **{"Retry-After": "1"})
        try:
            status, body = await predict_upload(request, predictor, int(topk), max_upload_bytes, upload_timeout)
        finally:
            slots.release(client)
        return body if status == 200 else error(status, body)

    return app


async def predict_upload(request, predictor, topk: int, max_bytes: int, timeout: float | None):
    """Receive the upload into a temp file (always deleted after) and predict it:
    ``(200, record)`` or ``(status, one-line error)``."""
    from starlette.concurrency import run_in_threadpool

    def run(path: str, name: str) -> dict:
        record = predictor(path)
        out = {"path": name, "labels": record["labels"][:topk], "scores": record["scores"][:topk]}
        if record.get("warning"):
            out["warning"] = record["warning"]
        return out

    fd, tmp = tempfile.mkstemp(prefix="vidcat-upload-")
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                name, size = await receive_upload(request, f, max_bytes, timeout)
        except UploadError as e:
            return e.status, e.msg
        if size == 0:
            return 400, f"{name}: empty upload (0 bytes)"
        # the decoder may use the extension as a hint: give the temp file the upload's
        named = f"{tmp}{_safe_suffix(name)}"
        os.replace(tmp, named)
        tmp = named
        try:
            return 200, await run_in_threadpool(run, tmp, name)
        except VidcatError as e:
            return 400, f"{name}: {getattr(e, 'reason', None) or e}"
        except Exception as e:  # a bug, not a bad upload: say so in the same JSON shape
            log.exception("predict failed on %s", name)
            return 500, f"{name}: internal error ({type(e).__name__}: {e})"
    finally:
        Path(tmp).unlink(missing_ok=True)


def _page(model_name: str, backend: str, n_classes: int, auth: bool) -> str:
    """The upload page; behind a token it names no model (anyone may load it) and asks for the token."""
    what = ("a protected model: enter the API token" if auth else
            f"Model: <b>{_html(model_name)}</b> ({_html(backend)}), {n_classes} classes")
    return (PAGE.replace("__WHAT__", what).replace("__AUTH__", "true" if auth else "false"))


def _html(s) -> str:
    import html

    return html.escape(str(s))


# -- CLI -------------------------------------------------------------------------------------------
def app_options(cfg: ServeConfig) -> dict:
    """``create_app`` keywords; warns on stderr when a non-loopback address is served without a token."""
    token, slots = cfg.token(), cfg.max_concurrent or default_concurrency()
    if not token and not is_loopback(cfg.host):
        print(f"vidcat: warning: serving {cfg.host} without a token (--token-file or ${TOKEN_ENV}): "
              "anyone who reaches this port can use the model", file=sys.stderr, flush=True)
    return {"max_upload_bytes": cfg.max_upload_mb * 2**20, "max_concurrent": slots, "token": token,
            "allowed_hosts": cfg.allowed_hosts or default_allowed_hosts(cfg.host),
            "upload_timeout": cfg.upload_timeout, "per_client": cfg.per_client or max(1, slots // 2)}


def run_serve(cfg: ServeConfig) -> int:
    """Load the predictor and serve it with uvicorn until interrupted."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise VidcatError(f"vidcat serve needs fastapi, python-multipart and uvicorn ({e.name} is missing): "
                          "pip install 'vidcat[serve]'") from None
    from vidcat.inference.onnx_predictor import load_predictor

    options = app_options(cfg)  # a bad token file fails before the model loads
    predictor = load_predictor(cfg.checkpoint, device=cfg.device, topk=cfg.topk, threads=cfg.threads)
    if cfg.fast and hasattr(predictor, "model"):  # chosen on random clips of the model's input (no videos yet)
        from vidcat.inference.fast import accelerate

        print(json.dumps({"inference_variant": accelerate(predictor, variant=cfg.fast).get("variant")}), flush=True)
    app = create_app(predictor, **options)
    print(json.dumps({"serving": cfg.checkpoint, "url": f"http://{cfg.host}:{cfg.port}/"}), flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    return 0
