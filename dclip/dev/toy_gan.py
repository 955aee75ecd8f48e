"""``python -m dclip toy train gan`` and ``toy train e4e``: the toy world's StyleGAN2 and its e4e encoder.

The trainers live with the baselines (:mod:`dclip.baselines.stylegan2_training`,
:mod:`dclip.baselines.e4e_training`) and take their images from the caller; this module wires the toy
world's training faces in (:func:`dclip.toy.train.draw_batch`, training seeds only), then measures the
shipped model against its bars (:mod:`dclip.studies.toy_gan`) and records them in the sidecar.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..models.folder import shipped_file, user_models_dir

__all__ = ["train_gan", "train_e4e", "record_in_sidecar", "GAN_NAME", "E4E_NAME"]

GAN_NAME, E4E_NAME = "toy_stylegan2", "toy_e4e"


def record_in_sidecar(path: Path, **entries) -> dict:
    """Add ``entries`` to a model's JSON sidecar (atomically)."""
    from ..runtime.atomic import atomic_write

    sidecar = path.with_suffix(".json")
    meta = {**json.loads(sidecar.read_text()), **entries}
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1, default=str) + "\n"))
    return meta


def train_gan(settings=None, out: Path | None = None, *, progress: bool | None = None) -> dict:
    """Train (or continue) the toy StyleGAN2 on photo-style toy faces, then measure and record its bars."""
    from ..baselines.stylegan2_training import GAN_SETTINGS, train_stylegan2
    from ..toy.train import domain_record, draw_batch

    settings, out = settings or GAN_SETTINGS, Path(out or user_models_dir())
    train_stylegan2(lambda step: draw_batch(step, settings.batch_size, seed=settings.seed)[0], settings, out,
                    GAN_NAME, meta={"domain": domain_record(), "images": "photo-style toy faces (training seeds)"},
                    progress=progress)
    from ..studies.toy_gan import gan_bars

    return record_in_sidecar(Path(out) / f"{GAN_NAME}.safetensors", bars=gan_bars(folder=out))


def load_toy_gan(folder: Path | None = None, device="cpu"):
    """The toy StyleGAN2 in ``folder`` (default: the toy models' folder): ``(generator, latent_avg)``."""
    from ..studies.toy_gan import load_toy_gan as load

    return load(folder, device)


def train_e4e(settings=None, out: Path | None = None, *, progress: bool | None = None) -> dict:
    """Train the toy e4e encoder for the shipped toy StyleGAN2 (in ``out``) on photo-style toy faces; the judge's
    feature distance stands for LPIPS and its identity read-back for the ID loss. Records the reconstruction
    error on held-out faces in the sidecar."""
    from ..baselines.e4e_training import E4E_SETTINGS, train_e4e as train
    from ..toy.nets import judge_perceptual, load_judge
    from ..toy.train import domain_record, draw_batch

    settings, out = settings or E4E_SETTINGS, Path(out or user_models_dir())
    gan_folder = out if (out / f"{GAN_NAME}.safetensors").is_file() else None  # else the toy models' folder
    generator, _ = load_toy_gan(gan_folder)
    judge = load_judge()

    def identity(y, x):  # the toy identity measure: the judge's identity parameters, read back from both
        return (judge(y)["identity"] - judge(x)["identity"]).abs().mean(1)

    train(lambda step: draw_batch(step, settings.batch_size, seed=settings.seed + 1)[0], generator,
          judge_perceptual(judge), settings, out, E4E_NAME, identity=identity,
          meta={"domain": domain_record(), "generator": shipped_file(GAN_NAME, gan_folder).name,
                "perceptual": "toy judge feature distance (dclip.toy.nets.judge_perceptual)",
                "identity": "toy judge identity read-back (L1)"}, progress=progress)
    from ..studies.toy_gan import e4e_error

    return record_in_sidecar(Path(out) / f"{E4E_NAME}.safetensors", held_out=e4e_error(folder=out, gan_folder=gan_folder))
