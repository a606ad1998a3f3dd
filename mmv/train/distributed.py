"""One process per device: set up from ``torchrun``'s environment, or run as a single process.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; with
them the process group uses NCCL on CUDA and gloo on CPU (tests, small runs). Without them the run is
one process and nothing is initialised. A group that the caller already set up (a test harness) is
used as it is and left alone at the end.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    """Where this process stands: its rank among ``world_size``, its device, and who cleans up."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str = ""
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def pick_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``cuda:<local_rank>`` when asked for (or ``auto`` and available), else the CPU."""
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA device")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s): start "
                           f"at most that many processes per node (torchrun --nproc_per_node)")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistContext:
    """The context of this process; initialises the process group when launched by ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = _env_int("LOCAL_RANK", rank % max(1, torch.cuda.device_count() or 1))
        dev = pick_device(device, local)
        return DistContext(rank, world, local, dev, dist.get_backend(), owns_group=False)
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    dev = pick_device(device, local)
    if world <= 1:
        return DistContext(0, 1, 0, dev)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"backend": backend, "timeout": datetime.timedelta(minutes=timeout_minutes)}
    if dev.type == "cuda":
        kwargs["device_id"] = dev  # binds NCCL to this GPU (eager init, no guessing in barrier())
    try:
        dist.init_process_group(**kwargs)
    except TypeError:  # torch < 2.3 has no device_id
        kwargs.pop("device_id", None)
        dist.init_process_group(**kwargs)
    return DistContext(dist.get_rank(), dist.get_world_size(), local, dev, backend, owns_group=True)


def cleanup(ctx: DistContext) -> None:
    """Destroy the process group if this module created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        if ctx.backend == "nccl":
            dist.barrier(device_ids=[ctx.local_rank])
        else:
            dist.barrier()


def all_reduce_sum(ctx: DistContext, tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks in place (a no-op in one process); returns ``tensor``."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (picklable Python data; used at checkpoints only)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(ctx: DistContext, obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
