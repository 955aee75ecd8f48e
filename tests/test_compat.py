"""Compatibility with the authors' implementation: reference tensors computed by their own code.

The fixtures (tests/fixtures, copied from shared/fixtures; see its README) hold two tiny ddim-layout
models, one ADM-layout model, single forward passes and DDIM trajectories on the paper's grid.
Everything goes through ``load_unet``, the path a user takes. Tolerance: 1e-4 relative error.
"""
import json

import pytest
import torch

import dclip
from dclip.method.ddim import Schedule

from conftest import FIXTURES, rel_err

TOLERANCE = 1e-4


def fixture(name):
    return torch.load(FIXTURES / name, weights_only=True)


def config(name):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def model_a():
    return dclip.load_unet(FIXTURES / "ddim_tiny.ckpt", config=config("ddim_tiny_config.json"))


@pytest.fixture(scope="module")
def model_b():
    return dclip.load_unet(FIXTURES / "ddim_tiny_b.ckpt", config=config("ddim_tiny_config.json"))


@pytest.fixture(scope="module")
def adm_model():
    return dclip.load_unet(FIXTURES / "adm_tiny.pt", config=config("adm_tiny_config.json"))


@pytest.fixture(scope="module")
def traj():
    return fixture("ddim_trajectory.pt")


def test_schedule_is_the_fixtures_betas(traj):
    ours = dclip.method.ddim.DEFAULT_SCHEDULE
    assert rel_err(ours.betas.float(), traj["betas"].float()) < 1e-7


@pytest.mark.parametrize("model_name, io_name", [("model_a", "ddim_tiny_io.pt"), ("adm_model", "adm_tiny_io.pt")])
def test_forward_pass(model_name, io_name, request):
    model, io = request.getfixturevalue(model_name), fixture(io_name)
    with torch.no_grad():
        out = model(io["x"], io["t"]).sample
    assert rel_err(out, io["out"]) < TOLERANCE


def test_inversion(model_a, traj):
    latent = dclip.invert(model_a, traj["x0"], traj["t0"], traj["n_inv"])
    assert (err := rel_err(latent, traj["x_lat"])) < TOLERANCE, err


@pytest.mark.parametrize("steps", [6, 40])
def test_generation(model_a, traj, steps):
    with torch.no_grad():
        x = dclip.generate(model_a, traj["x_lat"], traj["t0"], steps)
    assert (err := rel_err(x, traj[f"x_gen{steps}"])) < TOLERANCE, err


def test_ratio_mix(model_a, model_b, traj):
    with torch.no_grad():
        x = dclip.generate(dclip.RatioMix(model_a, model_b, 0.3), traj["x_lat"], traj["t0"], 6)
    assert (err := rel_err(x, traj["x_ratio0.3_gen6"])) < TOLERANCE, err


def test_threshold_mix(model_a, model_b, traj):
    mix = dclip.ThresholdMix([model_a, model_b], traj["hybrid_config"])
    with torch.no_grad():
        x = dclip.generate(mix, traj["x_lat"][:1], traj["t0"], 6)
    assert (err := rel_err(x, traj["x_hybrid_gen6"])) < TOLERANCE, err


def test_threshold_mix_with_gamma_one_zero_is_the_first_model(model_a, model_b, traj):
    with torch.no_grad():
        mixed = dclip.generate(dclip.ThresholdMix([model_a, model_b], {0: [1, 0]}), traj["x_lat"], 400, 6)
        alone = dclip.generate(model_a, traj["x_lat"], 400, 6)
    torch.testing.assert_close(mixed, alone, rtol=0, atol=0)


def test_adm_trajectory_uses_the_eps_channels(adm_model):
    ref = fixture("adm_trajectory.pt")
    latent = dclip.invert(adm_model, ref["x0"], ref["t0"], ref["n_inv"])
    assert (err := rel_err(latent, ref["x_lat"])) < TOLERANCE, err
    with torch.no_grad():
        x = dclip.generate(adm_model, ref["x_lat"], ref["t0"], 10)
    assert (err := rel_err(x, ref["x_gen10"])) < TOLERANCE, err


def test_schedule_from_fixture_betas_gives_the_same_trajectory(model_a, traj):
    schedule = Schedule(traj["betas"].double())
    with torch.no_grad():
        x = dclip.generate(model_a, traj["x_lat"], traj["t0"], 6, schedule=schedule)
    assert rel_err(x, traj["x_gen6"]) < TOLERANCE
