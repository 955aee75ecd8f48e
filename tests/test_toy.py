"""The toy world: a deterministic domain, shipped models that match it, trainers whose loss falls, and the
paper's method working on it (fine-tuning edits what the judge sees, mixing edits two attributes at once)."""
import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from dclip.toy import domain


# -- the domain ------------------------------------------------------------------------------------------

def test_domain_is_seeded_and_independent_of_the_set_size():
    a, recs_a = domain.face_set(5, 4, "photo")
    b, recs_b = domain.face_set(5, 2, "photo")
    assert torch.equal(a[:2], b) and recs_a[:2] == recs_b
    assert a.shape == (4, 3, domain.SIZE, domain.SIZE) and a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a[0], a[1])


def test_domain_draws_the_same_bytes_everywhere():
    # integer PIL drawing and a PCG64 generator: these bytes are the same on every machine
    digest = hashlib.sha256(b"".join(domain.render(f, s).tobytes()
                                     for f in domain.faces(0, 3) for s in domain.STYLES)).hexdigest()[:16]
    assert digest == "77d9f5763e18c080"  # (Pillow is pinned in constraints.txt; its ellipse drawing has changed before)


def test_fixed_attributes_and_edits_keep_the_identity():
    face = domain.faces(0, 1, expression="neutral", glasses="no")[0]
    assert face.expression == "neutral" and face.glasses == "no"
    smiling = domain.with_attribute(face, expression="smiling")
    assert smiling.face_w == face.face_w and smiling.skin == face.skin
    plain, happy = domain.render(face), domain.render(smiling)
    changed = np.argwhere((plain != happy).any(-1))
    assert len(changed) and changed[:, 0].min() >= domain.SIZE // 2  # only the lower half (the mouth) changes
    with pytest.raises(ValueError, match="not a value of expression"):
        domain.faces(0, 1, expression="grinning")


def test_styles_differ():
    face = domain.faces(0, 1)[0]
    photo, sketch, pixel = (domain.render(face, s) for s in domain.STYLES)
    assert not np.array_equal(photo, sketch) and not np.array_equal(photo, pixel)
    assert np.array_equal(pixel[::2, ::2], pixel[1::2, 1::2])  # 2x2 blocks


# -- shipped models --------------------------------------------------------------------------------------

def test_shipped_models_match_the_current_domain():
    from dclip.toy.nets import MODEL_NAMES, sidecar

    current = domain.domain_hash()
    for name in MODEL_NAMES:
        meta = sidecar(name)
        assert meta["domain"]["hash"] == current, (
            f"{name} was trained on another version of the toy domain; retrain with `make toy-models`.")
        assert meta["steps_done"] == meta["settings"]["steps"]


def test_shipped_models_load_through_the_public_loaders():
    import dclip
    from dclip.models.clip import load_clip
    from dclip.method.losses import text_direction
    from dclip.toy.nets import load_judge

    unet = dclip.load_unet("toy")
    assert unet.config.sample_size == domain.SIZE
    clip = load_clip("toy")
    assert clip.image_size == domain.SIZE and text_direction(clip, "face", "smiling face").shape == (1, 64)
    assert set(load_judge().heads) == {*domain.ATTRIBUTES, "style"}


def test_judge_reads_every_attribute_and_style():
    """Held-out accuracy as measured when the judge was trained (its sidecar), and again here on fresh faces."""
    from dclip.toy.nets import load_judge, sidecar
    from dclip.toy.train import judge_accuracy

    for accuracy in (sidecar("toy_judge")["accuracy_held_out"],
                     judge_accuracy(load_judge(), n=48, start=domain.HELD_OUT_SEED + 5000)):
        assert accuracy.pop("identity_mae") <= 0.1 and min(accuracy.values()) >= 0.95, accuracy


def test_an_edit_is_judged_only_on_faces_that_lacked_its_target():
    """A face that already wears glasses says nothing about a glasses edit. Real judge, real faces: two
    without glasses and two with; "edited" = the same faces all with glasses -> hit 2 of 2, kept 1.0;
    "edited" = the originals unchanged -> hit 0 of 2; originals all with glasses -> nothing to judge."""
    from dclip.toy.judging import judge_edit
    from dclip.toy.nets import load_judge

    records = domain.faces(domain.HELD_OUT_SEED + 7000, 4)
    draw = lambda glasses: domain.to_tensor([domain.render(dataclasses.replace(f, glasses=g), "photo")
                                             for f, g in zip(records, glasses)])
    originals, with_glasses, judge = draw(["no", "no", "yes", "yes"]), draw(["yes"] * 4), load_judge()
    verdict = judge_edit(judge, originals, with_glasses, "glasses")
    assert (verdict["hit"], verdict["lacking"], verdict["kept"], verdict["n"]) == (1.0, 2, 1.0, 4)
    assert judge_edit(judge, originals, originals, "glasses")["hit"] == 0.0
    assert judge_edit(judge, with_glasses, with_glasses, "glasses")["hit"] is None


