"""Null edits (dclip.studies.composition): faces that already have an edit's target, edited once and many times in a
row; what is kept and how far each lands from the original, on outcomes known by construction."""
import pytest
import torch

from dclip.studies.composition import null_edit_outcomes, null_edit_row
from dclip.toy.judging import having_faces, judge_target
from dclip.toy.nets import load_judge


def test_having_faces_have_the_target_and_style_edits_are_drawn_in_their_style():
    faces, records = having_faces("glasses", 6)
    head, value = judge_target("glasses")
    assert faces.shape[0] == 6 and all(getattr(r, head) == value for r in records)
    judge = load_judge()
    sketches, _ = having_faces("sketch", 4)
    assert [r["style"] for r in judge.predict(sketches)] == ["sketch"] * 4


def test_a_null_edit_that_changes_nothing_keeps_everything_and_one_that_erases_keeps_nothing():
    judge = load_judge()
    faces, _ = having_faces("smiling", 6)
    calls = []

    def unchanged(x):
        calls.append(1)
        return x.clone()

    same = null_edit_outcomes(judge, faces, unchanged, repeats=10)
    assert len(calls) == 10 and set(same) == {1, 10}
    assert torch.equal(same[10]["kept"], torch.ones(6)) and same[10]["distance"].abs().max() < 1e-6
    drift = null_edit_outcomes(judge, faces, lambda x: (x + 0.15).clamp(-1, 1), repeats=5)
    assert (drift[5]["distance"] > drift[1]["distance"]).all()  # each application moves further away
    erased = null_edit_outcomes(judge, faces, torch.zeros_like, repeats=2)
    assert erased[1]["kept"].max() == 0  # a blank image is refused: nothing kept
    row = null_edit_row("smiling", [same, erased | {10: erased[2]}], repeats=10)
    assert row["kept once"] == pytest.approx(0.5) and row["of"] == 6 and row["runs"] == 2
    assert row["kept once_ci"][0] <= 0.5 <= row["kept once_ci"][1]
    with pytest.raises(ValueError, match="repeats"):
        null_edit_outcomes(judge, faces, unchanged, repeats=0)
