"""Stand-in weight files in the REAL layouts of the paper profile's downloads (random values).

Every file has the name, folder, container, key names and shapes of the real download, but seeded
random weights, so the loaders and the notebooks can be checked at full size without the network:

* ``weights/`` (``$DCLIP_WEIGHTS``): ``celeba_hq.ckpt`` and ``bedroom.ckpt`` in the ermongroup/ddim ``Model``
  layout (SDEdit's files: ``torch.save(state_dict)``, attention q/k/v/proj_out as 1x1 convolutions) and ``afhq_dog_4m.pt``
  in the guided-diffusion (ADM) layout (fused legacy-order qkv, 1-d convolutions);
* ``hf/`` (``$HF_HUB_CACHE``, the Hub cache's own layout: ``models--org--name/{refs,blobs,snapshots}``):
  ``google/ddpm-ema-{celebahq,church,bedroom}-256`` (``config.json`` with the 2022 ``UNet2DModel`` keys,
  ``diffusion_pytorch_model.bin`` with 2022 attention names ``query/key/value/proj_attn``,
  ``model_index.json``, ``scheduler_config.json``; no safetensors), ``timm/vit_base_patch{16,32}_clip_224.openai``
  (``open_clip_model.safetensors``, the first file open_clip asks for) and rosinality's FFHQ StyleGAN2
  (``{"g_ema", "latent_avg", "g", "d"}``) in ``akhaliq/jojogan-stylegan2-ffhq-config-f``;
* ``torch/`` (``$TORCH_HOME``): torchvision's ``hub/checkpoints/alexnet-owt-7be5be79.pth`` and facenet-pytorch's
  ``checkpoints/20180402-114759-vggface2.pt`` (``InceptionResnetV1(num_classes=8631)``, logits included).

Command line (``make paper-standins`` runs the last one)::

    python tests/standins.py build DIR        # write the stand-ins (skips files already there)
    python tests/standins.py check DIR        # load every paper-profile model through dclip's loaders
    python tests/standins.py notebooks DIR [--only 01 03]   # the notebooks at the paper profile, CPU, 1 image
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

#: ``config.json`` of the google/ddpm-ema-*-256 repositories (diffusers 0.0.4 keys, 2022).
GOOGLE_DDPM_256 = {
    "_class_name": "UNet2DModel", "_diffusers_version": "0.0.4", "act_fn": "silu", "attention_head_dim": None,
    "block_out_channels": [128, 128, 256, 256, 512, 512], "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D",
                         "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 256,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
}
#: The same family at 32 px with two levels (quick tests of the 2022 format).
GOOGLE_DDPM_TINY = {**GOOGLE_DDPM_256, "block_out_channels": [32, 64], "down_block_types": ["DownBlock2D",
                    "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "sample_size": 32,
                    "layers_per_block": 1}
SCHEDULER_CONFIG = {"_class_name": "DDPMScheduler", "_diffusers_version": "0.1.1", "beta_end": 0.02,
                    "beta_schedule": "linear", "beta_start": 0.0001, "clip_sample": True,
                    "num_train_timesteps": 1000, "trained_betas": None, "variance_type": "fixed_small"}
MODEL_INDEX = {"_class_name": "DDPMPipeline", "_diffusers_version": "0.1.1",
               "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}
DDPM_REPOS = {"celeba_hq": "google/ddpm-ema-celebahq-256", "lsun_church": "google/ddpm-ema-church-256",
              "lsun_bedroom": "google/ddpm-ema-bedroom-256"}
CLIP_REPOS = {"ViT-B-16-quickgelu": "timm/vit_base_patch16_clip_224.openai",
              "ViT-B-32-quickgelu": "timm/vit_base_patch32_clip_224.openai"}
FFHQ_REPO, FFHQ_FILE = "akhaliq/jojogan-stylegan2-ffhq-config-f", "stylegan2-ffhq-config-f.pt"
ALEXNET_FILE, VGGFACE2_FILE = "alexnet-owt-7be5be79.pth", "20180402-114759-vggface2.pt"
KERNEL = "dclip"  # the Jupyter kernel `make setup` registers

# diffusers' current attention names -> the 2022 names the google/ddpm-* .bin files hold
_ATTENTION_2022 = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def env_for(root: str | os.PathLike) -> dict[str, str]:
    """Environment variables that point dclip, the HF Hub, torch and the notebooks at ``root``, offline."""
    root = Path(root)
    return {"DCLIP_WEIGHTS": str(root / "weights"), "HF_HUB_CACHE": str(root / "hf"), "HF_HOME": str(root / "hf-home"),
            "TORCH_HOME": str(root / "torch"), "HF_HUB_OFFLINE": "1", "DCLIP_CACHE": str(root / "cache"),
            "DCLIP_FIGURES_DIR": str(root / "figures"), "XDG_CACHE_HOME": str(root / "xdg"),
            "HF_HUB_DISABLE_TELEMETRY": "1"}


# ------------------------------------------------------------------------------------------------ formats

def ddpm_2022_state(config: dict, seed: int = 0) -> dict:
    """A seeded random ``UNet2DModel(config)`` state dict with the 2022 attention key names."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNet2DModel(**{k: v for k, v in config.items() if not k.startswith("_")})
    state = {}
    for key, value in model.state_dict().items():
        head, _, param = key.rpartition(".")
        if ".attentions." in head:
            for new, old in _ATTENTION_2022.items():
                if head.endswith("." + new):
                    head = head[: -len(new)] + old
                    break
        state[f"{head}.{param}"] = value
    return state