def test_the_notebooks_test_faces_can_show_every_edit():
    """The toy notebooks' test faces (8 by default) include faces without each judged target, so no edit's
    hit rate is left with nothing to count (the first nine held-out faces as drawn all wear glasses)."""
    from dclip.toy.judging import JUDGE_TARGETS

    records = domain.evaluation_set(8)[1]
    for name, (head, value) in JUDGE_TARGETS.items():
        if head != "style":
            assert any(getattr(f, head) != value for f in records), name
    assert {f.glasses for f in records} == {"no", "yes"}


def test_toy_clip_knows_colours_and_styles_zero_shot():
    from dclip.toy.nets import sidecar

    zero_shot = sidecar("toy_clip")["zero_shot_held_out"]
    assert min(zero_shot[k] for k in ("skin", "hair", "background", "style")) >= 0.95


def test_toy_clip_knows_expression_and_glasses_zero_shot():
    from dclip.toy.nets import sidecar

    zero_shot = sidecar("toy_clip")["zero_shot_held_out"]
    assert min(zero_shot["expression"], zero_shot["glasses"]) >= 0.95


def test_toy_ddpm_inverts_held_out_faces_almost_exactly():
    """DDIM round trip, S_inv = S_gen = 40 at t0 = 300: MAE <= 0.03 on [0, 1] (Table 1's near-perfect inversion)."""
    import dclip

    unet = dclip.load_unet("toy")
    x, _ = domain.face_set(domain.HELD_OUT_SEED, 8)
    with torch.no_grad():
        rec = dclip.generate(unet, dclip.invert(unet, x, 300, 40), 300, 40)
    assert ((rec - x).abs() / 2).mean() <= 0.03


