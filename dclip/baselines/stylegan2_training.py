"""Training a small StyleGAN2 from scratch on the CPU (the toy world's GAN baseline).

StyleGAN2's recipe as rosinality/stylegan2-pytorch's ``train.py`` runs it (Karras et al., 2020):

* the non-saturating logistic loss: ``L_D = softplus(D(G(z))) + softplus(-D(x))``, ``L_G = softplus(-D(G(z)))``;
* the R1 penalty ``gamma / 2 * ||grad_x D(x)||^2`` on real images, applied lazily: every ``d_reg_every``
  steps, scaled by ``d_reg_every`` (and Adam's rate and betas by ``c = k / (k + 1)``, Sec. 3.1);
* style mixing with probability ``mixing`` (two z, a random crossover point), random noise inputs;
* the generator's exponential moving average (``G_ema``, half-life ``ema_kimg`` thousand images, ramped
  up over the first images as StyleGAN2-ADA does), which is what is saved and used.

Path-length regularisation is left out (it serves interpolation smoothness at high resolution; the toy
generator's settings say so). The images come from the caller -- ``real_batch(step)`` returns step's
batch in [-1, 1] -- so this module knows nothing of where they come from (``python -m dclip toy train gan``
passes toy faces). Every step's randomness is seeded from ``(seed, step)``; a run saves a resume file
every ``save_every`` steps and continues from it, so a stopped run loses at most that much.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from ..models.folder import read_sidecar, read_tensors, write_model
from ..runtime.atomic import atomic_write
from ..runtime.progress import progress_bar
from ..runtime.resume import resume_path
from .stylegan2 import Generator, StyleGAN2Config
from .stylegan2_discriminator import Discriminator

__all__ = ["GanSettings", "GAN_SETTINGS", "train_stylegan2", "load_trained_stylegan2", "d_logistic_loss",
           "g_nonsaturating_loss", "r1_penalty"]


@dataclass(frozen=True)
class GanSettings:
    """One block of literals: the toy world's StyleGAN2 (32 px; widths chosen so that a step takes ~0.3 s on
    two CPU cores: 6000 steps in about half an hour).

    A first run with ``r1_gamma = 0.05`` (StyleGAN2-ADA's size rule gives 0.0064 here) diverged: after ~1000 steps
    every sample had the same green background and speckled faces. Rosinality's default, 10, is what ships."""

    size: int = 32
    style_dim: int = 64
    n_mlp: int = 4
    widths: tuple[int, ...] = (128, 128, 64, 32)   # channels at 4, 8, 16, 32 px
    steps: int = 6000          # optimizer steps of each network
    batch_size: int = 32
    lr: float = 0.002          # rosinality's default (before the lazy-regularisation scaling of D)
    r1_gamma: float = 10.0     # rosinality's default (a first run at 0.05 diverged after ~1000 steps: see the note)
    d_reg_every: int = 16
    mixing: float = 0.9
    ema_kimg: float = 10.0     # G_ema half-life in thousands of images
    ema_rampup: float = 0.05   # ...but at most this fraction of the images seen so far (StyleGAN2-ADA)
    seed: int = 0
    threads: int = 2
    save_every: int = 250

    def config(self) -> StyleGAN2Config:
        levels = [2 ** i for i in range(2, int(math.log2(self.size)) + 1)]
        if len(levels) != len(self.widths):
            raise ValueError(f"GanSettings.widths needs one width per resolution {levels}, got {self.widths}")
        return StyleGAN2Config(size=self.size, style_dim=self.style_dim, n_mlp=self.n_mlp,
                               channels=dict(zip(levels, self.widths)))


GAN_SETTINGS = GanSettings()


def d_logistic_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's non-saturating logistic loss (Goodfellow et al. 2014; StyleGAN2's)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: Tensor) -> Tensor:
    """The generator's non-saturating loss, ``-log sigmoid(D(G(z)))``."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(discriminator, real: Tensor) -> Tensor:
    """Mescheder et al.'s R1: the mean over images of ``||grad_x D(x)||^2`` at real images (differentiable)."""
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def _fake(g, settings: GanSettings, n: int, generator: torch.Generator) -> Tensor:
    """``n`` images from one z each, or from two (style mixing at a random crossover) with probability
    ``settings.mixing``; every draw from ``generator`` (and the noise inputs from the global RNG)."""
    count = 2 if settings.mixing > 0 and torch.rand((), generator=generator) < settings.mixing else 1
    styles = [torch.randn(n, settings.style_dim, generator=generator) for _ in range(count)]
    crossover = int(torch.randint(1, g.n_latent, (), generator=generator))
    return g(styles, randomize_noise=True, inject_index=crossover)


def _ema_beta(settings: GanSettings, step: int) -> float:
    images = (step + 1) * settings.batch_size
    half_life = min(settings.ema_kimg * 1000, images * settings.ema_rampup) if settings.ema_rampup else \
        settings.ema_kimg * 1000
    return 0.5 ** (settings.batch_size / max(half_life, 1e-8))


