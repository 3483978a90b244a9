"""Motion for two-stream models: optical flow, codec motion vectors, and an on-disk cache."""
from vidcat.io.motion.cache import build_cache, compute_motion, entry_path, load_cached
from vidcat.io.motion.flow import compute_flow, dequantize, flow_pair_fn, quantize, stack_flow
from vidcat.io.motion.motion_vectors import read_motion_vectors

__all__ = ["build_cache", "compute_flow", "compute_motion", "dequantize", "entry_path", "flow_pair_fn",
           "load_cached", "quantize", "read_motion_vectors", "stack_flow"]