# -- the trainers ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["ddpm", "clip", "judge"])
def test_a_short_training_lowers_the_loss(which, tmp_path, monkeypatch):
    import functools

    from dclip.toy import ddpm_training, train

    # The judge's measurements after its last step (its re-render threshold, with DDIM round trips of the toy
    # DDPM, and its held-out accuracy) run on 16 faces, not 300: what is tested here is the training loop.
    monkeypatch.setattr(train, "calibrate_judge", functools.partial(train.calibrate_judge, n=16))
    monkeypatch.setattr(train, "judge_accuracy", functools.partial(train.judge_accuracy, n=16))

    settings = {"ddpm": ddpm_training.DdpmSettings(steps=30, batch_size=8, warmup=5, save_every=10, threads=0),
                "clip": train.ClipSettings(steps=30, batch_size=16, warmup=5, save_every=10, threads=0),
                "judge": train.JudgeSettings(steps=30, batch_size=16, warmup=5, save_every=10, threads=0)}[which]
    fn = {"ddpm": ddpm_training.train_ddpm, "clip": train.train_clip, "judge": train.train_judge}[which]
    meta = fn(settings, tmp_path, name=f"t_{which}", progress=False)
    losses = [row["loss"] for row in meta["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert (tmp_path / f"t_{which}.safetensors").is_file() and meta["domain"]["hash"] == domain.domain_hash()


# -- the method works (fine-tuning, eq. 10; editing, eqs. 12-13; mixing, eq. 14), judged against the truth ----
# The toy profile's recipe (8 training faces, 6 passes, lr 3e-5, S_inv = 40 / S_gen = 6 while training,
# S_inv = S_gen = 40 at test time) was chosen on the validation faces (docs/toy.md). On the 32 test faces lacking
# each target, over 3 fine-tunes (figures/toy/02_judged_edits.csv), only "glasses" meets the toy world's targets
# (hit 0.97 [0.91, 1.00], kept 0.95 [0.87, 1.00]); the other six do not reproduce, and are reported so by the
# notebooks. (With the toy CLIP trained on true-edit directions, not shipped yet, angry reached hit 0.75 [0.59, 0.91]
# here, glasses still met the targets.) This test holds the one that reproduces to the targets, with one fine-tune.
REPRODUCING = ["glasses"]


@pytest.fixture(scope="module")
def toy_ctx(tmp_path_factory):
    from dclip.notebook.context import Context
    from dclip.notebook.profiles import get_profile

    return Context(dataclasses.replace(get_profile("toy"), num_threads=0),
                   output_dir=str(tmp_path_factory.mktemp("figures")))


@pytest.mark.parametrize("name", REPRODUCING)
def test_finetuning_makes_the_named_edit_and_keeps_the_rest(toy_ctx, name):
    """Hit >= 0.8 (accepted as a well-formed face and the target read) and kept >= 0.9 on 32 test faces lacking
    the target, the edit nearer the true edit than the original is (on the judge's features, the whole interval);
    the untouched model (the control) hits nothing and keeps everything."""
    from dclip.studies.common import judged
    from dclip.studies.judged_edits import meets_targets

    faces, t0 = toy_ctx.world.edit_images(name), toy_ctx.world.finetune_config(name).t0
    edited = judged(toy_ctx, faces, toy_ctx.edit(toy_ctx.finetune(name), faces, t0), name)
    control = judged(toy_ctx, faces, toy_ctx.edit(toy_ctx.unet(), faces, t0), name)
    assert edited["of"] == 32 and meets_targets(edited), edited
    assert control["hit"] <= 0.05 and control["kept"] >= 0.95 and control["formed"] >= 0.95, control


def test_mixing_two_models_edits_both_attributes_more_often_than_either(toy_ctx):
    """Eq. 14 with constant γ = (1/2, 1/2): frowning and glasses together, on test faces lacking both; the judge
    must accept the face and read both."""
    from dclip.method.edit import edit_multi
    from dclip.toy.judging import lacking_faces

    faces, _ = lacking_faces(("angry", "glasses"), 16)
    angry, glasses = toy_ctx.finetune("angry"), toy_ctx.finetune("glasses")
    p, t0 = toy_ctx.profile, 301

    def both(x):
        return np.mean([j["well_formed"] and j["expression"] == "frowning" and j["glasses"] == "yes"
                        for j in toy_ctx.judge.predict(x)])

    mixed = edit_multi(toy_ctx.unet(), [angry, glasses], faces, t0, {0: [0.5, 0.5]}, n_inv=p.n_inv, n_gen=p.n_gen)
    singles = [both(toy_ctx.edit(m, faces, t0)) for m in (angry, glasses)]
    assert both(mixed) > max(singles), (both(mixed), singles)


def test_studies_at_the_toy_profile_use_stand_ins_and_the_judge(tmp_path):
    """The notebooks' path at the toy profile (steps cut down): stand-in attributes, judge columns, and the S_dir
    study without GAN columns (at toy the GAN baselines are judged against the truth: toy_comparison)."""
    from dclip.studies import experiments
    from dclip.notebook.context import Context
    from dclip.notebook.profiles import get_profile

    p = dataclasses.replace(get_profile("toy"), n_inv=4, n_gen=4, n_test=2, n_train=2, n_iter=1, n_inv_train=4,
                            n_gen_train=2, project_repeats=1, project_steps=2, num_threads=0)
    ctx = Context(p, output_dir=str(tmp_path))
    names = ctx.world.attribute_names(["makeup", "pixar", "church_golden"])
    assert names == ["glasses", "pixel_art"]
    study = experiments.manipulation_study(ctx, names, gan_baselines=True)
    assert [r["attribute"] for r in study.rows] == names and all(0 <= r["hit"] <= 1 for r in study.rows)
    assert any("GAN baselines edit in the toy StyleGAN2" in n for n in ctx.notes)  # judged in their own section
    assert torch.equal(ctx.world.images(), domain.evaluation_set(2)[0]) and ctx.world.unseen_images(ctx.world.images()).shape == (2, 3, 32, 32)
    assert all("paper_s_dir" not in r for r in study.extra["summary"])  # toy numbers never beside the paper's
    assert all(r["id_net"] == "toy judge (identity read back)" for r in study.rows)


def test_the_shipped_models_are_package_data():
    """Every shipped model file matches a package-data pattern, so an installed (non-editable) dclip has them."""
    import tomllib
    from pathlib import Path

    from dclip.models.folder import SHIPPED_DIR

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dclip.models"]
    package = root / "dclip" / "models"
    shipped = sorted(p.relative_to(package) for p in SHIPPED_DIR.iterdir())
    assert shipped and all(any(p.match(pattern) for pattern in patterns) for p in shipped), shipped
