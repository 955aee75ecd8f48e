"""The shipped toy CLIP against invisible changes (issue 32's bar): for each toy edit, on 32 test faces that lack
its target, PGD on eq. 9 inside the 8/255 ball (of the [0, 1] range) finds nothing that beats the true edit's mean
loss by more than 0.05, and the true edit's loss is at most 0.35 (:func:`dclip.studies.edit_failures.clip_clears`).

The attack here uses a seed and a step size that neither the CLIP's training (:mod:`dclip.toy.clip_directions`:
seed 11, 2.5·ε/attack_steps) nor notebook 02's table (seed 0, 2.5·ε/100) use, and more steps than either. An edit
the shipped CLIP does not clear yet is a strict xfail: it fails the day the CLIP clears it, and then moves to
``CLEARS``.
"""
import pytest

from dclip.method.attributes import attribute
from dclip.method.losses import directional_clip_loss, text_direction
from dclip.models.clip import load_clip
from dclip.studies.edit_failures import AttackSettings, clip_clears, pgd_directional
from dclip.toy.judging import TOY_EDITS as EDITS
from dclip.toy.judging import lacking_faces, true_edit

#: The edits on which the shipped toy CLIP clears the bar (measured; the rest are strict xfails). The CLIP trained on
#: true-edit directions (commit 3504cd3, not shipped yet) clears all but smiling here.
CLEARS = ("glasses",)
UNSEEN = AttackSettings(steps=120, restarts=3, step_size=2.0 * (16 / 255) / 120, seed=424242)


@pytest.fixture(scope="module")
def clip():
    return load_clip("toy")


def _losses(clip, name: str, n: int = 32) -> tuple[float, float]:
    import torch

    attr = attribute(name)
    faces, records = lacking_faces(name, n)
    direction = text_direction(clip, attr.source, attr.target)
    with torch.no_grad():
        true_loss = float(directional_clip_loss(clip, faces, true_edit(records, name), direction).mean())
    return true_loss, float(pgd_directional(clip, faces, direction, UNSEEN)[1].mean())


@pytest.mark.parametrize("name", [n if n in CLEARS else pytest.param(
    n, marks=pytest.mark.xfail(strict=True, reason="the shipped toy CLIP does not clear this edit yet (notebook 02's "
                                                   "failure table)")) for n in EDITS])
def test_nothing_invisible_beats_the_true_edit(clip, name):
    true_loss, attack_loss = _losses(clip, name)
    assert clip_clears(true_loss, attack_loss), (
        f"{name}: true edit {true_loss:.3f}, best in the ball {attack_loss:.3f} (bar: ball ≥ true − 0.05, true ≤ 0.35)")


def test_the_toy_clip_still_reads_every_attribute(clip):
    from dclip.toy.domain import HELD_OUT_SEED
    from dclip.toy.train import clip_zero_shot

    accuracy = clip_zero_shot(clip, n=200, start=HELD_OUT_SEED + 200_000)  # not the faces its sidecar measured
    assert min(accuracy.values()) >= 0.95, accuracy
