"""dclip.runtime.cache: where the disk cache lives, its LRU size bound, partial entries, and `python -m dclip cache`."""
import dataclasses
import os
import time

import pytest
import torch

from dclip.runtime import cache
from dclip.notebook.outputs import repo_root


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("DCLIP_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv("DCLIP_CACHE_MAX_GB", raising=False)
    return tmp_path / "c"


def _entry(section, key, size, age_s, companions=True):
    """Write a cache entry of ``size`` bytes last used ``age_s`` seconds ago; returns its main file."""
    folder = cache.section(section)
    folder.mkdir(parents=True, exist_ok=True)
    main = folder / (f"latents-{key}.pt" if section == "latents" else f"{key}.safetensors")
    files = [main] + ([main.with_suffix(".json")] if section == "finetuned" and companions else [])
    stamp = time.time() - age_s
    for i, f in enumerate(files):
        f.write_bytes(b"x" * (size if i == 0 else 0))
        os.utime(f, (stamp, stamp))
    return main


def test_default_location_is_the_user_cache_not_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("DCLIP_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "dclip"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "dclip"
    monkeypatch.setenv("DCLIP_CACHE", str(tmp_path / "mine"))
    assert cache.cache_root() == tmp_path / "mine"
    assert repo_root() not in cache.cache_root().parents


def test_least_recently_used_entries_go_first(root):
    old = _entry("finetuned", "old", 400, age_s=300)
    mid = _entry("latents", "mid", 400, age_s=200)
    new = _entry("finetuned", "new", 400, age_s=100)
    cache.touch(old)  # just read: now the most recent
    removed = cache.enforce_limit(900)
    assert [e.key for e in removed] == ["latents-mid"]
    assert old.is_file() and old.with_suffix(".json").is_file() and new.is_file() and not mid.exists()
    assert cache.total_bytes() == 800


def test_kept_entry_survives_even_beyond_the_limit(root):
    a = _entry("finetuned", "a", 500, age_s=50)
    b = _entry("finetuned", "b", 500, age_s=10)
    cache.enforce_limit(100, keep=(a,))
    assert a.is_file() and not b.exists() and not b.with_suffix(".json").exists()


def test_limit_from_the_environment(root, monkeypatch):
    monkeypatch.setenv("DCLIP_CACHE_MAX_GB", "0.000001")  # 1000 bytes
    assert cache.max_bytes() == 1000
    _entry("latents", "a", 800, age_s=20)
    _entry("latents", "b", 800, age_s=10)
    assert [e.key for e in cache.enforce_limit()] == ["latents-a"]
    monkeypatch.setenv("DCLIP_CACHE_MAX_GB", "lots")
    with pytest.raises(ValueError, match="DCLIP_CACHE_MAX_GB"):
        cache.max_bytes()


def test_partial_entries_are_never_complete_and_are_cleaned_up(root):
    partial = _entry("finetuned", "half", 100, age_s=7200, companions=False)  # weights without sidecar
    cache.section("latents").mkdir()
    tmp = cache.section("latents") / ".latents-x.pt.abc.tmp"  # an interrupted atomic write
    tmp.write_bytes(b"y" * 50)
    os.utime(tmp, (time.time() - 7200,) * 2)
    fresh_tmp = cache.section("latents") / ".latents-y.pt.def.tmp"  # maybe another process writing now
    fresh_tmp.write_bytes(b"z")
    assert not cache.is_complete(partial)
    assert {e.key: e.complete for e in cache.entries()}["half"] is False
    removed = cache.enforce_limit(10**9)
    assert {e.key for e in removed} == {"half", tmp.name}
    assert not partial.exists() and not tmp.exists() and fresh_tmp.exists()


def test_context_ignores_a_partial_finetune(quick_profile, root, monkeypatch):
    from dclip.notebook.context import Context

    ctx = Context(dataclasses.replace(quick_profile, disk_cache=True))
    from dclip.method.finetune import finetuned_cache_path

    path = finetuned_cache_path(cache.cache_root(), ctx.unet("celeba_hq"), ctx.world.train_images("celeba_hq"),
                                ctx.world.finetune_config("gogh"), ctx.profile.n_inv_train)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not safetensors")  # crashed before the sidecar was written
    model = ctx.finetune("gogh")  # trains instead of reading the partial entry
    assert cache.is_complete(path)
    again = Context(ctx.profile).finetune("gogh")
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))


def test_cli_lists_and_clears(root, capsys):
    from dclip.cli import main

    _entry("finetuned", "abc", 2_000_000, age_s=10)
    _entry("latents", "def", 1000, age_s=20)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(root) in out and "abc" in out and "2.0 MB" in out and "2 entries" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert cache.entries() == []


def test_damaged_cached_latents_are_a_miss_with_one_warning(tmp_path, capsys):
    """A latents file cut short (damaged outside dclip: every write is atomic) is computed again, with one
    warning line naming it, and replaced by a good one; never a traceback."""
    import dclip
    from dclip.method.latents import precompute

    model = dclip.load_unet("tiny")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    first = precompute(model, x, 200, 4, cache_dir=tmp_path, progress=False)
    (path,) = tmp_path.glob("latents-*.pt")
    path.write_bytes(path.read_bytes()[:100])
    capsys.readouterr()  # what loading and the first inversion printed
    again = precompute(model, x, 200, 4, cache_dir=tmp_path, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ignored the disk cache's latents") and path.name in err[0]
    assert torch.equal(again.x_lat, first.x_lat)
    assert torch.equal(precompute(model, x, 200, 4, cache_dir=tmp_path, progress=False).x_lat, first.x_lat)
    assert capsys.readouterr().err == ""  # the rewritten file reads
