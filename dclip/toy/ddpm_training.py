"""Training the toy DDPM on the CPU: the paper's DDPM (ε-prediction, linear β from 1e-4 to 0.02, T = 1000) on
photo-style toy faces, from scratch (:data:`DDPM_SETTINGS`) or continued from a trained one
(:data:`DDPM_CONTINUE_SETTINGS`).

The loss is Ho et al.'s simple loss ||ε − ε_θ(x_t, t)||², t uniform over the T steps, optionally weighted per
timestep by min-SNR-γ (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy", ICCV 2023):
for ε-prediction the weight is min(SNR(t), γ) / SNR(t), SNR(t) = ᾱ_t / (1 − ᾱ_t). It leaves the noisy steps
(SNR < γ) at weight 1 and scales the nearly clean ones down, where the simple loss spends most of its gradient on
detail the samples never lack; the noisy steps decide a sample's colours and layout. The model, the schedule and
the sampler stay the paper's: the weighting changes which steps training attends to, not what is learnt.

Like every toy trainer it draws fresh training faces at every step (:func:`dclip.toy.train.draw_batch`), saves
every ``save_every`` steps with a resume file beside the model (:class:`dclip.toy.training_log.TrainingLog`), and
ships the debiased EMA of the weights (:func:`debiased_ema`).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..method.ddim import DEFAULT_SCHEDULE
from ..models.folder import user_models_dir, write_model
from .nets import DDPM_UNET_CONFIG
from .train import _cosine_lr, domain_record, draw_batch
from .training_log import TrainingLog, discard_init_copy, init_copy

__all__ = ["DdpmSettings", "DDPM_SETTINGS", "DDPM_CONTINUE_SETTINGS", "min_snr_weight", "ddpm_loss",
           "debiased_ema", "train_ddpm"]


@dataclass(frozen=True)
class DdpmSettings:
    steps: int = 6000          # optimizer steps (~0.36 s each on 2 idle cores; see the sidecar's cpu_seconds)
    batch_size: int = 32       # fresh photo-style faces per step
    lr: float = 5e-4           # Adam, after a linear warm-up, then cosine decay to lr / 10
    warmup: int = 50
    ema_decay: float = 0.999   # the shipped weights are the EMA (debiased: see debiased_ema)
    seed: int = 0
    threads: int = 2           # torch CPU threads
    save_every: int = 500
    min_snr_gamma: float = 0.0  # 0: Ho et al.'s unweighted loss; γ > 0: min-SNR-γ weighting (min_snr_weight)


#: The shipped toy DDPM's first run: 6000 steps from random weights, the unweighted loss.
DDPM_SETTINGS = DdpmSettings()

#: Its continuation (``toy train ddpm-continue``): min-SNR-5 weighting (Hang et al.'s γ), a lower learning rate,
#: faces from another seed than the first run's.
DDPM_CONTINUE_SETTINGS = replace(DDPM_SETTINGS, steps=8000, lr=2e-4, seed=7, min_snr_gamma=5.0)


def min_snr_weight(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR(t), γ) / SNR(t) for ε-prediction (Hang et al. 2023, eq. 9 and Sec. 3.4), SNR(t) = ᾱ_t / (1 − ᾱ_t)
    of the paper's schedule; all ones when ``gamma`` is 0."""
    if gamma <= 0:
        return torch.ones(t.shape)
    alphas = DEFAULT_SCHEDULE.alphas_cumprod.double()[t]
    snr = alphas / (1 - alphas)
    return (snr.clamp(max=gamma) / snr).float()


