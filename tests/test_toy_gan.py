"""The shipped toy StyleGAN2 and e4e (the GAN side of the paper at the toy profile) and the GAN baselines on them.

The bars are measured again here, on samples the sidecar's numbers were not measured on; the baselines run with
their step counts capped (the notebooks run them in full)."""
import pytest
import torch

from dclip.baselines.comparison import GAN_SETTINGS, encode_faces, invert_faces, run_gan_baselines
from dclip.models.folder import SHIPPED_DIR, read_sidecar
from dclip.studies.toy_gan import BARS, E4E_FILE, GAN_FILE, gan_samples, load_toy_e4e, load_toy_gan, sample_quality
from dclip.toy import domain
from dclip.toy.judging import identity_loss, judge_target, lacking_faces
from dclip.toy.nets import JUDGE_HEADS, judge_perceptual, load_judge
from dclip.toy.train import domain_record


@pytest.fixture(scope="module")
def gan():
    return load_toy_gan()


@pytest.fixture(scope="module")
def judge():
    return load_judge()


@pytest.mark.xfail(strict=True, reason="the shipped toy StyleGAN2 (6000 steps, ~32 min on 2 cores) does not meet its "
                   "bars: the judge accepts 5 % [3 %, 7 %] of its samples as well-formed toy faces (bar 90 %) and "
                   "reads expressions 45 points off the domain's frequencies (bar 10); strict, so a GAN that meets "
                   "them turns this into a failure that asks for the marker to go")
def test_toy_gan_samples_meet_the_bars(gan, judge):
    generator, _ = gan
    quality = sample_quality(judge, gan_samples(generator, 512, seed=11))  # the sidecar's bars used seed 0
    assert quality["formed"] >= BARS["formed"], quality["formed_ci"]
    assert quality["largest_gap"] <= BARS["frequency_gap"], quality["frequency_gaps"]


def test_toy_gan_sample_quality_is_what_its_sidecar_records(gan, judge):
    """The bars are measured, not assumed: fresh samples land within sampling error of the recorded numbers."""
    recorded = read_sidecar(SHIPPED_DIR / f"{GAN_FILE}.json")["bars"]
    quality = sample_quality(judge, gan_samples(gan[0], 512, seed=11))
    assert abs(quality["formed"] - recorded["formed"]) < 0.05
    assert abs(quality["largest_gap"] - recorded["largest_gap"]) < 0.08


def test_shipped_gan_files_record_their_training_and_fit_the_size_budget():
    gan_meta, e4e_meta = read_sidecar(SHIPPED_DIR / f"{GAN_FILE}.json"), read_sidecar(SHIPPED_DIR / f"{E4E_FILE}.json")
    assert gan_meta["domain"] == domain_record() and e4e_meta["domain"] == domain_record()
    assert gan_meta["steps_done"] == gan_meta["settings"]["steps"] and gan_meta["cpu_seconds"] > 0
    assert {"formed", "frechet_to_real", "meets_bars"} <= set(gan_meta["bars"])
    size = sum((SHIPPED_DIR / f"{name}.safetensors").stat().st_size for name in (GAN_FILE, E4E_FILE))
    assert size <= 20e6


def test_gan_inversions_are_measured_and_not_exact(gan, judge):
    generator, latent_avg = gan
    faces, _ = domain.evaluation_set(8)
    _, by_e4e = encode_faces(faces, generator=generator, encoder=load_toy_e4e(generator))
    _, by_projection = invert_faces(faces, generator=generator, latent_avg=latent_avg,
                                    perceptual=judge_perceptual(judge), settings=GAN_SETTINGS["toy"].capped(50))
    for inverted in (by_e4e, by_projection):
        assert inverted.shape == faces.shape
        assert ((faces - inverted).abs().mean() / 2).item() > 1e-3


def _target_probability(judge, images, name):
    head, value = judge_target(name)
    with torch.no_grad():
        return judge(images)[head].softmax(1)[:, JUDGE_HEADS[head].index(value)]


def test_each_gan_baseline_moves_the_judged_target(gan, judge):
    """On faces that lack glasses, every baseline's edit raises the judge's probability of glasses over the
    inversion it started from (capped steps: whether the edit succeeds is the notebooks' measurement)."""
    from dclip.baselines.global_directions import channel_directions
    from dclip.models.clip import load_clip

    generator, latent_avg = gan
    clip = load_clip("toy")
    faces, _ = lacking_faces("glasses", 8, domain.VALIDATION_SEED)
    settings = GAN_SETTINGS["toy"].capped(100)
    directions = channel_directions(generator, clip, n_images=4, n_statistics=2000)
    out = run_gan_baselines(faces, [("person", "person with glasses")], generator=generator, latent_avg=latent_avg,
                            clips=[clip], encoder=load_toy_e4e(generator), directions=directions,
                            identity=identity_loss(judge), perceptual=judge_perceptual(judge), settings=settings,
                            frame_size=32)
    assert set(out) == {"StyleCLIP", "StyleCLIP (global directions)", "StyleCLIP (optimisation)", "StyleGAN-NADA"}
    for method, result in out.items():
        edited = result.edited[("person", "person with glasses")]
        before = _target_probability(judge, result.inverted, "glasses").mean()
        after = _target_probability(judge, edited, "glasses").mean()
        assert after > before, (method, float(before), float(after))
