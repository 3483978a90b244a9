"""Ray, joined or started the one way every vidcat job does it (batch prediction, feature extraction)."""
from __future__ import annotations

import os
from pathlib import Path

def local_cpus() -> int:
    """CPUs this process may use (its affinity mask), the size of a local Ray."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:            # not on Linux
        return max(1, os.cpu_count() or 1)


def init_ray(address: str | None = None):
    """Join ``address`` (else ``$RAY_ADDRESS``), or start a local Ray with :func:`local_cpus` CPUs whose
    workers import this same vidcat checkout; returns the ``ray`` module."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    package = str(Path(__file__).resolve().parents[1])      # the vidcat package folder
    if address:
        ray.init(address=address, runtime_env={"py_modules": [package]}, ignore_reinit_error=True,
                 log_to_driver=False)
    else:
        path = os.pathsep.join(p for p in (str(Path(package).parent), os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=local_cpus(), include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    return ray
