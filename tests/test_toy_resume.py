"""Toy training survives interruption: a run stopped after a save continues from its resume file and ends with
the weights of a run that was never stopped; a resume file from other settings is refused with the fix."""
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from conftest import stopping_at
from dclip.toy import ddpm_training as train

TINY = replace(train.DDPM_SETTINGS, steps=4, batch_size=2, save_every=2, threads=1)


def test_a_stopped_ddpm_run_resumes_to_the_weights_of_an_unstopped_one(tmp_path, monkeypatch):
    whole = train.train_ddpm(TINY, tmp_path / "whole", progress=False)
    with monkeypatch.context() as stopped, pytest.raises(KeyboardInterrupt):
        stopped.setattr(train, "draw_batch", stopping_at(train.draw_batch, 3))
        train.train_ddpm(TINY, tmp_path / "stopped", progress=False)
    resume_file = tmp_path / "stopped" / "toy_ddpm.resume.pt"
    assert resume_file.is_file() and torch.load(resume_file, weights_only=True)["step"] == 2

    resumed = train.train_ddpm(TINY, tmp_path / "stopped", progress=False)
    a, b = load_file(tmp_path / "whole" / "toy_ddpm.safetensors"), load_file(tmp_path / "stopped" / "toy_ddpm.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["step"] for h in resumed["history"]] == [h["step"] for h in whole["history"]] == [2, 4]
    assert resumed["history"][-1]["loss"] == pytest.approx(whole["history"][-1]["loss"], rel=1e-6)
    assert not resume_file.exists()  # a finished run leaves no resume file


def test_a_resume_file_from_other_settings_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "draw_batch", stopping_at(train.draw_batch, 3))
    with pytest.raises(KeyboardInterrupt):
        train.train_ddpm(TINY, tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"toy_ddpm.resume.pt belongs to a run with other settings \(steps 4 there, "
                                         r"6 now\).*delete it to train from the start"):
        train.train_ddpm(replace(TINY, steps=6), tmp_path, progress=False)


def test_clip_directions_in_place_resumes_from_the_clip_it_started_from(tmp_path, monkeypatch):
    """``toy train clip-directions --out`` the folder of its own init: a stopped run, started again, still starts
    from the original CLIP (kept beside it until the run ends), not from its own partial save."""
    import json
    import shutil

    from dclip.models.folder import shipped_file
    from dclip.toy import clip_directions as cd

    tiny = replace(cd.DIRECTION_SETTINGS, steps=4, batch_size=2, attack_steps=1, save_every=2, threads=1)
    for folder in ("whole", "in_place"):
        (tmp_path / folder).mkdir()
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(shipped_file("toy_clip").with_suffix(suffix), tmp_path / folder / f"toy_clip{suffix}")
    monkeypatch.setattr(cd, "CLIP_SETTINGS", replace(cd.CLIP_SETTINGS, batch_size=4, broken=2))
    cd.train_clip_directions(tmp_path / "whole" / "toy_clip.safetensors", tiny, tmp_path / "whole_out", progress=False)
    target = tmp_path / "in_place" / "toy_clip.safetensors"
    with monkeypatch.context() as stopped, pytest.raises(KeyboardInterrupt):
        stopped.setattr(cd, "_edit_pairs", stopping_at(cd._edit_pairs, 3))
        cd.train_clip_directions(target, tiny, tmp_path / "in_place", progress=False)
    assert (tmp_path / "in_place" / "toy_clip.before-continuing.safetensors").is_file()
    meta = cd.train_clip_directions(target, tiny, tmp_path / "in_place", progress=False)
    a, b = load_file(tmp_path / "whole_out" / "toy_clip.safetensors"), load_file(target)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    started = json.loads(shipped_file("toy_clip").with_suffix(".json").read_text())
    assert meta["init"]["steps_done"] == started["steps_done"]  # the CLIP it started from, not its partial save
    assert sorted(p.name for p in (tmp_path / "in_place").iterdir()) == ["toy_clip.json", "toy_clip.safetensors"]
