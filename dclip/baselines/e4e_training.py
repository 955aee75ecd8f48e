"""Training an e4e encoder for a given StyleGAN2 (Tov et al., 2021, "Designing an encoder for StyleGAN image
manipulation"), as far as its losses apply to a small generator on the CPU.

e4e's ``training/coach.py`` trains :class:`dclip.baselines.e4e.Encoder4Editing` against a frozen generator with

* the reconstruction losses: ``l2_lambda * ||x - G(E(x))||^2 + lpips_lambda * LPIPS(x, G(E(x)))`` (plus an
  identity term on faces; here ``identity`` when the caller passes one);
* the two regularisers that make the codes editable (Sec. 3.3):
  - **delta regularisation**: ``delta_norm_lambda * sum_i ||w_i - w_0||_2``, the W+ entries kept near the first;
  - **progressive training**: at first only ``w_0`` is learned (every entry equals it); from
    ``progressive_start`` one more offset Δ_i is switched on every ``progressive_every`` steps;
  - **a latent discriminator** on ``w_0`` against mapped random z (non-saturating loss, R1 with
    ``gamma = 10`` every 16 steps), ``w_discriminator_lambda`` in the encoder's loss;
* Ranger in e4e; Adam here (lr 1e-4 in e4e; the toy's ``lr``), input faces in [-1, 1], codes plus the
  generator's average latent (pSp's ``start_from_latent_avg``), renders with the generator's stored noise.

The images come from the caller (``real_batch(step)``) and so does the perceptual distance (LPIPS on photos;
the toy world passes its judge's feature distance). Saved as safetensors + a JSON sidecar (the encoder's
architecture); :func:`load_trained_e4e` reads it back into :class:`dclip.baselines.e4e.E4E`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..models.folder import read_sidecar, read_tensors, write_model
from ..runtime.progress import progress_bar
from .e4e import E4E, Encoder4Editing
from .stylegan2 import Generator
from .stylegan2_training import d_logistic_loss, g_nonsaturating_loss, r1_penalty

__all__ = ["E4eSettings", "E4E_SETTINGS", "LatentCodesDiscriminator", "train_e4e", "load_trained_e4e"]

PerceptualFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class E4eSettings:
    """One block of literals: the toy world's e4e (loss weights: e4e's FFHQ encoder options)."""

    widths: tuple[int, ...] = (32, 48, 64, 128)   # one IR-SE unit per stage
    steps: int = 1500
    batch_size: int = 32
    lr: float = 5e-4
    l2_lambda: float = 1.0
    lpips_lambda: float = 0.8
    id_lambda: float = 0.1
    delta_norm_lambda: float = 2e-4
    w_discriminator_lambda: float = 0.1
    w_discriminator_lr: float = 2e-5
    d_r1_gamma: float = 10.0
    d_reg_every: int = 16
    progressive_start: int = 300   # steps with w_0 alone (e4e: 20000 of its 300000)
    progressive_every: int = 75    # then one more W+ offset every so many steps (e4e: 2000); all on by half-way
    seed: int = 0
    threads: int = 2
    save_every: int = 250


E4E_SETTINGS = E4eSettings()


class LatentCodesDiscriminator(nn.Module):
    """e4e's latent discriminator: an MLP ``style_dim -> ... -> 1`` with leaky ReLUs (0.2)."""

    def __init__(self, style_dim: int, n_mlp: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_mlp - 1):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        self.mlp = nn.Sequential(*layers, nn.Linear(style_dim, 1))

    def forward(self, w: Tensor) -> Tensor:
        return self.mlp(w)


