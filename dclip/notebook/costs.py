"""What a profile's settings cost on this machine, said before the work starts."""
from __future__ import annotations

import time

import torch

__all__ = ["duration", "expected_time"]


def duration(seconds: float) -> str:
    """A rough duration for people: "40 s", "12 min", "3.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _evaluation_seconds(model: torch.nn.Module, x: torch.Tensor, fast) -> float:
    """Seconds of one UNet evaluation of ``model`` on ``x`` under the fast path ``fast`` (after no warm-up)."""
    from ..runtime.fast import session

    with session(model, fast=fast) as s, torch.no_grad(), s.autocast():
        start = time.perf_counter()
        s.runner(model)(s.layout(x), torch.tensor([500], device=x.device))
        return time.perf_counter() - start


def expected_time(profile, model: torch.nn.Module, device: torch.device, n_train: int) -> str:
    """One UNet evaluation of ``model`` timed on ``device`` and multiplied by the evaluations of a fine-tune
    (eq. 10) on ``n_train`` images and of an edit (eqs. 12-13) at ``profile``'s settings: inversions in fp32
    (``RECONSTRUCTION``), generation and training in the profile's precision (bf16 on CPUs with native bf16 at
    the paper profile, :attr:`~dclip.notebook.profiles.Profile.fast`)."""
    from ..runtime.fast import RECONSTRUCTION, resolve

    p, x = profile, torch.zeros(1, 3, profile.image_size, profile.image_size, device=device)
    fast = resolve(p.fast, device)
    fp32 = _evaluation_seconds(model, x, RECONSTRUCTION)
    step = fp32 if fast.autocast is None else _evaluation_seconds(model, x, fast)
    # latents: S_inv + S_inv (inversion and reconstruction) per image; each update: S_gen steps
    # forward and backward (about 3 evaluations each); an edit: S_inv + S_gen
    finetune = 2 * p.n_inv_train * n_train * fp32 + 3 * p.n_gen_train * n_train * p.n_iter * step
    edit = p.n_inv * fp32 + p.n_gen * step
    precision = "" if fast.autocast is None else f" ({step:.1f} s in {fast.autocast} for generation and training)"
    return (f"expected time on {device}: one {p.image_size} px UNet evaluation takes {fp32:.1f} s here{precision}, "
            f"so about {duration(finetune)} per fine-tune ({n_train} image(s), S_inv {p.n_inv_train}, "
            f"S_gen {p.n_gen_train}) and {duration(edit)} per edited image (S_inv/S_gen {p.n_inv}/{p.n_gen}); "
            "a notebook runs several of each (fewer with n_images, n_steps, n_train, n_train_steps).")
