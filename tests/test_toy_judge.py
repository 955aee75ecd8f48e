"""The toy judge against the truth: it reads perfect edits as hits, refuses images that are not well-formed toy
faces (including corruption kinds it never saw), reads identities back, and the intervals it reports cover."""
import numpy as np
import pytest
import torch

from dclip.toy import corruptions, domain, judging

EDITS = [name for name in judging.JUDGE_TARGETS if name != "photo"]
START = domain.HELD_OUT_SEED + 300_000  # held-out faces no other test uses


@pytest.fixture(scope="module")
def judge():
    from dclip.toy.nets import load_judge

    return load_judge()


@pytest.mark.parametrize("name", EDITS)
def test_a_perfect_edit_is_a_hit_that_keeps_everything_else(judge, name):
    """The true edit (the same face re-drawn with the target) is read as the target on >= 90 % of faces that
    lacked it, keeps >= 95 % of the other attributes, and lies at distance 0 from itself; the unedited original
    is never a hit and lies farther from the truth."""
    faces, records = judging.lacking_faces(name, 32, START)
    truth = judging.true_edit(records, name)
    perfect = judging.judge_edit(judge, faces, truth, name, records)
    assert perfect["hit"] >= 0.9 and perfect["kept"] >= 0.95, perfect
    assert perfect["mae_edit"] == 0 and perfect["judge_edit"] == pytest.approx(0, abs=1e-6)
    unedited = judging.judge_edit(judge, faces, faces, name, records)
    assert unedited["hit"] <= 0.05 and unedited["judge_original"] > 0.05, unedited


def test_the_held_out_corruption_kinds_were_never_trained_on():
    from dclip.toy.nets import sidecar

    assert not set(corruptions.TRAINING_KINDS) & set(corruptions.HELD_OUT_KINDS)
    assert sidecar("toy_judge")["broken_kinds_trained"] == list(corruptions.TRAINING_KINDS)
    assert set(corruptions.CAPTIONS) == set(corruptions.TRAINING_KINDS)  # the toy CLIP's hard negatives


def test_every_corruption_changes_the_image_and_is_seeded():
    x, _ = domain.face_set(START, 6)
    for kind in (*corruptions.TRAINING_KINDS, *corruptions.HELD_OUT_KINDS):
        a = corruptions.corrupt(x, kind, torch.Generator().manual_seed(3))
        b = corruptions.corrupt(x, kind, torch.Generator().manual_seed(3))
        assert a.shape == x.shape and torch.equal(a, b), kind
        assert ((a - x).abs() / 2).mean() > 0.02, kind
    with pytest.raises(ValueError, match="unknown corruption 'smudge'"):
        corruptions.corrupt(x, "smudge", torch.Generator())


def test_the_judge_refuses_broken_images_it_never_saw(judge):
    """False-accept rate <= 5 % on every corruption kind, held-out kinds included (5 kinds x 96 faces in every
    style), while >= 90 % of clean faces are accepted."""
    report = judging.refusal_report(judge, n=96, start=START + 5000, seed=11)
    assert report["accept_well_formed"] >= 0.9, report
    assert max(report["false_accept"].values()) <= 0.05, report
    assert report["false_accept_held_out"] <= 0.05, report


def test_the_judge_refuses_what_a_broken_finetune_draws(judge):
    """A fine-tune run far too hot (lr 1e-2) wrecks the model; the judge refuses >= 90 % of its outputs."""
    import dclip
    from dclip.method.finetune import FinetuneConfig
    from dclip.method.latents import precompute

    unet, clip = dclip.load_unet("toy"), dclip.load_clip("toy")
    train, _ = domain.face_set(domain.FINETUNE_SEED + 50_000, 4)
    config = FinetuneConfig("photo", "pixel art", t0=601, n_gen=4, n_iter=2, lr=1e-2, seed=0)
    broken = dclip.finetune(unet, precompute(unet, train, 601, 8, progress=False), clip, config, progress=False).model
    faces, _ = domain.face_set(START + 9000, 16)
    with torch.no_grad():
        out = dclip.generate(broken, dclip.invert(unet, faces, 601, 10), 601, 10)
    assert np.mean([p["well_formed"] for p in judge.predict(out)]) <= 0.1


def test_the_identity_is_read_back(judge):
    """The judge reads the identity parameters back within 0.1 of their range; the toy identity of an image
    with itself is ~1 and of two different faces far lower."""
    from dclip.toy.nets import identity_vector

    faces, records = judging.lacking_faces("glasses", 32, START + 7000)
    read = torch.stack([p["identity"] for p in judge.predict(faces)])
    truth = torch.stack([identity_vector(f) for f in records])
    assert (read - truth).abs().mean() <= 0.1
    same = judging.edit_outcomes(judge, faces, faces, "glasses")["identity"]
    other = judging.edit_outcomes(judge, faces, faces.roll(1, 0), "glasses")["identity"]
    assert same.mean() >= 0.95 and other.mean() <= 0.5, (same.mean(), other.mean())


def test_bootstrap_interval_matches_the_normal_approximation():
    """For the mean of 400 draws the 95 % interval is mean ± 1.96 s / √n (within 10 %); two-way resampling of
    runs that differ by an offset gives a wider interval than the pooled faces alone."""
    from dclip.method.metrics import bootstrap_interval

    values = np.random.default_rng(0).normal(0.3, 0.2, 400)
    lo, hi = bootstrap_interval(values)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1) and lo < values.mean() < hi
    runs = np.random.default_rng(1).normal(0.5, 0.05, (3, 40)) + np.array([[-0.2], [0.0], [0.2]])
    wide, narrow = bootstrap_interval(runs), bootstrap_interval(runs.ravel())
    assert wide[1] - wide[0] > 1.5 * (narrow[1] - narrow[0])
    assert bootstrap_interval([1.0, np.nan, 1.0]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="non-empty 1-D or 2-D"):
        bootstrap_interval([])