def write_ddpm_2022_folder(folder: Path, config: dict, state: dict) -> None:
    """The files of a google/ddpm-ema-*-256 repository: config, ``.bin`` weights, pipeline index, scheduler."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2))
    (folder / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
    torch.save(state, folder / "diffusion_pytorch_model.bin")


def ddim_layout_state(diffusers_state: dict, levels: int) -> dict:
    """The ermongroup/ddim ``Model`` state dict holding the same weights as a diffusers UNet's (current names)."""
    from dclip.models.layouts.ermongroup import _original_name

    out = {}
    for name, value in diffusers_state.items():
        key = _original_name(name, levels)
        if ".attn" in key and key.rsplit(".", 2)[-2] in ("q", "k", "v", "proj_out") and value.dim() == 2:
            value = value[:, :, None, None]  # the original's 1x1 Conv2d
        out[key] = value
    return out


def current_names(state_2022: dict) -> dict:
    """2022 attention names back to diffusers' current ones (what ``from_pretrained`` does on load)."""
    out = {}
    for key, value in state_2022.items():
        head, _, param = key.rpartition(".")
        for new, old in _ATTENTION_2022.items():
            if ".attentions." in head and head.endswith("." + old):
                head = head[: -len(old)] + new
                break
        out[f"{head}.{param}"] = value
    return out


def adm_afhq_state(seed: int = 0) -> dict:
    """A seeded random state dict in the guided-diffusion layout of ``afhq_dog_4m.pt``."""
    from dclip.models.layouts import adm
    from dclip.models.unet import PRESETS

    cfg = PRESETS["afhq_dog"].config
    lay = adm._layout(cfg)
    expected = adm.expected_shapes(adm.unet_kwargs(cfg))
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, (target, transform) in adm._key_map(lay).items():
        if transform is None:
            shape = expected[target]
        elif transform == "conv1d":
            shape = expected[target] + ((1,) if len(expected[target]) == 2 else ())
        else:  # fused qkv: three heads' worth of rows, a 1-d convolution
            q = expected[target.format("q")]
            shape = (3 * q[0],) + ((q[1], 1) if len(q) == 2 else ())
        fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
        scale = 1.0 / fan_in ** 0.5 if len(shape) > 1 else 0.0
        state[name] = torch.randn(shape, generator=gen) * scale + (1.0 if name.endswith("norm.weight") else 0.0)
    return state


# ------------------------------------------------------------------------------------------------ HF cache

def hf_cache_put(cache: Path, repo_id: str, files: dict[str, Path], *, link: bool = True) -> Path:
    """Place ``files`` ({name in repo: local file}) in the HF Hub cache layout; returns the snapshot folder.

    ``models--{org}--{name}/refs/main`` holds the commit, ``blobs/<etag>`` the contents and
    ``snapshots/<commit>/<name>`` relative symlinks to them, as ``hf_hub_download`` leaves them.
    """
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for name, source in files.items():
        etag = hashlib.sha256(f"{repo_id}/{name}/{source.stat().st_size}".encode()).hexdigest()
        blob = repo / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            os.link(source, blob) if link else blob.write_bytes(source.read_bytes())
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(os.path.relpath(blob, target.parent))
    return snapshot


# ------------------------------------------------------------------------------------------------ build

