"""Teaching the toy CLIP the property eq. 9 presupposes: an edit's image direction points along its text direction,
and no invisible change does.

Eq. 9 compares ΔI = E_I(x_edit) − E_I(x) (normalised) with ΔT = E_T(target) − E_T(source). A CLIP trained only
contrastively on (image, caption) pairs need not make ΔI of a true edit point along ΔT, and may let a change
inside an imperceptible L∞ ball point along it better than the edit does (the failure table of notebook 02,
:mod:`dclip.studies.edit_failures`). :func:`train_clip_directions` continues a toy CLIP's image tower on three
terms per step (the text tower stays as it is, so every ΔT stays where it was):

* **align**: 1 − cos(ΔI, ΔT) of true edits (:func:`dclip.toy.judging.true_edit`) of fresh training faces, each
  towards a random edit whose target it lacks;
* **margin**: hinge(L_true + ``margin`` − L_ball): the loss of the best change
  :func:`dclip.toy.attacks.pgd_directional` finds inside the ball (``attack_steps`` sign steps from one random start,
  on the current weights) must stay above the true edit's;
* **contrastive**: the toy CLIP's own training loss (:func:`dclip.toy.train.contrastive_loss`), so that it still
  reads every attribute zero-shot.

Training faces only (seeds below :data:`dclip.toy.domain.HELD_OUT_SEED`); the judge plays no part.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..method.attributes import attribute
from ..method.losses import directional_clip_loss, text_direction
from .attacks import AttackSettings, pgd_directional
from .judging import TOY_EDITS as EDITS
from .judging import lacks, true_edit
from .training_log import TrainingLog, discard_init_copy, init_copy
from .train import CLIP_SETTINGS, build_clip, contrastive_loss, domain_record, draw_batch, save_clip

__all__ = ["DirectionSettings", "DIRECTION_SETTINGS", "EDITS", "train_clip_directions"]



@dataclass(frozen=True)
class DirectionSettings:
    steps: int = 800
    batch_size: int = 32          # true-edit pairs per step (each face towards one edit it lacks)
    lr: float = 2e-4              # AdamW on the image tower, linear warm-up then cosine decay to lr / 10
    warmup: int = 20
    weight_decay: float = 0.05
    epsilon: float = 16 / 255     # the ball (8/255 of the [0, 1] range, as the failure table measures)
    attack_steps: int = 12        # PGD sign steps per training step (step size 2.5 · ε / attack_steps)
    margin: float = 0.3           # the ball's best must stay this far above the true edit's loss
    contrastive_weight: float = 1.0
    seed: int = 11
    threads: int = 2
    save_every: int = 100


DIRECTION_SETTINGS = DirectionSettings()


def _edit_pairs(step: int, settings: DirectionSettings) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Fresh training faces, their true edits and the edit of each (a random edit whose target the face lacks)."""
    x, records, _ = draw_batch(step, settings.batch_size, seed=settings.seed + 1000)
    rng = np.random.default_rng([settings.seed, 3, step])
    names = []
    for face in records:
        lacking = [n for n in EDITS if lacks(face, n)]
        names.append(lacking[int(rng.integers(len(lacking)))])
    truth = torch.cat([true_edit([f], n) for f, n in zip(records, names)])
    return x, truth, names


def train_clip_directions(init: Path, settings: DirectionSettings = DIRECTION_SETTINGS, out: Path | None = None,
                          name: str = "toy_clip", *, progress: bool | None = None) -> dict:
    """Continue the toy CLIP at ``init`` (a ``.safetensors`` written by :func:`dclip.toy.train.train_clip`) on the
    three terms of the module docstring; writes ``out/<name>`` (and resumes a stopped run, as every toy trainer).
    Returns the sidecar, with the zero-shot accuracy on held-out faces after training (``toy train clip-directions`` adds
    the ball's bars on validation faces)."""
    import json

    from safetensors.torch import load_file

    from ..models.folder import user_models_dir
    from .train import _cosine_lr

    if settings.threads:
        torch.set_num_threads(settings.threads)
    out = Path(out or user_models_dir())
    given = Path(init)
    init = init_copy(given, out / name, "toy CLIP", "clip")
    clip = build_clip(0)
    clip.model.load_state_dict({k: v.float() for k, v in load_file(str(init)).items()})
    model = clip.model.train()
    tower = list(model.visual.parameters())
    model.requires_grad_(False)
    for p in tower:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(tower, lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.no_grad():
        text = {n: text_direction(clip, attribute(n).source, attribute(n).target) for n in EDITS}
    attack = AttackSettings(epsilon=settings.epsilon, steps=settings.attack_steps, restarts=1,
                            step_size=2.5 * settings.epsilon / settings.attack_steps)
    contrastive = replace(CLIP_SETTINGS, seed=settings.seed + 2000)
    before = json.loads(Path(init).with_suffix(".json").read_text())
    meta = {**{k: v for k, v in before.items() if k not in ("history", "steps_done", "cpu_seconds", "init",
                                                             "zero_shot_held_out")},
            "settings": asdict(settings), "trained": "image tower on true-edit directions (dclip.toy.clip_directions)",
            "domain": domain_record(), "init": before}
    log = TrainingLog(settings, meta, out, name, modules={"model": model}, optimizers={"adamw": opt},
                   generators={"attack": generator})
    for step in log.start("toy CLIP directions", progress):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, settings.steps, settings.lr, settings.warmup)
        x, truth, names = _edit_pairs(step, settings)
        directions = torch.cat([text[n] for n in names])
        ball, _ = pgd_directional(clip, x, directions, attack, generator)
        true_loss = directional_clip_loss(clip, x, truth, directions)
        ball_loss = directional_clip_loss(clip, x, ball, directions)
        loss = (true_loss.mean() + torch.relu(true_loss + settings.margin - ball_loss).mean()
                + settings.contrastive_weight * contrastive_loss(clip, step, contrastive, generator))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log.record(step, loss.item()):
            save_clip(clip, out / name, meta, final=step + 1 == settings.steps)
            log.saved()
    log.finish()
    discard_init_copy(init, given)
    return meta
