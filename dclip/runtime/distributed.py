"""Several processes with ``torch.distributed``, as ``torchrun`` launches them (one node or several).

dclip has no scheduler of its own: ``torchrun --nproc-per-node N -m dclip ...`` starts N copies of
the command line, and this module is what they share -- rank and world size from torchrun's
environment, the process group (NCCL on CUDA with one GPU per ``LOCAL_RANK``, gloo on the CPU), how
work is split between ranks, the few collectives the engine needs, and printing once.

Outside torchrun (no ``WORLD_SIZE`` > 1) every function here is the single-process identity: rank 0
of 1, nothing is initialised and nothing is communicated.

Data-parallel fine-tuning (:func:`dclip.method.finetune.finetune` with ``data_parallel=True``) uses two of
these: :func:`global_means`, which makes every batch mean of eq. 10 a mean over the *global* batch
(the CLIP term takes it inside the −log, so averaging per-rank gradients alone would be wrong), and
:func:`average_gradients`, DDP's gradient all-reduce, done explicitly after each backward rather
than by ``DistributedDataParallel``'s hooks: a full-mode update calls the UNet S_gen times before
one backward (more with gradient checkpointing) and an efficient-mode update steps S_gen times,
and an explicit all-reduce before each optimizer step is exact in all of these cases.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterable, Iterator

import torch

__all__ = ["rank", "world_size", "local_rank", "is_main", "active", "rank_device", "process_group",
           "shard", "batch_share", "all_sum", "all_max", "global_means", "average_gradients",
           "broadcast_parameters", "gather", "print_main", "rank_tag"]

_BUCKET = 1 << 24  # gradient elements per all-reduce call


def rank() -> int:
    """This process's rank (``$RANK``, 0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes work on the job (``$WORLD_SIZE``, 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's index on its node (``$LOCAL_RANK``): the GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on rank 0, the process that prints summaries and writes shared outputs."""
    return rank() == 0


def active() -> bool:
    """True when a process group of more than one process is initialised."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_tag() -> str:
    """``"[rank R/W] "`` under torchrun with several processes, else ``""`` (a prefix for messages)."""
    return f"[rank {rank()}/{world_size()}] " if world_size() > 1 else ""


def rank_device(device: str | torch.device) -> torch.device:
    """The device this rank runs on: a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun
    (one GPU per rank); an explicit index or another device is kept."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and world_size() > 1:
        return torch.device("cuda", local_rank())
    return device


@contextlib.contextmanager
def process_group(device: str | torch.device) -> Iterator[None]:
    """Initialise the default process group for the length of a ``with`` block when launched with
    ``WORLD_SIZE`` > 1 (NCCL when ``device`` is CUDA, gloo otherwise) and destroy it after; a no-op
    for a single process or when a group already exists."""
    import torch.distributed as dist

    if world_size() == 1 or dist.is_initialized():
        yield
        return
    device = rank_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def shard(n: int) -> list[int]:
    """The items of ``n`` (e.g. a folder's sorted files) this rank owns: every W-th, from its rank.
    Deterministic, and each item is owned by exactly one rank."""
    return list(range(rank(), n, world_size()))


def batch_share(n: int, batch_size: int) -> list[int]:
    """This rank's indices among ``n`` training items for data-parallel updates of ``batch_size``
    items per rank. Update b uses the global batch ``[b·W·B, (b+1)·W·B)``, the same items a single
    process with batch ``W·B`` uses, and rank r takes its r-th block of B. Only the last global batch
    can be short; there a rank can get fewer items or none."""
    w, r = world_size(), rank()
    return [i for start in range(0, n, w * batch_size)
            for i in range(start + r * batch_size, min(start + (r + 1) * batch_size, n))]


def _comm_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(values: Iterable[float] | torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks of a few numbers (float64, on the CPU; no gradient)."""
    local = torch.as_tensor(values, dtype=torch.float64).detach().reshape(-1)
    if not active():
        return local.cpu()
    import torch.distributed as dist

    total = local.to(_comm_device())
    dist.all_reduce(total)
    return total.cpu()


def all_max(value: int) -> int:
    """The largest ``value`` over ranks."""
    if not active():
        return int(value)
    import torch.distributed as dist

    t = torch.tensor([int(value)], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def global_means(*values: torch.Tensor) -> list[torch.Tensor]:
    """The mean of each tensor over every element on every rank, for a loss.

    Single process: ``[v.mean() for v in values]``. Data-parallel: one all-reduce of each tensor's
    sum and element count gives the global mean M = S/N; the returned tensor is

        M + W·s/N − stop_grad(W·s/N),   s = this rank's sum, W = world size,

    whose value is M on every rank and whose gradient is W/N ∂s. After :func:`average_gradients`
    divides the sum over ranks by W, the gradient is exactly ∂M = (1/N) Σ_ranks ∂s -- also through
    a nonlinearity applied to M, such as eq. 10's −log((2 − M)/2). A rank with no items passes empty
    tensors and takes part in the reduction with S = N = 0.
    """
    if not active():
        return [v.mean() for v in values]
    import torch.distributed as dist

    device = values[0].device
    local = torch.stack([torch.stack([v.detach().double().sum(),
                                      torch.tensor(float(v.numel()), dtype=torch.float64, device=v.device)])
                         for v in values]).to(_comm_device())
    dist.all_reduce(local)  # stays on the device: no host sync
    means = []
    for v, (s, n) in zip(values, local.to(device).unbind()):
        part = v.sum() * (world_size() / n).to(v.device, v.dtype)
        means.append(part - part.detach() + (s / n).to(v.device, v.dtype))
    return means


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace each trainable parameter's gradient by its mean over ranks (DDP's all-reduce, done in
    a few flat buckets). A missing gradient counts as zeros, so every rank steps identically."""
    if not active():
        return
    import torch.distributed as dist

    grads = []
    for p in parameters:
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    buckets, size = [[]], 0
    for g in grads:
        if buckets[-1] and (g.dtype != buckets[-1][0].dtype or size + g.numel() > _BUCKET):
            buckets.append([])
            size = 0
        buckets[-1].append(g)
        size += g.numel()
    for bucket in buckets:
        if bucket:
            flat = torch.cat([g.reshape(-1) for g in bucket])
            dist.all_reduce(flat)
            flat /= world_size()
            offset = 0
            for g in bucket:
                g.copy_(flat[offset: offset + g.numel()].view(g.shape))
                offset += g.numel()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (DDP's start), so all ranks train one model."""
    if not active():
        return
    import torch.distributed as dist

    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            buf = t.data.contiguous()
            dist.broadcast(buf, src=0)
            if buf.data_ptr() != t.data.data_ptr():
                t.data.copy_(buf)


def gather(obj) -> list:
    """Every rank's ``obj`` (any picklable object, e.g. CPU tensors), in rank order, on every rank."""
    if not active():
        return [obj]
    import torch.distributed as dist

    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def print_main(*args, **kwargs) -> None:
    """``print`` on rank 0 only (summaries of a whole job are printed once)."""
    if is_main():
        print(*args, **kwargs)
        sys.stdout.flush()
