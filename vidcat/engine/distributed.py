"""Data-parallel training across processes: ``torchrun --nproc-per-node N -m vidcat.cli train ...``.

Helpers the trainer calls; every one is a no-op in a plain single process, so the same code runs
both ways:

    info = init_from_env()                      # torchrun's RANK / WORLD_SIZE / LOCAL_RANK
    model = wrap_model(model.to(info.device))   # DDP when world_size > 1
    sampler = distributed_sampler(train_set, shuffle=True, seed=cfg.seed)   # sampler.set_epoch(e)
    eval_s = eval_sampler(val_set)              # every rank a slice; padded to equal length
    scores, labels = gather_eval(scores, labels, len(val_set))   # all ranks' rows, padding removed
    if is_main(): save(...)                     # rank-0 logging and checkpoints
    barrier()                                   # shutdown() runs at exit (init_from_env registers it)

Backend: ``nccl`` when the device is CUDA, ``gloo`` on CPU. :func:`launch` runs a function in N processes
under torch's elastic launcher: ``vidcat train --nproc N`` is the training function launched so.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global ``rank`` of ``world_size``, ``local_rank`` on its node, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_from_env(device: str = "cpu", backend: str | None = None, timeout_s: float = 600) -> DistInfo:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` and ``MASTER_ADDR``
    set, even for one process), else do nothing: a plain ``python`` run stays single-process.

    ``device`` "cuda" picks ``cuda:LOCAL_RANK`` and nccl; anything else gloo.
    """
    from datetime import timedelta

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    launched = "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
    if launched and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"), timeout=timedelta(seconds=timeout_s))
        atexit.register(shutdown)
    return DistInfo(rank, world, local, str(device))


def shutdown() -> None:
    """Leave the process group, as torch asks every rank to before it exits: left up, gloo's worker threads
    can outlive the interpreter and abort the process on its way out (SIGABRT, "terminate called without an
    active exception"). :func:`init_from_env` registers it to run at exit; calling it earlier is harmless."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """A process group is up (torchrun, any world size)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (or without a process group): the process that logs and writes checkpoints."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def wrap_model(model: torch.nn.Module, **ddp_kw) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when distributed (``device_ids`` set on CUDA), else ``model``."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    dev = next(model.parameters()).device
    if dev.type == "cuda":
        ddp_kw.setdefault("device_ids", [dev.index])
    return DDP(model, **ddp_kw)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside DDP (for ``state_dict`` and evaluation)."""
    return getattr(model, "module", model)


def sync_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank: DDP syncs them only at the
    start of each training forward, so after the last step the ranks' statistics differ."""
    if is_distributed():
        for b in unwrap(model).buffers():
            dist.broadcast(b.data, src=0)


def distributed_sampler(dataset, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
    """A ``DistributedSampler`` (each rank a disjoint share; call ``set_epoch(e)`` every epoch), or ``None``
    in a single process (the DataLoader then shuffles itself)."""
    if not is_distributed():
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)


def eval_sampler(dataset):
    """Rank ``r`` gets items ``r, r + W, r + 2W, ...``; the last ones are padded by repeating the first items
    so all ranks run the same number of batches. :func:`gather_eval` removes the padding."""
    return distributed_sampler(dataset, shuffle=False)


def gather_eval(scores: torch.Tensor, labels: torch.Tensor, n: int, indices=None) -> tuple[torch.Tensor, torch.Tensor]:
    """All ranks' evaluation rows in dataset order, padding removed: ``(scores (n', K), labels (n', ...))``.

    ``indices``: the dataset index of each local row; by default the :func:`eval_sampler` order
    (``rank + j * world_size``), which holds when no row was dropped. Rows of unreadable files may be
    missing: pass ``indices`` then, and ``n'`` is the number of distinct rows found.
    """
    if not is_distributed():
        return scores, labels
    r, w = rank(), world_size()
    if indices is None:
        indices = [r + j * w for j in range(len(scores))]
    local = (list(map(int, indices)), scores.detach().cpu(), labels.detach().cpu())
    parts: list = [None] * w
    dist.all_gather_object(parts, local)
    rows: dict[int, tuple] = {}
    for idx, s, y in parts:
        for i, pos in enumerate(idx):
            key = pos % n if pos >= n else pos  # a padded position repeats item pos - n
            rows.setdefault(key, (s[i], y[i]))
    order = sorted(rows)
    return torch.stack([rows[i][0] for i in order]), torch.stack([rows[i][1] for i in order])


def launch(nproc: int, entrypoint, *args):
    """``entrypoint(*args)`` in ``nproc`` processes on this machine under torch's elastic launcher
    (``torch.distributed.launcher.elastic_launch``, what ``torchrun --standalone`` runs: one node, a free
    rendezvous port, no restarts), each with torchrun's RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR.

    ``entrypoint``: a function (the workers are spawned: it and ``args`` must pickle) or an executable whose
    command line is ``args``. Returns ``{rank: return value}``; a failed rank is a VidcatError naming it.
    """
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from vidcat.errors import VidcatError

    if nproc < 1:
        raise VidcatError(f"--nproc must be at least 1, not {nproc}")
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))  # the workers inherit it
    try:
        return elastic_launch(config, entrypoint)(*args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        reason = failure.message.get("message") if isinstance(failure.message, dict) else failure.message
        if failure.exitcode > 0 and not os.path.isfile(failure.error_file):  # an exit status, no error recorded
            reason = f"exit status {failure.exitcode}"
        raise VidcatError(f"rank {rank} of {nproc} failed: {reason}") from None