def active_offsets(settings: E4eSettings, step: int, n_styles: int) -> int:
    """How many W+ offsets Δ_1 ... are trained at ``step`` (progressive training); the rest equal w_0."""
    if step < settings.progressive_start:
        return 0
    return min(n_styles - 1, 1 + (step - settings.progressive_start) // settings.progressive_every)


def progressive_codes(codes: Tensor, active: int) -> Tensor:
    """``codes`` with every entry past ``active`` offsets set back to ``w_0``."""
    mask = torch.zeros(codes.shape[1], 1, device=codes.device)
    mask[1: 1 + active] = 1
    return codes[:, :1] + mask * (codes - codes[:, :1])


def delta_norm(codes: Tensor) -> Tensor:
    """e4e's delta regularisation: ``sum_i ||w_i - w_0||_2``, averaged over the batch."""
    return (codes[:, 1:] - codes[:, :1]).norm(dim=2).sum(1).mean()


def build_encoder(generator: Generator, settings: E4eSettings) -> Encoder4Editing:
    return Encoder4Editing(generator.n_latent, stages=tuple((w, 1) for w in settings.widths),
                           style_dim=generator.style_dim, input_size=generator.size)


class _Trainer:
    def __init__(self, generator: Generator, settings: E4eSettings, perceptual: PerceptualFn, identity):
        torch.manual_seed(settings.seed)
        self.g, self.s, self.perceptual, self.identity = generator.eval().requires_grad_(False), settings, perceptual, identity
        self.encoder = build_encoder(generator, settings).train()
        self.disc = LatentCodesDiscriminator(generator.style_dim).train()
        self.opt = torch.optim.Adam(self.encoder.parameters(), lr=settings.lr)
        self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=settings.w_discriminator_lr, betas=(0.9, 0.999))
        self.latent_avg = generator.latent_avg.detach().reshape(1, 1, -1)

    def codes(self, x: Tensor, step: int) -> Tensor:
        return progressive_codes(self.encoder(x) + self.latent_avg, active_offsets(self.s, step, self.g.n_latent))

    def discriminator_step(self, x: Tensor, step: int, rng: torch.Generator) -> None:
        with torch.no_grad():
            real_w = self.g.mapping(torch.randn(len(x), self.g.style_dim, generator=rng))
            fake_w = self.codes(x, step)[:, 0]
        loss = d_logistic_loss(self.disc(real_w), self.disc(fake_w))
        if step % self.s.d_reg_every == 0:
            loss = loss + self.s.d_r1_gamma / 2 * r1_penalty(self.disc, real_w) * self.s.d_reg_every
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()

    def encoder_step(self, x: Tensor, step: int) -> dict:
        codes = self.codes(x, step)
        y = self.g([codes], input_is_latent=True, randomize_noise=False)
        terms = {"l2": F.mse_loss(y, x), "lpips": self.perceptual(y, x).mean(), "delta": delta_norm(codes),
                 "w_adv": g_nonsaturating_loss(self.disc(codes[:, 0]))}
        s = self.s
        loss = (s.l2_lambda * terms["l2"] + s.lpips_lambda * terms["lpips"] + s.delta_norm_lambda * terms["delta"]
                + s.w_discriminator_lambda * terms["w_adv"])
        if self.identity is not None:
            terms["id"] = self.identity(y, x).mean()
            loss = loss + s.id_lambda * terms["id"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {k: v.item() for k, v in terms.items()}


def train_e4e(real_batch: Callable[[int], Tensor], generator: Generator, perceptual: PerceptualFn,
              settings: E4eSettings = E4E_SETTINGS, out: Path = Path("."), name: str = "toy_e4e", *,
              identity: PerceptualFn | None = None, meta: dict | None = None, progress: bool | None = None) -> dict:
    """Train an e4e encoder for ``generator`` (frozen) on ``real_batch(step)``; write ``out/<name>`` (safetensors
    + sidecar with the architecture) every ``save_every`` steps, with a resume file beside it
    (:mod:`dclip.runtime.resume`) that a second call with the same settings continues from. ``perceptual(y, x) -> (N,)`` stands for LPIPS,
    ``identity(y, x) -> (N,)`` (optional) for e4e's ID loss. Returns the sidecar dict."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    trainer = _Trainer(generator, settings, perceptual, identity)
    sidecar = {"model": "e4e encoder (dclip.baselines.e4e.Encoder4Editing)", "n_styles": generator.n_latent,
               "style_dim": generator.style_dim, "input_size": generator.size, "settings": asdict(settings),
               **(meta or {})}
    from ..runtime.resume import load_state, resume_path, save_state

    state = dict(modules={"encoder": trainer.encoder, "discriminator": trainer.disc},
                 optimizers={"encoder": trainer.opt, "discriminator": trainer.d_opt}, generators={})
    resumed = load_state(resume_path(out, name), asdict(settings), **state)
    first, history, cpu_before = ((resumed["step"], list(resumed["log"]["history"]), resumed["log"]["cpu_seconds"])
                                  if resumed else (0, [], 0.0))
    window, started = [], time.process_time()
    for step in progress_bar(range(first, settings.steps), desc="e4e" + (f" (resumed at step {first})" if first else ""),
                             progress=progress):
        x = real_batch(step)
        rng = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
        trainer.discriminator_step(x, step, rng)
        window.append(trainer.encoder_step(x, step))
        if (step + 1) % settings.save_every == 0 or step + 1 == settings.steps:
            history.append({"step": step + 1, **{k: round(sum(w[k] for w in window) / len(window), 5)
                                                 for k in window[-1]}})
            window = []
            sidecar.update(steps_done=step + 1, history=history,
                           cpu_seconds=round(cpu_before + time.process_time() - started, 1))
            write_model(trainer.encoder, Path(out) / name, sidecar)
            save_state(resume_path(out, name), step=step + 1, settings=asdict(settings),
                       log={"history": history, "cpu_seconds": sidecar["cpu_seconds"]}, **state)
    resume_path(out, name).unlink(missing_ok=True)  # finished: nothing left to resume
    return sidecar


def load_trained_e4e(path: str | Path, generator: Generator) -> E4E:
    """An encoder written by :func:`train_e4e`, paired with its ``generator`` (eval mode, frozen)."""
    path = Path(path).with_suffix(".safetensors")
    meta = read_sidecar(path)
    try:
        settings = E4eSettings(**{k: tuple(v) if k == "widths" else v for k, v in meta["settings"].items()})
        shape = (meta["n_styles"], meta["style_dim"], meta["input_size"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"'{path.with_suffix('.json')}' does not describe an e4e encoder (train_e4e writes "
                         f"'settings', 'n_styles', 'style_dim', 'input_size'): {err}") from err
    if shape != (generator.n_latent, generator.style_dim, generator.size):
        raise ValueError(f"the e4e encoder '{path}' gives {shape[0]} x {shape[1]} codes of {shape[2]} px faces; the "
                         f"generator takes {generator.n_latent} x {generator.style_dim} at {generator.size} px: "
                         "pass the generator it was trained for")
    encoder = build_encoder(generator, settings)
    encoder.load_state_dict(read_tensors(path))
    return E4E(encoder.eval().requires_grad_(False), generator, generator.latent_avg).eval()
