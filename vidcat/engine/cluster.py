"""Ray, joined or started the one way every vidcat job does it (batch prediction, feature extraction)."""
from __future__ import annotations

import os
from pathlib import Path

LOCAL_CPUS = 2   # a local Ray: this machine's budget (one decode task beside one model actor)


def init_ray(address: str | None = None):
    """Join ``address`` (else ``$RAY_ADDRESS``), or start a local Ray with :data:`LOCAL_CPUS` CPUs whose
    workers import this same vidcat checkout; returns the ``ray`` module."""
    import ray

    import vidcat

    address = address or os.environ.get("RAY_ADDRESS") or None
    package = str(Path(vidcat.__file__).parent)
    if address:
        ray.init(address=address, runtime_env={"py_modules": [package]}, ignore_reinit_error=True,
                 log_to_driver=False)
    else:
        path = os.pathsep.join(p for p in (str(Path(package).parent), os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=LOCAL_CPUS, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    return ray
