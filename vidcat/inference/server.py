"""A small HTTP service around a predictor: ``vidcat serve --checkpoint CKPT_OR_ONNX``.

    app = create_app(OnnxPredictor("model.onnx"))   # or Predictor("runs/demo/best.pt")
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes: ``GET /`` an upload page (self-contained HTML + JS, top-k bars), ``POST /predict``
(multipart field ``file``; optional query ``topk`` up to the predictor's) → ``{"path", "labels", "scores"}``,
``GET /health``, ``GET /classes``. A bad upload (missing, empty, too large, not a readable video)
is a 400 with ``{"error": "..."}``. Each upload is written to a temp file that is deleted after.
Inference is serialised by a lock: one clip at a time keeps a small CPU box responsive.
"""

import json
import logging
import os
import re
import tempfile
import threading
from pathlib import Path

from vidcat.errors import VidcatError

MAX_UPLOAD_BYTES = 256 * 1024 * 1024
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
 footer { color: #8a92a3; font-size: 13px; }
</style></head>
<body><main>
 <h1>vidcat</h1>
 <p class="sub">Upload a video to see its top categories.
  Model: <b>__MODEL__</b> (__BACKEND__), __NCLASSES__ classes.</p>
 <div class="card">
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
      preview = document.getElementById("preview");
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
    const r = await fetch("predict", { method: "POST", body });
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


def create_app(predictor, max_upload_bytes: int = MAX_UPLOAD_BYTES):
    """A FastAPI app serving ``predictor`` (a :class:`Predictor` or :class:`OnnxPredictor`)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool

    from vidcat import __version__

    app = FastAPI(title="vidcat", version=__version__)
    lock = threading.Lock()
    backend = getattr(predictor, "backend", "torch")
    model_name = (getattr(predictor, "meta", None) or predictor.ckpt or {}).get("model", "?")
    info = {"model": model_name, "backend": backend, "classes": len(predictor.classes),
            "multilabel": predictor.multilabel, "version": __version__}
    page = (PAGE.replace("__MODEL__", _html(model_name)).replace("__BACKEND__", _html(backend))
            .replace("__NCLASSES__", str(len(predictor.classes))))

    def error(status: int, msg: str) -> JSONResponse:
        return JSONResponse({"error": msg}, status_code=status)

    def run(path: str, name: str, topk: int) -> dict:
        with lock:
            record = predictor(path)
        return {"path": name, "labels": record["labels"][:topk], "scores": record["scores"][:topk]}

    @app.get("/", response_class=HTMLResponse)
    def index():
        return page

    @app.get("/health")
    def health():
        return {"status": "ok", **info}

    @app.get("/classes")
    def classes():
        return {"classes": list(predictor.classes), "multilabel": predictor.multilabel}

    @app.post("/predict")
    async def predict(request: Request):
        topk = request.query_params.get("topk", str(predictor.topk))
        if not topk.isdigit() or int(topk) < 1:
            return error(400, f"topk must be a positive integer, not {topk!r}")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_upload_bytes + 65536:
            return error(413, f"upload larger than {max_upload_bytes // 2**20} MiB")
        try:
            form = await request.form()
        except Exception as e:  # not multipart, malformed body
            return error(400, f"expected a multipart/form-data upload with a 'file' field ({e})")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return error(400, "no file: send the video as the multipart field 'file'")
        name = Path(upload.filename or "upload").name
        fd, tmp = tempfile.mkstemp(prefix="vidcat-upload-", suffix=_safe_suffix(name))
        try:
            size = 0
            with os.fdopen(fd, "wb") as f:
                while chunk := await upload.read(1 << 20):
                    size += len(chunk)
                    if size > max_upload_bytes:
                        return error(413, f"{name}: upload larger than {max_upload_bytes // 2**20} MiB")
                    f.write(chunk)
            if size == 0:
                return error(400, f"{name}: empty upload (0 bytes)")
            try:
                return await run_in_threadpool(run, tmp, name, int(topk))
            except VidcatError as e:
                reason = getattr(e, "reason", None) or str(e)
                return error(400, f"{name}: {reason}")
            except Exception as e:  # a bug, not a bad upload: say so in the same JSON shape
                log.exception("predict failed on %s", name)
                return error(500, f"{name}: internal error ({type(e).__name__}: {e})")
        finally:
            await upload.close()
            Path(tmp).unlink(missing_ok=True)

    return app


def _html(s) -> str:
    import html

    return html.escape(str(s))


# -- CLI -------------------------------------------------------------------------------------------
def serve_main(a) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise VidcatError(f"vidcat serve needs fastapi and uvicorn ({e.name} is missing): "
                          "pip install 'vidcat[serve]'") from None
    from vidcat.inference.onnx_predictor import load_predictor

    predictor = load_predictor(a.checkpoint, device=a.device, topk=a.topk, threads=a.threads)
    app = create_app(predictor, max_upload_bytes=a.max_upload_mb * 2**20)
    print(json.dumps({"serving": a.checkpoint, "url": f"http://{a.host}:{a.port}/"}), flush=True)
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
    return 0
