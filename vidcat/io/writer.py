"""Write real encoded videos with PyAV (H.264 in MP4), atomically: temp name, then rename."""
from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np


def write_video(path, frames: np.ndarray, fps: int, crf: int = 23, gop: int = 12) -> Path:
    """Encode uint8 (T, H, W, 3) RGB ``frames`` as H.264 (yuv420p) at ``fps`` into ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=int(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(gop)}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path