class _Run:
    """The three networks, two optimisers and the step counter of one training run (resumable)."""

    def __init__(self, settings: GanSettings):
        self.settings = settings
        torch.manual_seed(settings.seed)
        config = settings.config()
        self.g = Generator(config).train()
        self.d = Discriminator(settings.size, config.channels).train()
        self.g_ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        ratio = settings.d_reg_every / (settings.d_reg_every + 1)
        self.g_opt = torch.optim.Adam(self.g.parameters(), lr=settings.lr, betas=(0.0, 0.99))
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr=settings.lr * ratio, betas=(0.0, 0.99 ** ratio))
        self.step, self.history = 0, []

    def state(self) -> dict:
        return {"g": self.g.state_dict(), "d": self.d.state_dict(), "g_ema": self.g_ema.state_dict(),
                "g_opt": self.g_opt.state_dict(), "d_opt": self.d_opt.state_dict(),
                "step": torch.tensor(self.step)}

    def load(self, state: dict) -> None:
        for key in ("g", "d", "g_ema", "g_opt", "d_opt"):
            getattr(self, key).load_state_dict(state[key])
        self.step = int(state["step"])

    def train_step(self, real: Tensor) -> dict:
        """One discriminator and one generator update (plus R1 on the lazy steps); returns the losses."""
        s, rng = self.settings, torch.Generator().manual_seed(s_seed(self.settings, self.step))
        torch.manual_seed(s_seed(self.settings, self.step))  # the generator's random noise inputs
        with torch.no_grad():
            fake = _fake(self.g, s, len(real), rng)
        d_loss = d_logistic_loss(self.d(real), self.d(fake))
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        out = {"d": d_loss.item()}
        if self.step % s.d_reg_every == 0:
            r1 = r1_penalty(self.d, real)
            self.d_opt.zero_grad(set_to_none=True)
            (s.r1_gamma / 2 * r1 * s.d_reg_every).backward()
            self.d_opt.step()
            out["r1"] = r1.item()
        g_loss = g_nonsaturating_loss(self.d(_fake(self.g, s, len(real), rng)))
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        with torch.no_grad():
            beta = _ema_beta(s, self.step)
            for e, p in zip(self.g_ema.parameters(), self.g.parameters()):
                e.lerp_(p, 1.0 - beta)
            for e, b in zip(self.g_ema.buffers(), self.g.buffers()):
                e.copy_(b)
        self.step += 1
        return {**out, "g": g_loss.item()}


def s_seed(settings: GanSettings, step: int) -> int:
    """The seed of step ``step``'s draws (z, mixing, noise): a run resumed at any step draws what it would have."""
    return settings.seed * 1_000_003 + step


def _save(run: _Run, out: Path, name: str, meta: dict) -> None:
    latent_avg = run.g_ema.mean_latent(4096, torch.Generator().manual_seed(0))[0]
    meta = {**meta, "steps_done": run.step, "history": run.history, "latent_avg": latent_avg.tolist()}
    write_model(run.g_ema, Path(out) / name, meta)
    atomic_write(resume_path(out, name), lambda tmp: torch.save(run.state(), tmp))


def train_stylegan2(real_batch: Callable[[int], Tensor], settings: GanSettings = GAN_SETTINGS, out: Path = Path("."),
                    name: str = "toy_stylegan2", *, meta: dict | None = None, resume: bool = True,
                    progress: bool | None = None) -> dict:
    """Train a StyleGAN2 on ``real_batch(step)`` (``(settings.batch_size, 3, size, size)`` in [-1, 1]).

    Writes ``out/<name>.safetensors`` (G_ema, rosinality's keys) with its ``.json`` sidecar (``generator``:
    the architecture, ``latent_avg``, ``settings``, the loss history, CPU time, plus ``meta``), and
    ``out/<name>.resume.pt`` to continue from. With ``resume`` an existing resume file is continued.
    Returns the sidecar dict.
    """
    if settings.threads:
        torch.set_num_threads(settings.threads)
    run = _Run(settings)
    resume_file = resume_path(out, name)
    sidecar = {"model": "StyleGAN2 generator (G_ema), dclip.baselines.stylegan2 layout",
               "generator": settings.config().to_dict(), "settings": asdict(settings), **(meta or {})}
    cpu = 0.0
    if resume and resume_file.exists():
        run.load(torch.load(resume_file, map_location="cpu", weights_only=True))
        previous = read_sidecar(Path(out) / f"{name}.json")
        run.history, cpu = previous.get("history", []), float(previous.get("cpu_seconds", 0.0))
    started, window = time.process_time(), []
    bar = progress_bar(range(run.step, settings.steps), desc=f"StyleGAN2 (from step {run.step})",
                       progress=progress)
    for step in bar:
        window.append(run.train_step(real_batch(step)))
        bar.set_postfix(d=f"{window[-1]['d']:.3f}", g=f"{window[-1]['g']:.3f}")
        if run.step % settings.save_every == 0 or run.step == settings.steps:
            means = {k: sum(w[k] for w in window if k in w) / sum(k in w for w in window)
                     for k in ("d", "g", "r1") if any(k in w for w in window)}
            run.history.append({"step": run.step, **{k: round(v, 4) for k, v in means.items()}})
            window = []
            sidecar["cpu_seconds"] = round(cpu + time.process_time() - started, 1)
            _save(run, out, name, sidecar)
    return read_sidecar(Path(out) / f"{name}.json")


def load_trained_stylegan2(path: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, Tensor]:
    """A generator written by :func:`train_stylegan2` (safetensors + sidecar); returns ``(generator,
    latent_avg)`` like :func:`dclip.baselines.stylegan2.load_stylegan2` (eval mode)."""
    path = Path(path).with_suffix(".safetensors")
    meta = read_sidecar(path.with_suffix(".json"))
    try:
        spec = meta["generator"]
        config = StyleGAN2Config(size=spec["size"], style_dim=spec["style_dim"], n_mlp=spec["n_mlp"],
                                 channels={int(k): v for k, v in spec["channels"].items()}, lr_mlp=spec["lr_mlp"])
        latent_avg = torch.tensor(meta["latent_avg"], dtype=torch.float32)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"'{path.with_suffix('.json')}' does not describe a StyleGAN2 generator (needs "
                         f"'generator' and 'latent_avg', as train_stylegan2 writes): {err}") from err
    generator = Generator(config)
    generator.load_strict(read_tensors(path))
    generator.latent_avg = latent_avg
    return generator.to(device).eval(), generator.latent_avg
