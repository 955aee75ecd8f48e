"""``torchrun -m dclip`` on 2 CPU processes (gloo) against the same command in one process: sharded
folder jobs, resuming after a crash, data-parallel fine-tuning, several attributes, a failing rank.

Every run here uses one thread per process (as torchrun sets for several processes), so that one
image's computation is the same in both; each torchrun launch costs about 10-25 s of imports."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from dclip.cli import main
from dclip.data.images import sample_photo, save_image, to_tensor

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny", "--device", "cpu", "--no-progress", "--t0", "300", "--n-inv", "6"]

# 2 ranks x batch 1 must equal 1 process x batch 2 to this (max |Δ weight|, float32); see the test.
DDP_TOLERANCE = 1e-6


def _torchrun(*args, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DCLIP_PROGRESS": "0", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def folder(tmp_path) -> Path:
    """Five 32 px images: the four shipped photos and a mirrored astronaut."""
    out = tmp_path / "images"
    for i, name in enumerate(["grace_hopper", "astronaut", "chelsea", "coffee"]):
        save_image(to_tensor(sample_photo(name), 32), out / f"{i}_{name}.png")
    save_image(to_tensor(sample_photo("astronaut"), 32).flip(3), out / "4_mirrored.png")
    return out


def test_sharded_precompute_matches_one_process(tmp_path, folder, one_thread, capsys):
    args = ["precompute", *TINY, "--images", str(folder), "--batch-size", "2"]
    run = _torchrun("-m", "dclip", *args, "--cache", str(tmp_path / "two"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert main([*args, "--cache", str(tmp_path / "one")]) == 0
    assert run.stdout.count("images inverted") == 1 and "(5 now, 0 from the cache" in run.stdout  # printed once
    one, two = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "two").iterdir())
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 5  # one file per image, same keys
    for a, b in zip(one, two):
        a, b = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
        for k in ("x0", "x_lat", "x_rec"):  # batch mates differ (2 per UNet call): float rounding only
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)


def _finetuned_file(path: Path) -> Path:
    """A tiny "fine-tuned" model: the tiny UNet with its weights nudged, saved as dclip saves one."""
    import dclip
    from dclip.method.finetune import FinetuneResult, recipe, save_finetuned

    model = dclip.load_unet("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.05)
    return save_finetuned(FinetuneResult(model, recipe("paper", "photo", "sketch", t0=300)), path, base="tiny")


def test_sharded_edit_resumes_after_a_partial_run(tmp_path, folder, one_thread, capsys):
    model = _finetuned_file(tmp_path / "sketch")
    args = ["edit", *TINY, "--n-gen", "6", "--finetuned", str(model), "--batch-size", "1"]
    assert main([*args, "--images", str(folder), "--out", str(tmp_path / "one")]) == 0

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "3_coffee.png").write_bytes(b"not a png")  # rank 1 owns images 1 and 3: its second is unreadable
    partial = _torchrun("-m", "dclip", *args, "--images", str(broken), "--out", str(tmp_path / "two"))
    log = partial.stdout + partial.stderr
    # an unreadable image is skipped with one warning (issue 26), the run goes on and says so
    assert partial.returncode == 0 and "3_coffee.png': it is not an image" in log, log[-3000:]
    assert "edited 4 of 5 images" in partial.stdout and "1 unreadable, skipped" in partial.stdout
    done = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "two").glob("*.png")}
    assert "1_astronaut.png" in done and "3_coffee.png" not in done

    shutil.copy(folder / "3_coffee.png", broken / "3_coffee.png")
    rerun = _torchrun("-m", "dclip", *args, "--images", str(broken), "--out", str(tmp_path / "two"))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("edited") == 1
    assert f"edited {5 - len(done)} of 5 images" in rerun.stdout and f"({len(done)} were already there)" in rerun.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "two").glob("*.png") if p.name in done} == done
    for a in sorted((tmp_path / "one").glob("*.png")):  # the same files as one process
        b = tmp_path / "two" / a.name
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))), a.name
    assert len(list((tmp_path / "two").glob("*.png"))) == 5


def _weights(path: Path) -> dict:
    return load_file(str(path.with_suffix(".safetensors")))


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_data_parallel_finetune_matches_one_process_with_the_global_batch(tmp_path, folder, one_thread, capsys):
    """2 ranks x batch 1 == 1 process x batch 2, to DDP_TOLERANCE (max |Δ| over all weights).

    5 images: the last global batch has one image, so rank 1 sits that update out (it still joins
    the means and the gradient all-reduce). The λs are scaled down so that every gradient is below
    Adam's ε: Adam then steps ≈ lr·g/ε, linear in g. At full scale, Adam's first steps are ≈ lr·sign(g),
    and parameters whose exact gradient is ~0 (conv biases before a GroupNorm, in the tiny UNet)
    take ±lr steps on float noise -- any two runs that sum gradients in a different order differ
    there by ~lr, DDP or not. Measured: 1.2e-7 for 2 x 1 vs 1 x 2, 1.6e-3 for batch 1 vs batch 2.
    """
    import dclip
    from dclip.method.finetune import load_finetuned

    args = ["finetune", *TINY, "--clip", "tiny", "--attribute", "pixar", "--images", str(folder), "--n-iter", "2",
            "--n-gen", "3", "--lr", "1e-2", "--lambda-clip", "1e-9", "--lambda-l1", "1e-9"]
    run = _torchrun("-m", "dclip", *args, "--batch-size", "1", "--cache", str(tmp_path / "c2"),
                    "--out", str(tmp_path / "ddp"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("updates on 2 ranks") == 1  # rank 0 reports and writes
    for batch in ("1", "2"):
        out = tmp_path / f"b{batch}"
        assert main([*args, "--batch-size", batch, "--cache", str(tmp_path / "c1"), "--out", str(out)]) == 0
    ddp, b1, b2 = (_weights(tmp_path / n) for n in ("ddp", "b1", "b2"))
    assert _max_diff(ddp, b2) <= DDP_TOLERANCE
    assert _max_diff(b1, b2) > 100 * DDP_TOLERANCE  # the test can tell batch 1 from batch 2

    sidecar = json.loads((tmp_path / "ddp.json").read_text())
    assert (sidecar["world_size"], sidecar["global_batch_size"], sidecar["hyperparameters"]["batch_size"]) == (2, 2, 1)
    loaded = load_finetuned(tmp_path / "ddp.safetensors", base=dclip.load_unet("tiny"))
    assert _max_diff({k: v for k, v in loaded.state_dict().items()}, ddp) == 0


def test_several_attributes_are_spread_over_ranks(tmp_path, folder):
    run = _torchrun("-m", "dclip", "finetune", *TINY, "--clip", "tiny", "--attribute", "pixar", "sketch",
                    "--images", str(folder), "--n-images", "2", "--n-iter", "1", "--n-gen", "2",
                    "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "runs"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rank 0: pixar; rank 1: sketch" in run.stdout
    assert "[rank 0/2] wrote" in run.stdout and "[rank 1/2] wrote" in run.stdout
    for name, target in (("pixar", "3D render in the style of Pixar"), ("sketch", "sketch")):
        meta = json.loads((tmp_path / "runs" / f"{name}.json").read_text())
        assert meta["target"] == target and meta["world_size"] == 1


def test_a_bad_argument_on_one_rank_stops_every_rank(tmp_path, folder):
    script = tmp_path / "bad_rank.py"
    script.write_text(
        "import os, sys\nfrom dclip.cli import main\n"
        f"args = ['finetune', '--model', 'tiny', '--clip', 'tiny', '--attribute', 'pixar', '--images', {str(folder)!r},"
        f" '--n-inv', '6', '--n-gen', '2', '--cache', {str(tmp_path / 'cache')!r}, '--out', {str(tmp_path / 'x')!r},"
        " '--device', 'cpu', '--no-progress']\n"
        "sys.exit(main(args + ['--t0', '5000' if os.environ['RANK'] == '1' else '300']))\n")
    start = time.monotonic()
    run = _torchrun(str(script), timeout=180)
    elapsed = time.monotonic() - start
    assert run.returncode != 0
    assert "[rank 1/2] dclip finetune: error: " in run.stderr and "t0" in run.stderr, run.stderr[-3000:]
    assert elapsed < 90  # imports included; a hang would wait for gloo's 30-minute timeout
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("world,batch,n", [(2, 1, 5), (3, 2, 7), (4, 1, 2), (2, 3, 12)])
def test_batch_shares_rebuild_the_single_process_batches(monkeypatch, world, batch, n):
    """Update b of every rank together is exactly the single process's batch b of size world × batch."""
    from dclip.runtime import distributed

    monkeypatch.setenv("WORLD_SIZE", str(world))
    shares = []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        shares.append([s[i: i + batch] for s in [distributed.batch_share(n, batch)] for i in range(0, len(s), batch)])
    updates = max(len(s) for s in shares)
    together = [[i for s in shares if b < len(s) for i in s[b]] for b in range(updates)]
    expected = [list(range(n))[i: i + world * batch] for i in range(0, n, world * batch)]
    assert together == expected