def _seeded(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _save(path: Path, make, *, safetensors: bool = False) -> Path:
    """Write ``make()`` to ``path`` unless it is already there (a complete earlier build)."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    state = make()
    if safetensors:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    else:
        torch.save(state, tmp)
    tmp.rename(path)
    return path


def _open_clip_state(name: str, seed: int) -> dict:
    import open_clip

    return _seeded(seed, lambda: open_clip.create_model(name, pretrained=None).state_dict())


def _vggface2_state(seed: int) -> dict:
    from facenet_pytorch import InceptionResnetV1

    return _seeded(seed, lambda: InceptionResnetV1(classify=True, num_classes=8631).state_dict())


def _alexnet_state(seed: int) -> dict:
    from torchvision.models import alexnet

    return _seeded(seed, lambda: alexnet(weights=None).state_dict())


def _ffhq_checkpoint(seed: int) -> dict:
    from dclip.baselines.stylegan2 import Generator, StyleGAN2Config

    g_ema = _seeded(seed, lambda: Generator(StyleGAN2Config(size=1024, style_dim=512, n_mlp=8)))
    state = g_ema.state_dict()
    with torch.no_grad():
        latent_avg = g_ema.style(torch.randn(1000, 512, generator=torch.Generator().manual_seed(seed))).mean(0)
    # "g" (the non-EMA generator) and "d" (the discriminator) ride along in the released file; only
    # their presence matters here: "g" shares g_ema's tensors, "d" holds a few of its first keys
    discriminator = {"convs.0.0.weight": torch.randn(32, 3, 1, 1), "convs.0.1.bias": torch.zeros(32),
                     "final_linear.1.weight": torch.randn(1, 512)}
    return {"g_ema": state, "latent_avg": latent_avg, "g": dict(state), "d": discriminator}


def build(root: str | os.PathLike, *, ddpm: bool = True, clips: bool = True, faces: bool = True,
          gan: bool = True, afhq: bool = False, verbose: bool = False) -> dict[str, str]:
    """Write the stand-ins under ``root`` (skipping finished files); returns :func:`env_for`'s variables."""
    root = Path(root)
    env = env_for(root)
    weights, hf, torch_home, raw = Path(env["DCLIP_WEIGHTS"]), Path(env["HF_HUB_CACHE"]), Path(env["TORCH_HOME"]), \
        root / "raw"
    say = print if verbose else (lambda *a, **k: None)
    start = time.perf_counter()
    if ddpm:
        folder = raw / "ddpm-256"
        if not (folder / "diffusion_pytorch_model.bin").is_file():
            write_ddpm_2022_folder(folder, GOOGLE_DDPM_256, ddpm_2022_state(GOOGLE_DDPM_256, seed=1))
        state = None
        if not (weights / "celeba_hq.ckpt").is_file():
            state = torch.load(folder / "diffusion_pytorch_model.bin", weights_only=True)
            _save(weights / "celeba_hq.ckpt", lambda: ddim_layout_state(current_names(state), levels=6))
        if not (weights / "bedroom.ckpt").is_file():  # the same weights in the bedroom preset's original file
            os.link(weights / "celeba_hq.ckpt", weights / "bedroom.ckpt")
        for repo_id in DDPM_REPOS.values():  # the three Hub copies share one file (hard links)
            hf_cache_put(hf, repo_id, {n: folder / n for n in ("config.json", "diffusion_pytorch_model.bin",
                                                              "model_index.json", "scheduler_config.json")})
        say(f"DDPM 256 stand-ins: {time.perf_counter() - start:.0f} s")
    if afhq:
        _save(weights / "afhq_dog_4m.pt", lambda: adm_afhq_state(seed=2))
    if clips:
        for i, (name, repo_id) in enumerate(CLIP_REPOS.items()):
            path = _save(raw / repo_id / "open_clip_model.safetensors", lambda: _open_clip_state(name, 10 + i),
                         safetensors=True)
            hf_cache_put(hf, repo_id, {"open_clip_model.safetensors": path})
        say(f"CLIP stand-ins: {time.perf_counter() - start:.0f} s")
    if faces:
        _save(torch_home / "checkpoints" / VGGFACE2_FILE, lambda: _vggface2_state(20))
        _save(torch_home / "hub" / "checkpoints" / ALEXNET_FILE, lambda: _alexnet_state(21))
    if gan:
        path = _save(raw / FFHQ_REPO / FFHQ_FILE, lambda: _ffhq_checkpoint(30))
        hf_cache_put(hf, FFHQ_REPO, {FFHQ_FILE: path})
    say(f"stand-ins ready under {root}: {time.perf_counter() - start:.0f} s")
    return env


# ------------------------------------------------------------------------------------------------ check

def check(root: str | os.PathLike) -> None:
    """Load every model of the paper profile through dclip's public loaders (run with :func:`env_for` set)
    and compare what was loaded with the stand-in's own tensors."""
    import dclip
    from dclip.models.clip import load_clip
    from dclip.models.identity import load_face_model
    from dclip.baselines.comparison import load_gan_baselines
    from dclip.method.metrics import load_lpips

    root = Path(root)
    expected = current_names(torch.load(root / "raw" / "ddpm-256" / "diffusion_pytorch_model.bin", weights_only=True))
    # celeba_hq and lsun_bedroom: the original ddim-layout files; lsun_church: its Hub copy (2022 .bin);
    # the two Hub ids: the copies in the HF cache
    for source in ("celeba_hq", "lsun_church", "lsun_bedroom", "google/ddpm-ema-celebahq-256",
                   "google/ddpm-ema-bedroom-256"):
        start = time.perf_counter()
        unet = dclip.load_unet(source)
        got = unet.state_dict()
        assert set(got) == set(expected), f"{source}: keys differ"
        bad = [k for k in expected if not torch.equal(got[k].reshape(expected[k].shape), expected[k])]
        assert not bad, f"{source}: tensors differ from the stand-in: {bad[:3]}"
        print(f"load_unet({source!r}): {sum(v.numel() for v in got.values()) / 1e6:.1f} M parameters, "
              f"equal to the stand-in ({time.perf_counter() - start:.1f} s)")
        del unet, got
    if (root / "weights" / "afhq_dog_4m.pt").is_file():
        print(f"load_unet('afhq_dog'): out_channels {dclip.load_unet('afhq_dog').config.out_channels}")
    clip = load_clip("ViT-B-16-quickgelu", "openai")
    print(f"load_clip: {clip.name}")
    face = load_face_model()
    vgg = torch.load(root / "torch" / "checkpoints" / VGGFACE2_FILE, weights_only=True)
    assert torch.equal(face.last_linear.weight, vgg["last_linear.weight"])
    print("load_face_model: VGGFace2 from $TORCH_HOME/checkpoints")
    lpips_model = load_lpips()
    alex = torch.load(root / "torch" / "hub" / "checkpoints" / ALEXNET_FILE, weights_only=True)
    assert torch.equal(lpips_model.net.slice1.get_submodule("0").weight, alex["features.0.weight"])
    print("load_lpips: AlexNet from $TORCH_HOME/hub/checkpoints")
    gan = load_gan_baselines()
    print(f"load_gan_baselines: StyleGAN2 {gan['generator'].config.size} px, "
          f"CLIPs {[c.name for c in gan['clips']]}, e4e {'loaded' if gan['encoder'] else 'absent (row left out)'}")


# ------------------------------------------------------------------------------------------------ notebooks

#: papermill parameters that run each notebook at the paper profile on the CPU on one image, fewest steps.
QUICK = {
    "01": {"n_images": 1, "t0s": [300], "steps": 2, "exact": False},
    "02": {"n_images": 1, "n_steps": 2, "n_train": 1, "n_train_steps": 2, "gan_steps": 2,
           "attributes": ["makeup", "church_golden"]},
    "03": {"n_images": 1, "n_steps": 2, "n_train": 1, "n_train_steps": 2, "steps": [2, 3], "t0": 300,
           "manipulations": ["tanned"], "manipulation_t0s": [300]},
    "04": {"n_images": 1, "n_steps": 2, "n_train": 1, "n_train_steps": 2, "latent_steps": 2, "attributes": ["pixar"]},
    "05": {"n_images": 1, "n_steps": 2, "n_train": 1, "n_train_steps": 2, "latent_steps": 2},
    "06": {"n_steps": 2, "n_train_steps": 2, "interactive": False},
}


def run_notebook(root: str | os.PathLike, number: str, *, timeout: int = 3600) -> float:
    """Execute notebook ``number`` at the paper profile on the CPU with :data:`QUICK` settings, in a
    kernel whose environment points at the stand-ins under ``root``; returns the seconds it took."""
    import papermill

    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    path = next(notebooks.glob(f"{number}_*.ipynb"))
    out = Path(root) / "executed" / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = dict(os.environ)
    os.environ.update(env_for(root), DCLIP_PROGRESS="0", PYTHONPATH=str(notebooks.parent))  # the kernel inherits it
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(path), str(out), parameters={"profile": "paper", "device": "cpu",
                                                                   **QUICK[number]},
                                   kernel_name=KERNEL, cwd=str(path.parent), execution_timeout=timeout,
                                   progress_bar=False, log_output=False, request_save_on_cell_execute=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/standins.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "check", "notebooks"])
    parser.add_argument("root", help="folder for the stand-ins (several GB)")
    parser.add_argument("--only", nargs="+", default=sorted(QUICK), metavar="NN", help="notebooks to run")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.root, afhq=True, verbose=True)
    elif args.command == "check":
        env = build(args.root, afhq=True)
        code = subprocess.call([sys.executable, __file__, "_check", args.root], env={**os.environ, **env})
        return code
    else:
        build(args.root, afhq=True, verbose=True)
        total = 0.0
        for number in args.only:
            seconds = run_notebook(args.root, number)
            total += seconds
            print(f"notebook {number} at the paper profile on stand-ins: {seconds:.0f} s", flush=True)
        print(f"all {len(args.only)} notebooks: {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_check":
        check(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
