"""What stops each toy edit: the CLIP, the generator or the recipe (notebook 02 at the toy profile).

Fine-tuning (eq. 10) chases whatever minimises the directional CLIP loss (eq. 9),
L_direction = 1 − cos(ΔI, ΔT). Three things must hold for it to end at the edit a reader expects, and the
toy world can test each one against the truth (:func:`dclip.toy.judging.true_edit`, the same face drawn with
the target):

* **the CLIP**: the true edit must score well (a low eq. 9 loss), and nothing a reader cannot see may score
  better. :func:`pgd_directional` searches an imperceptible L∞ ball around each face for the lowest loss
  (projected gradient descent, Madry et al. 2018); :func:`pixel_descent` descends eq. 9 on the pixels freely
  and the judge says what that optimum looks like;
* **the generator**: the DDPM must be able to show the target at all. The true edit is inverted (eq. 12) and
  regenerated (eq. 13) with the original model at the edit's t0, and the judge reads the round trip;
* **the recipe**: with the first two in order, the fine-tune's own eq. 9 loss on its training faces and on the
  test faces, and its judged result (:mod:`.judged_edits`), say whether training went far enough. The control
  is :func:`truth_finetune`: the same recipe (t0, lr, passes, training faces) with eq. 10's CLIP term replaced by
  the squared distance to the true edit. When even that perfect loss misses the targets, the recipe (or the
  generator) stops the edit whatever the CLIP does; when it meets them and the CLIP's fine-tune does not, the
  CLIP is what is left.

:func:`edit_failures` puts one row per edit together, and :func:`stands_in_the_way` reads the row against
:data:`BARS`, the bars of the issue that filed this table.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch

from ..method.attributes import attribute
from ..method.losses import directional_clip_loss, text_direction
from ..toy.attacks import AttackSettings, pgd_directional
from .common import Study, _interval, judged
from .judged_edits import TARGETS, meets_targets

__all__ = ["AttackSettings", "DescentSettings", "BARS", "pgd_directional", "pixel_descent", "edit_failures",
           "clip_clears", "stands_in_the_way", "failure_figure", "clip_against_the_ball", "truth_config",
           "finetune_on_truth", "truth_finetune"]


@dataclass(frozen=True)
class DescentSettings:
    """Adam on the pixels of each face, minimising eq. 9 with no generator and no bound (images clamped to
    [−1, 1]); it starts from the face plus noise of ``start_noise`` (eq. 9's ΔI is undefined at ΔI = 0)."""

    steps: int = 100
    lr: float = 0.01
    start_noise: float = 1e-3
    seed: int = 0


#: What the table is read against: an attack that beats the true edit's loss by more than ``attack_margin``, or a
#: true edit whose loss is above ``true_loss``, means the CLIP rewards something other than the edit; a round trip
#: of the true edit that the judge reads with the target on fewer than ``round_trip_hit`` of the faces means the
#: DDPM cannot show it (the toy world's hit target, :data:`~dclip.studies.judged_edits.TARGETS`).
BARS = {"attack_margin": 0.05, "true_loss": 0.35, "round_trip_hit": TARGETS["hit"]}


def pixel_descent(clip, originals: torch.Tensor, direction: torch.Tensor,
                  settings: DescentSettings = DescentSettings()) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 9 minimised on the pixels themselves (:class:`DescentSettings`): returns (the images it ends at, their
    per-face loss)."""
    x = originals.detach().float()
    generator = torch.Generator().manual_seed(settings.seed)
    y = (x + settings.start_noise * torch.randn(x.shape, generator=generator)).clamp(-1, 1).requires_grad_(True)
    optimizer = torch.optim.Adam([y], lr=settings.lr)
    for _ in range(settings.steps):
        loss = directional_clip_loss(clip, x, y, direction).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            y.clamp_(-1, 1)
    with torch.no_grad():
        return y.detach(), directional_clip_loss(clip, x, y, direction).cpu()


def _loss_columns(prefix: str, losses: torch.Tensor) -> dict:
    """``prefix``: the mean of per-face losses (1-D, or 2-D with one row per fine-tune), ``prefix_ci`` its 95 %
    bootstrap interval."""
    values = losses.detach().cpu().float().numpy()
    return {prefix: round(float(values.mean()), 4), f"{prefix}_ci": _interval(values)}


def _edit_losses(ctx, attr, faces: torch.Tensor, runs: int) -> torch.Tensor:
    """Eq. 9 of each fine-tune's edit of ``faces`` (rows: fine-tunes ``0 .. runs − 1``, columns: faces)."""
    direction = text_direction(ctx.clip, attr.source, attr.target)
    models = [ctx.finetune(attr, replicate=r) for r in range(runs)]  # trained outside no_grad, once per session
    with torch.no_grad():
        return torch.stack([directional_clip_loss(ctx.clip, faces, ctx.edit(model, faces, attr.t0, attr.domain),
                                                  direction).cpu() for model in models])


def clip_clears(true_loss: float, attack_loss: float) -> bool:
    """The CLIP's bar (:data:`BARS`): nothing in the ball beats the true edit by more than ``attack_margin``, and the
    true edit's loss is at most ``true_loss``."""
    return attack_loss >= true_loss - BARS["attack_margin"] and true_loss <= BARS["true_loss"]


def stands_in_the_way(row: dict) -> str:
    """Which of the CLIP, the generator and the recipe stops the edit of ``row`` (:data:`BARS`); "nothing" when
    none does and the fine-tune meets the toy world's targets.

    * the CLIP, when an invisible change beats the true edit or the true edit scores badly, and also when the
      control fine-tune on the true edit (``truth_met``, :func:`truth_finetune`) meets the targets while the CLIP's
      fine-tune does not: the recipe and the DDPM can reach the edit, the CLIP loss does not lead there;
    * the generator, when the DDPM's round trip of the true edit loses the target;
    * the recipe, when the fine-tune misses the targets and the DDPM can show the target but even the control
      fine-tune misses them too (or, in a row without the control, when nothing else is found)."""
    blockers = []
    if not clip_clears(row["true_loss"], row["attack_loss"]):
        blockers.append("CLIP")
    if row["round_trip_hit"] is not None and row["round_trip_hit"] < BARS["round_trip_hit"]:
        blockers.append("generator")
    truth_met, met = row.get("truth_met"), row.get("targets met")
    if truth_met is False and not met and "generator" not in blockers:
        blockers.append("recipe")
    if not blockers and not met:
        blockers.append("CLIP" if truth_met else "recipe")
    return ", ".join(blockers) or "nothing"


def truth_config(config):
    """The control's :class:`~dclip.method.finetune.FinetuneConfig`: ``config`` (its t0, lr, passes, batches and
    seed) with eq. 10's weights set to λ_CLIP 0, λ_L1 0, λ_ID 0 and a squared error λ_L2 1. Trained on latents
    whose x0 is the true edit (:func:`truth_finetune`), the loss is then the mean (x0 − x̂)² of the chain's end to
    the true edit. A squared error rather than eq. 10's L1, which weighs the many pixels an edit leaves alone as
    much as the few it changes: on 8 validation faces (angry, the toy recipe: 8 faces × 6 passes at lr 3e-5) the
    L1 control reached a judge hit of 0.12, the squared error 0.75."""
    return replace(config, lambda_clip=0.0, lambda_l1=0.0, lambda_id=0.0, lambda_l2=1.0)


def finetune_on_truth(base: torch.nn.Module, latents, records: list, name: str, clip, config, *,
                      progress: bool | None = None):
    """The control fine-tune itself: :func:`dclip.method.finetune.finetune` of ``base`` with :func:`truth_config`
    of ``config`` on ``latents`` whose x0 is replaced by the true edit of the faces ``records`` towards ``name``
    (:func:`dclip.toy.judging.true_edit`). Returns the :class:`~dclip.method.finetune.FinetuneResult`."""
    from ..method.finetune import finetune
    from ..toy.judging import true_edit

    truth = true_edit(records, name).to(latents.x0)
    return finetune(base, replace(latents, x0=truth), clip, truth_config(config), progress=progress)


def truth_finetune(ctx, name: str, *, replicate: int = 0, progress: bool | None = None) -> torch.nn.Module:
    """The toy edit ``name`` fine-tuned towards the true edit instead of the CLIP (:func:`finetune_on_truth`): the
    same recipe, base DDPM and training faces as :meth:`Context.finetune` (``replicate``) and the latents those
    faces invert to at t0. Once per session; toy profile only."""
    attr = attribute(name)
    config = ctx.world.finetune_config(name, None, replicate)

    def train() -> torch.nn.Module:
        images = ctx.world.train_images(attr.domain, replicate)
        records = ctx.world.records(images)
        if records is None:
            raise ValueError(f"the truth fine-tune of '{name}' needs toy training faces the world drew itself; "
                             "it cannot run with a training folder (train_dirs).")
        latents = ctx.latents(images, config.t0, attr.domain, ctx.profile.n_inv_train, progress=progress)
        result = finetune_on_truth(ctx.unet(attr.domain), latents, records, name, ctx.clip, config, progress=progress)
        return result.model.requires_grad_(False)

    return ctx.memo.get(("truth fine-tune", attr.domain, truth_config(config), replicate), train)


def _truth_columns(ctx, name: str, faces: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """(the control's columns, its edit of ``faces``). The columns: :func:`truth_finetune`'s edit of the test
    ``faces`` judged (``truth_hit`` with its interval, ``truth_kept``, ``truth_met``: whether it meets
    :data:`TARGETS`) and ``truth_fit_mae``, the pixel MAE ([0, 1] scale) of its edit of its own training faces to
    their true edit (how well it fits what it was shown)."""
    from ..method.metrics import mae
    from ..toy.judging import true_edit

    attr = attribute(name)
    model = truth_finetune(ctx, name)
    with torch.no_grad():
        edited = ctx.edit(model, faces, attr.t0, attr.domain)
        row = judged(ctx, faces, edited, name)
        train = ctx.world.train_images(attr.domain, replicate=0)
        fit = mae(true_edit(ctx.world.records(train), name), ctx.edit(model, train, attr.t0, attr.domain).cpu())
    return {"truth_hit": row["hit"], "truth_hit_ci": row.get("hit_ci"), "truth_kept": row["kept"],
            "truth_met": meets_targets(row), "truth_fit_mae": round(float(fit.mean()), 4)}, edited


def edit_failures(ctx, names: Sequence[str], *, runs: int = 1, judged_rows: Sequence[dict] = (),
                  attack: AttackSettings = AttackSettings(), descent: DescentSettings = DescentSettings()) -> Study:
    """One row per toy edit of ``names``, on the profile's test faces that lack its target (all eq. 9 losses are
    means over faces, with 95 % bootstrap intervals):

    * ``true_loss``: the true edit's eq. 9 loss; ``attack_loss``: the lowest :func:`pgd_directional` reaches;
    * ``descent_loss``, ``descent_hit``, ``descent_formed``: where :func:`pixel_descent` ends, and what the judge
      reads there (hit and well-formed);
    * ``train_loss`` / ``test_loss``: eq. 9 of the fine-tunes' edits (``runs`` of them, as trained by
      :meth:`Context.finetune`) of their training faces and of the test faces;
    * ``round_trip_hit``, ``round_trip_mae``: the original DDPM's round trip of the true edit at the edit's t0,
      judged (the target read on a well-formed face) and its pixel MAE ([0, 1] scale) to the true edit;
    * ``truth_hit``, ``truth_kept``, ``truth_met``, ``truth_fit_mae``: the control fine-tune on the true edit
      (:func:`truth_finetune`, one fine-tune) on the same test faces;
    * ``targets met`` (from ``judged_rows``, :func:`~dclip.studies.judged_edits.judged_edits`' fine-tuned rows)
      and ``stands in the way`` (:func:`stands_in_the_way`).

    ``study.panels["figure"]`` is :func:`failure_figure`; ``study.extra["settings"]`` the attack's and the
    descent's settings. Toy profile only.
    """
    if not ctx.profile.is_toy:
        raise ValueError("edit_failures needs the toy profile: only the toy world knows the true edit.")
    from ..method.metrics import mae
    from ..toy.judging import true_edit

    met = {r["edit"]: r.get("targets met") for r in judged_rows if r.get("model") == "fine-tuned"}
    columns = {}
    study = Study(extra={"settings": [{"part": "attack", **asdict(attack)}, {"part": "pixel descent", **asdict(descent)}]})
    for name in names:
        attr = attribute(name)
        faces = ctx.world.edit_images(name, split="test")
        truth = true_edit(ctx.world.records(faces), name)
        direction = text_direction(ctx.clip, attr.source, attr.target)
        with torch.no_grad():
            true_loss = directional_clip_loss(ctx.clip, faces, truth, direction).cpu()
        attacked, attack_loss = pgd_directional(ctx.clip, faces, direction, attack)
        descended, descent_loss = pixel_descent(ctx.clip, faces, direction, descent)
        descent_judged = judged(ctx, faces, descended, name)
        round_trip = ctx.edit(ctx.unet(attr.domain), truth, attr.t0, attr.domain)
        train = ctx.world.train_images(attr.domain, replicate=0)
        truth_columns, truth_edited = _truth_columns(ctx, name, faces)
        row = {"edit": name, "t0": attr.t0, **_loss_columns("true_loss", true_loss),
               **_loss_columns("attack_loss", attack_loss), **_loss_columns("descent_loss", descent_loss),
               "descent_hit": descent_judged.get("hit"), "descent_formed": descent_judged.get("formed"),
               **_loss_columns("train_loss", _edit_losses(ctx, attr, train, runs)),
               **_loss_columns("test_loss", _edit_losses(ctx, attr, faces, runs)),
               "round_trip_hit": _round_trip_hit(ctx, round_trip, name),
               "round_trip_mae": round(float(mae(truth, round_trip).mean()), 4),
               **truth_columns, "of": len(faces), "runs": runs, "targets met": met.get(name)}
        row["stands in the way"] = stands_in_the_way(row)
        study.rows.append(row)
        images = {"original": faces, "true edit": truth, "PGD in the ball": attacked, "pixel descent": descended,
                  "round trip of the true edit": round_trip, "fine-tuned on the true edit": truth_edited}
        columns[name] = {label: batch[0].detach().cpu().float() for label, batch in images.items()}
    study.panels["figure"] = failure_figure(ctx, columns)
    return study


def _round_trip_hit(ctx, round_trip: torch.Tensor, name: str) -> float:
    """The share of round trips the judge accepts as well-formed and reads with the target of ``name``."""
    from ..toy.judging import judge_target

    head, value = judge_target(name)
    readings = ctx.judge.predict(round_trip.detach().cpu().float())
    return round(sum(r["well_formed"] and r[head] == value for r in readings) / len(readings), 4)


def failure_figure(ctx, columns: dict[str, dict[str, torch.Tensor]]) -> Study:
    """The table's figure: one column per edit (its first test face); rows original | true edit | PGD in the ball
    (looks like the original) | pixel descent on eq. 9 | the DDPM's round trip of the true edit | the control fine-tune
    on the true edit (:func:`truth_finetune`); under each panel the
    judge's reading of the edited attribute. ``columns``: edit -> row label -> one image."""
    from .judged_edits import _readings

    study = Study()
    labels = list(next(iter(columns.values())))
    study.grid = [[columns[name][label] for name in columns] for label in labels]
    study.row_labels, study.col_labels = labels, list(columns)
    study.notes = [[_readings(ctx, name, columns[name][label][None])[0] for name in columns] for label in labels]
    study.title = ("What eq. 9 rewards, what the DDPM can show and what a perfect loss reaches, per edit; under each face "
                   "the judge's reading")
    return study


def clip_against_the_ball(clip, names: Sequence[str], *, n: int = 32, start: int | None = None,
                          attack: AttackSettings = AttackSettings()) -> list[dict]:
    """The CLIP's side of the table without a generator: per edit, on ``n`` faces from seed ``start`` (default: the
    validation faces, where settings are chosen) that lack its target, the true edit's eq. 9 loss, the best
    :func:`pgd_directional` reaches in the ball, and whether the CLIP clears :data:`BARS` (``clears``)."""
    from ..toy.domain import VALIDATION_SEED
    from ..toy.judging import lacking_faces, true_edit

    rows = []
    for name in names:
        attr = attribute(name)
        faces, records = lacking_faces(name, n, VALIDATION_SEED if start is None else start)
        direction = text_direction(clip, attr.source, attr.target)
        with torch.no_grad():
            true_loss = float(directional_clip_loss(clip, faces, true_edit(records, name), direction).mean())
        attack_loss = float(pgd_directional(clip, faces, direction, attack)[1].mean())
        rows.append({"edit": name, "true_loss": round(true_loss, 4), "attack_loss": round(attack_loss, 4),
                     "clears": clip_clears(true_loss, attack_loss)})
    return rows