def test_folder_shards_cover_every_image_once(monkeypatch):
    from dclip.runtime import distributed

    monkeypatch.setenv("WORLD_SIZE", "3")
    owned = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        owned += distributed.shard(10)
    assert sorted(owned) == list(range(10))


def test_per_image_cache_computes_only_what_is_missing(tmp_path):
    """precompute_each: one file per image (the one precompute() of that image alone writes); a
    second call, or a call on more images, computes only images not cached yet."""
    import dclip
    from dclip.data.images import sample_photos
    from dclip.method.latents import precompute, precompute_each

    model = dclip.load_unet("tiny")
    x = sample_photos(("grace_hopper", "astronaut", "chelsea"), size=32)
    first, n = precompute_each(model, x[[0, 1, 0]], 300, 6, cache_dir=tmp_path, batch_size=1)
    assert n == 2 and len(list(tmp_path.iterdir())) == 2  # the repeated image is inverted once
    again, n = precompute_each(model, x, 300, 6, cache_dir=tmp_path)
    assert n == 1 and len(list(tmp_path.iterdir())) == 3
    torch.testing.assert_close(again.x_lat[:2], first.x_lat[:2], rtol=0, atol=0)
    alone = precompute(model, x[2:], 300, 6, cache_dir=tmp_path)  # reads the file precompute_each wrote
    assert len(list(tmp_path.iterdir())) == 3 and torch.equal(alone.x_lat, again.x_lat[2:])