def ddpm_loss(model, x0: torch.Tensor, generator: torch.Generator, gamma: float = 0.0) -> torch.Tensor:
    """Ho et al.'s simple loss ||ε − ε_θ(√ᾱ_t x0 + √(1−ᾱ_t) ε, t)||², t uniform over the T steps, each sample's
    term weighted by :func:`min_snr_weight` (``gamma`` 0: unweighted)."""
    alphas = DEFAULT_SCHEDULE.alphas_cumprod.float()
    t = torch.randint(0, len(alphas), (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    a = alphas[t].view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    per_sample = (model(x_t, t.float()).sample - noise).pow(2).mean(dim=(1, 2, 3))
    return (min_snr_weight(t, gamma) * per_sample).mean()


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - decay)


def debiased_ema(ema: torch.nn.Module, init: torch.nn.Module, decay: float, steps: int) -> torch.nn.Module:
    """The EMA without its start: (EMA_n − dⁿ·θ_0) / (1 − dⁿ), a weighted mean of the trained weights only.

    After n = 400 steps at d = 0.995 the plain EMA still holds 13 % of the random initial weights θ_0; this
    removes them (Adam's bias correction, with θ_0 in place of zero)."""
    out, w = copy.deepcopy(ema), decay ** steps
    with torch.no_grad():
        for o, i in zip(out.parameters(), init.parameters()):
            o.sub_(w * i).div_(1.0 - w)
    return out


def _start_model(init: Path | None, target: Path) -> tuple[torch.nn.Module, dict | None, Path | None]:
    """The UNet a run starts from: random weights, or the toy DDPM at ``init`` (its file, or a kept copy of it when
    the run writes over it: :func:`dclip.toy.training_log.init_copy`). Returns the model, the sidecar of the file
    it was read from and that file (None, None for random weights)."""
    from diffusers import UNet2DModel

    model = UNet2DModel(**DDPM_UNET_CONFIG)
    if init is None:
        return model.train(), None, None
    from safetensors.torch import load_file

    from ..models.folder import read_sidecar

    start = init_copy(Path(init), target, "toy DDPM", "ddpm")
    try:
        model.load_state_dict(load_file(str(start)))
    except RuntimeError as err:
        raise ValueError(f"{init} is not a toy DDPM with the shipped architecture (dclip.toy.nets.DDPM_UNET_CONFIG): "
                         f"{str(err).splitlines()[0]}; pass a file written by `python -m dclip toy train ddpm`") from err
    return model.train(), read_sidecar(start), start


def train_ddpm(settings: DdpmSettings = DDPM_SETTINGS, out: Path | None = None, name: str = "toy_ddpm", *,
               init: Path | None = None, progress: bool | None = None) -> dict:
    """Train the toy DDPM on photo-style faces: from random weights, or continued from the toy DDPM at ``init``.

    Returns the sidecar dict; ``history`` holds the loss averaged over each ``save_every`` steps, ``init`` the
    sidecar of the model the run continued.
    """
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    out = Path(out or user_models_dir())
    model, before, started_from = _start_model(init, out / name)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    start = copy.deepcopy(ema)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    meta = {"model": "toy DDPM (diffusers UNet2DModel)", "unet_config": DDPM_UNET_CONFIG,
            "schedule": "linear beta 1e-4..0.02, T=1000, epsilon prediction",
            "loss": "simple loss" + (f", min-SNR-{settings.min_snr_gamma:g} weighting" if settings.min_snr_gamma
                                     else ""),
            "settings": asdict(settings), "domain": domain_record(), "styles": ["photo"]}
    if before is not None:
        meta["init"] = before
    log = TrainingLog(settings, meta, out, name, modules={"model": model, "ema": ema},
                      optimizers={"adam": opt}, generators={"noise": generator})
    for step in log.start("toy DDPM", progress):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, settings.steps, settings.lr, settings.warmup)
        x0, _, _ = draw_batch(step, settings.batch_size, seed=settings.seed)
        loss = ddpm_loss(model, x0, generator, settings.min_snr_gamma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _ema_update(ema, model, settings.ema_decay)
        if log.record(step, loss.item()):
            write_model(debiased_ema(ema, start, settings.ema_decay, step + 1), out / name, meta)
            log.saved()
    log.finish()
    if init is not None:
        discard_init_copy(started_from, init)
    return meta
