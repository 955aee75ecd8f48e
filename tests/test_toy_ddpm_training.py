"""The toy DDPM's trainer beyond the first run: min-SNR-γ weighting (Hang et al. 2023) against the schedule's own
SNR computed here from the paper's β, and a run continued from a trained DDPM (it starts from that model, resumes
in place, refuses a file of another architecture)."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import stopping_at
from dclip.models.folder import shipped_file
from dclip.toy import ddpm_training

TINY = replace(ddpm_training.DDPM_CONTINUE_SETTINGS, steps=4, batch_size=2, save_every=2, threads=1, warmup=1)


def test_min_snr_weight_is_min_snr_gamma_over_snr_of_the_papers_schedule():
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)  # the paper's linear schedule, T = 1000
    alpha_bar = np.cumprod(1 - betas)
    snr = alpha_bar / (1 - alpha_bar)
    t = torch.tensor([0, 10, 100, 300, 999])
    expected = np.minimum(snr[t.numpy()], 5.0) / snr[t.numpy()]
    got = ddpm_training.min_snr_weight(t, 5.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert got[0] == pytest.approx(5.0 * 1e-4 / (1 - 1e-4), rel=1e-4)  # SNR(0) = (1 − β_1) / β_1
    assert got[-1] == 1.0  # a noisy step keeps its full weight
    assert torch.equal(ddpm_training.min_snr_weight(t, 0.0), torch.ones(5))


def test_the_unweighted_loss_is_the_plain_mean_squared_error():
    class Zero(torch.nn.Module):  # predicts ε = 0, so the loss is the mean of ε² over the batch
        def forward(self, x, t):
            return type("Out", (), {"sample": torch.zeros_like(x)})()

    x0 = torch.zeros(4, 3, 8, 8)
    loss = ddpm_training.ddpm_loss(Zero(), x0, torch.Generator().manual_seed(3), gamma=0.0)
    g = torch.Generator().manual_seed(3)
    torch.randint(0, 1000, (4,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    assert loss.item() == pytest.approx(noise.pow(2).mean().item(), rel=1e-6)
    weighted = ddpm_training.ddpm_loss(Zero(), x0, torch.Generator().manual_seed(3), gamma=5.0)
    assert weighted.item() < loss.item()  # some of the four steps are nearly clean and weigh less


def _copy_shipped_ddpm(folder):
    folder.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(shipped_file("toy_ddpm").with_suffix(suffix), folder / f"toy_ddpm{suffix}")
    return folder / "toy_ddpm.safetensors"


def test_a_continued_run_starts_from_the_model_it_continues(tmp_path):
    """With lr 0 nothing moves: the (debiased EMA) weights written are the init's, not a random UNet's."""
    init = _copy_shipped_ddpm(tmp_path / "init")
    meta = ddpm_training.train_ddpm(replace(TINY, lr=0.0), tmp_path / "out", init=init, progress=False)
    a, b = load_file(init), load_file(tmp_path / "out" / "toy_ddpm.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert meta["init"]["steps_done"] == json.loads(init.with_suffix(".json").read_text())["steps_done"]
    assert "min-SNR-5" in meta["loss"]


def test_a_continued_run_in_place_resumes_from_the_model_it_started_from(tmp_path, monkeypatch):
    whole = ddpm_training.train_ddpm(TINY, tmp_path / "whole_out", init=_copy_shipped_ddpm(tmp_path / "whole"),
                                     progress=False)
    target = _copy_shipped_ddpm(tmp_path / "in_place")
    with monkeypatch.context() as stopped, pytest.raises(KeyboardInterrupt):
        stopped.setattr(ddpm_training, "draw_batch", stopping_at(ddpm_training.draw_batch, 3))
        ddpm_training.train_ddpm(TINY, tmp_path / "in_place", init=target, progress=False)
    assert (tmp_path / "in_place" / "toy_ddpm.before-continuing.safetensors").is_file()
    meta = ddpm_training.train_ddpm(TINY, tmp_path / "in_place", init=target, progress=False)
    a, b = load_file(tmp_path / "whole_out" / "toy_ddpm.safetensors"), load_file(target)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert meta["init"]["steps_done"] == whole["init"]["steps_done"]
    assert sorted(p.name for p in (tmp_path / "in_place").iterdir()) == ["toy_ddpm.json", "toy_ddpm.safetensors"]


def test_continuing_from_a_file_that_is_no_toy_ddpm_says_so(tmp_path):
    clip = shipped_file("toy_clip")
    with pytest.raises(ValueError, match="is not a toy DDPM with the shipped architecture"):
        ddpm_training.train_ddpm(TINY, tmp_path, init=clip, progress=False)
    with pytest.raises(FileNotFoundError, match=r"no toy DDPM at .*toy train ddpm"):
        ddpm_training.train_ddpm(TINY, tmp_path, init=tmp_path / "missing.safetensors", progress=False)


def test_toy_train_ddpm_continue_records_the_start_and_the_bars_in_the_sidecar(tmp_path, monkeypatch, capsys):
    """``toy train ddpm-continue --init FILE``: the sidecar holds the init's sidecar, the machine and the DDPM's
    bars (measured here on 8 samples, not 256: what is tested is the wiring)."""
    import functools

    from dclip.dev import toy_commands
    from dclip.studies import toy_gan

    monkeypatch.setattr(toy_gan, "ddpm_bars", functools.partial(toy_gan.ddpm_bars, n=8))
    monkeypatch.setattr(ddpm_training, "DDPM_CONTINUE_SETTINGS", TINY)
    init = _copy_shipped_ddpm(tmp_path / "init")
    assert toy_commands.main(["train", "ddpm-continue", "--init", str(init), "--out", str(tmp_path / "out"),
                              "--steps", "2", "--no-progress"]) == 0
    meta = json.loads((tmp_path / "out" / "toy_ddpm.json").read_text())
    assert meta["steps_done"] == 2 and meta["settings"]["min_snr_gamma"] == 5.0
    assert meta["init"]["steps_done"] == json.loads(init.with_suffix(".json").read_text())["steps_done"]
    bars = meta["bars"]
    assert bars["n"] == 8 and bars["bars"] == toy_gan.BARS and set(bars["frechet_to_real"]) == {"ddpm", "real (another set)"}
    assert bars["meets_bars"] == toy_gan.meets_bars(bars, bars["frechet_to_real"]["ddpm"])
    assert meta["device"].startswith("cpu")
