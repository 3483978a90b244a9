"""A small HTTP service around a predictor: ``vidcat serve --checkpoint CKPT_OR_ONNX``.

    app = create_app(OnnxPredictor("model.onnx"))   # or Predictor("runs/demo/best.pt")
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes: ``GET /`` an upload page (self-contained HTML + JS, top-k bars), ``POST /predict``
(multipart field ``file``; optional query ``topk`` up to the predictor's) → ``{"path", "labels", "scores"}``,
``GET /health``, ``GET /classes``. A bad upload (missing, empty, not a readable video) is a 400
with ``{"error": "..."}``; one over the size limit a 413, decided while it streams in (a chunked
upload without a Content-Length stops at the limit too). Starlette parses the multipart body; the file
is copied to a temp file named like the upload (a decoder hint) that is always deleted after. At most
``max_concurrent`` requests are handled at once (upload + inference); one more gets a 503 with
``Retry-After`` instead of queueing without bound, and one client address may hold at most ``per_client``
of them (429). An upload that sends nothing for ``upload_timeout`` seconds is dropped with a 408, freeing
its slot.

Access (:mod:`vidcat.inference.guard`): with a ``token`` every API route (``/predict``, ``/classes``,
``/docs``, ``/openapi.json``) wants ``Authorization: Bearer <token>`` (401 otherwise); ``/`` and
``/health`` stay open, and ``/health`` then says ``"auth": "bearer"`` and shows the model only to an
authorised caller. A Host header outside ``allowed_hosts`` is a 400, a browser POST from another origin
a 403.
The module never imports torch: serving an ``.onnx`` file needs only ONNX Runtime.
"""

import json
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from vidcat.config import MAX_UPLOAD_BYTES, TOKEN_ENV, UPLOAD_TIMEOUT, ServeConfig
from vidcat.errors import VidcatError
from vidcat.inference.guard import (Slots, add_host_check, bearer_checks, default_allowed_hosts, is_loopback,
                                    origin_check)

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


def default_concurrency() -> int:
    """Concurrent requests by default: the CPU count, at most 4 (a small box stays responsive)."""
    return max(1, min(4, os.cpu_count() or 1))


def bounded_receive(receive, limit: int, timeout: float | None, too_large: str):
    """``receive`` (ASGI) that gives up when the client sends nothing for ``timeout`` seconds (408) or the body
    passes ``limit`` bytes (413), whatever the headers say: a chunked upload stops at the limit too."""
    import anyio
    from fastapi import HTTPException

    received = 0

    async def bounded():
        nonlocal received
        try:
            with anyio.fail_after(timeout):
                message = await receive()
        except TimeoutError:
            raise HTTPException(408, f"upload stalled: nothing received for {timeout:g} s") from None
        received += len(message.get("body", b""))
        if received > limit:
            raise HTTPException(413, too_large)
        return message

    return bounded


async def receive_upload(request, max_bytes: int, timeout: float | None):
    """The multipart field ``file`` of ``request``, parsed by Starlette (an ``UploadFile``, spooled to disk):
    at most ``max_bytes`` (413), no silence over ``timeout`` seconds (408). Raises HTTPException."""
    from fastapi import HTTPException
    from starlette.datastructures import UploadFile
    from starlette.requests import ClientDisconnect, Request

    too_large = f"upload larger than {max_bytes // 2**20} MiB"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + MULTIPART_SLACK:
        raise HTTPException(413, too_large)
    bounded = Request(request.scope, bounded_receive(request.receive, max_bytes + MULTIPART_SLACK, timeout, too_large))
    try:
        form = await bounded.form(max_files=1, max_fields=16)
    except ClientDisconnect:  # nobody is left to answer; the slot is freed all the same
        raise HTTPException(400, "the client went away during the upload") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        await form.close()
        raise HTTPException(400, "no file: send the video as the multipart/form-data field 'file'")
    if upload.size is not None and upload.size > max_bytes:
        await form.close()
        raise HTTPException(413, too_large)
    return upload


def create_app(predictor, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_concurrent: int | None = None, *,
               token: str | None = None, allowed_hosts=None, upload_timeout: float | None = UPLOAD_TIMEOUT,
               per_client: int | None = None):
    """A FastAPI app serving ``predictor`` (a :class:`Predictor` or :class:`OnnxPredictor`).

    ``max_concurrent`` requests (default :func:`default_concurrency`) upload and infer at once, at
    most ``per_client`` (None: no limit) from one client address; the next one is answered 503 / 429
    at once. ``token``: API routes want ``Authorization: Bearer <token>``; ``allowed_hosts``: Host
    header names accepted (None or ``*``: any); ``upload_timeout``: seconds of upload silence -> 408.
    """
    from fastapi import Depends, FastAPI, Request
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException

    from vidcat.config import __version__

    total = max_concurrent or default_concurrency()
    for name, value in (("max_concurrent", total), ("per_client", per_client or 1)):
        if value < 1:
            raise VidcatError(f"{name} must be >= 1, not {value}")
    slots = Slots(total, per_client)
    app = FastAPI(title="vidcat", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    def error(status: int, msg: str, headers=None) -> JSONResponse:
        return JSONResponse({"error": msg}, status_code=status, headers=headers)

    async def refused(request, e: HTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail), e.headers)

    app.add_exception_handler(HTTPException, refused)
    add_host_check(app, allowed_hosts, error)
    authorised, require_token = bearer_checks(token)
    api = [Depends(require_token)]
    backend = getattr(predictor, "backend", "torch")
    model_name = (getattr(predictor, "meta", None) or predictor.ckpt or {}).get("model", "?")
    info = {"model": model_name, "backend": backend, "classes": len(predictor.classes),
            "multilabel": predictor.multilabel, "version": __version__, "max_concurrent": total,
            "per_client": per_client}
    page = _page(model_name, backend, len(predictor.classes), bool(token))

    @app.get("/", response_class=HTMLResponse)
    def index():
        return page

    @app.get("/health")
    def health(ok: bool = Depends(authorised)):
        auth = {"auth": "bearer" if token else "none"}
        if not ok:  # open, but says no more
            return {"status": "ok", **auth}
        return {"status": "ok", "in_flight": slots.in_flight, **auth, **info}

    @app.get("/classes", dependencies=api)
    def classes():
        return {"classes": list(predictor.classes), "multilabel": predictor.multilabel}

    @app.get("/openapi.json", include_in_schema=False, dependencies=api)
    def openapi():
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=api)
    def docs():
        return get_swagger_ui_html(openapi_url="openapi.json", title="vidcat")

    @app.post("/predict", dependencies=[Depends(origin_check()), *api])
    async def predict(request: Request):
        topk = request.query_params.get("topk", str(predictor.topk))
        if not topk.isdigit() or int(topk) < 1:
            return error(400, f"topk must be a positive integer, not {topk!r}")
        async with slots.hold(request.client.host if request.client else "?"):
            return await predict_upload(request, predictor, int(topk), max_upload_bytes, upload_timeout)

    return app


async def predict_upload(request, predictor, topk: int, max_bytes: int, timeout: float | None) -> dict:
    """Receive the upload, copy it to a temp file named like it (always deleted after) and predict it;
    a bad upload raises HTTPException."""
    from fastapi import HTTPException
    from starlette.concurrency import run_in_threadpool

    def run(path: str, name: str) -> dict:
        record = predictor(path)
        out = {"path": name, "labels": record["labels"][:topk], "scores": record["scores"][:topk]}
        if record.get("warning"):
            out["warning"] = record["warning"]
        return out

    upload = await receive_upload(request, max_bytes, timeout)
    name = Path(upload.filename or "").name or "upload"
    fd, tmp = tempfile.mkstemp(prefix="vidcat-upload-", suffix=_safe_suffix(name))  # the suffix: a decoder hint
    try:
        with os.fdopen(fd, "wb") as f:
            await run_in_threadpool(shutil.copyfileobj, upload.file, f)
        await upload.close()
        if Path(tmp).stat().st_size == 0:
            raise HTTPException(400, f"{name}: empty upload (0 bytes)")
        try:
            return await run_in_threadpool(run, tmp, name)
        except VidcatError as e:
            raise HTTPException(400, f"{name}: {getattr(e, 'reason', None) or e}") from None
        except Exception as e:  # a bug, not a bad upload: say so in the same JSON shape
            log.exception("predict failed on %s", name)
            raise HTTPException(500, f"{name}: internal error ({type(e).__name__}: {e})") from None
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
