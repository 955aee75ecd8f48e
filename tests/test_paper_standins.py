"""The paper profile on stand-in files in the REAL layouts of its downloads (see tests/standins.py).

* every model the paper profile uses loads through dclip's public loaders from a temporary
  ``DCLIP_WEIGHTS`` / HF cache / ``TORCH_HOME``, offline, and equals the stand-in's tensors;
* notebook 01 runs end to end at the paper profile on the CPU (one image, fewest steps);
* a fresh machine "with internet" -- a local HTTP server on 127.0.0.1 playing the HF Hub
  (``HF_ENDPOINT``), download.pytorch.org and GitHub's release host -- downloads every file the
  notebooks need into the libraries' own caches, in the layouts the offline check reads.

The stand-ins are full size (about 3 GB, built once per session in a temporary folder); each check
runs in a fresh Python process with the environment a user would set.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import standins

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@pytest.fixture(scope="session")
def standin_root(tmp_path_factory):
    """The stand-ins, built once per session (or kept in ``$DCLIP_STANDINS`` between sessions)."""
    kept = os.environ.get("DCLIP_STANDINS", "")
    root = Path(kept) if kept else tmp_path_factory.mktemp("paper-standins")
    standins.build(root, afhq=True)
    yield root
    if not kept:  # ~3 GB: not left for pytest's kept temporary folders
        shutil.rmtree(root, ignore_errors=True)


def _run(code: str, env: dict, timeout: int = 900, context=()) -> str:
    """Run ``code`` in a fresh interpreter with ``env`` on top of this one's; returns its output."""
    full = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]), "DCLIP_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}\n{list(context)}"
    return done.stdout + done.stderr


def test_every_paper_model_loads_from_the_real_layouts_offline(standin_root):
    env = standins.env_for(standin_root)
    out = _run(f"import standins; standins.check({str(standin_root)!r})", env)
    for line in ("load_unet('celeba_hq')", "load_unet('lsun_church')", "load_unet('lsun_bedroom')",
                 "load_unet('google/ddpm-ema-bedroom-256')", "load_unet('afhq_dog'): out_channels 6",
                 "load_clip: ViT-B-16-quickgelu/openai",
                 "VGGFace2 from $TORCH_HOME/checkpoints", "AlexNet from $TORCH_HOME/hub/checkpoints",
                 "StyleGAN2 1024 px"):
        assert line in out, out
    lowered = out.lower()
    assert "unsafe serialization" not in lowered and "error occurred" not in lowered, out


def test_notebook_01_at_the_paper_profile_on_the_cpu(standin_root):
    import nbformat

    seconds = standins.run_notebook(standin_root, "01", timeout=600)
    executed = nbformat.read(standin_root / "executed" / "01_inversion_quality.ipynb", as_version=4)
    text = "\n".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "profile paper: 256 px on cpu" in text and "expected time on cpu" in text, text
    rows = json.loads((standin_root / "figures" / "01_inversion_quality.json").read_text())
    assert rows["rows"][0]["S"] == 2 and rows["meta"]["profile"]["name"] == "paper", rows
    print(f"notebook 01 at the paper profile on stand-ins: {seconds:.0f} s")


_GLOBAL_DIRECTIONS = """
import torch
from dclip.baselines import global_directions as gd
from dclip.baselines.stylegan2 import load_stylegan2
from dclip.models.clip import tiny_clip
from dclip.runtime.cache import cache_root
generator, _ = load_stylegan2()  # found offline in the HF cache, as the paper profile finds it
layers = gd.style_layers(generator)
print("style layers", len(layers), sum(m.bias.shape[0] for _, m in layers))
clip, calls = tiny_clip(), []
def stub(generator, clip, **settings):  # the real precompute (1.2M renders at 1024 px) is a GPU job: rows are random
    calls.append(settings)
    w = gd.sample_w(generator, settings["n_statistics"], settings["seed"], settings["truncation"])
    mean, std = gd._statistics(generator, w)
    rows = torch.nn.functional.normalize(torch.randn(len(std), 32, generator=torch.Generator().manual_seed(0)), dim=1)
    return gd.GlobalDirections(rows, std, mean, [(n, m.bias.shape[0]) for n, m in layers], {})
gd.channel_directions = stub
settings, cache = gd.GlobalDirectionsConfig.smoke().precompute_settings(), cache_root() / "global_directions"
first = gd.cached_channel_directions(generator, clip, cache, **settings)
second = gd.cached_channel_directions(generator, clip, cache, **settings)
assert len(calls) == 1 and torch.equal(first.directions, second.directions) and torch.equal(first.std, second.std)
offsets = gd.global_direction_offsets(second, gd.text_direction(clip, "a face", "a smiling face"), alpha=4.1, beta=0.1)
print("computed once; offsets", [o.shape[0] for o in offsets])
"""


def test_global_directions_of_the_ffhq_standin_are_computed_once_into_the_cache(tmp_path):
    """StyleCLIP's global directions on the 1024 px FFHQ stand-in (only that file is built): StyleSpace has the
    6048 channels of the reference's ``fs3.npy`` rows, and the cached path keys, writes and reads them back."""
    env = standins.build(tmp_path, ddpm=False, clips=False, faces=False, gan=True)
    out = _run(_GLOBAL_DIRECTIONS, env, timeout=300)
    assert "style layers 17 6048" in out, out
    assert "computed once; offsets [512, 512, 512" in out and out.rstrip().endswith("64, 64, 32]"), out
    files = sorted(p.name for p in (tmp_path / "cache" / "global_directions").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors"), files
    meta = json.loads((tmp_path / "cache" / "global_directions" / files[0]).read_text())
    assert len(meta["layers"]) == 17 and sum(c for _, c in meta["layers"]) == 6048, meta["layers"]


# ------------------------------------------------------------------------------------------------
# Downloads: a local stand-in server
# ------------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, Path]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.requests = files, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    """``/{repo}/resolve/{revision}/{file}`` as the HF Hub answers it (commit and etag headers, an
    ``EntryNotFound`` 404), and plain files at the paths of download.pytorch.org and GitHub."""

    def log_message(self, *args):
        pass

    def _lookup(self):
        path = self.path.split("?")[0]
        self.server.requests.append((self.command, path))
        if "/resolve/" in path:
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            key = f"hf:{repo}/{rest.split('/', 1)[1]}"
            return self.server.files.get(key), repo
        return self.server.files.get(path), None

    def _head(self, body_follows: bool):
        found, repo = self._lookup()
        if found is None:
            self.send_response(404)
            if repo is not None:
                self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        size = found.stat().st_size
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Content-Type", "application/octet-stream")
        if repo is not None:
            self.send_header("X-Repo-Commit", hashlib.sha1(repo.encode()).hexdigest())
            self.send_header("ETag", '"' + hashlib.sha256(f"{found}:{size}".encode()).hexdigest() + '"')
        self.end_headers()
        return found

    def do_HEAD(self):
        self._head(False)

    def do_GET(self):
        found = self._head(True)
        if found is not None:
            with open(found, "rb") as f:
                while chunk := f.read(1 << 20):
                    self.wfile.write(chunk)


_DOWNLOAD = """
import torch, dclip, dclip.models.identity, dclip.models.lpips
from dclip.models.clip import load_clip
from dclip.baselines.comparison import load_gan_baselines
base = {base!r}
# the original hosts swapped for the local server; everything else is the real path: the reachability
# probe, torch.hub's / facenet-pytorch's downloaders, the HF Hub client (HF_ENDPOINT), the caches
name, url = dclip.models.lpips.BACKBONES["alex"]
dclip.models.lpips.BACKBONES["alex"] = (name, url.replace("https://download.pytorch.org", base))
dclip.models.identity.VGGFACE2_URL = dclip.models.identity.VGGFACE2_URL.replace("https://github.com", base)
real = torch.hub.download_url_to_file
def download(url, dst, hash_prefix=None, progress=True):
    assert hash_prefix == "7be5be79", hash_prefix  # torchvision's hash check, asked for; a stand-in cannot pass it
    return real(url, dst, None, progress)
torch.hub.download_url_to_file = download
for preset in ("celeba_hq", "lsun_church"):
    print(preset, type(dclip.load_unet(preset)).__name__)
print(load_clip("ViT-B-16-quickgelu", "openai").name)
gan = load_gan_baselines()
print("gan", gan["generator"].config.size, [c.name for c in gan["clips"]])
"""

def test_a_fresh_machine_downloads_every_file_into_the_libraries_caches(standin_root, tmp_path):
    raw, torch_home = standin_root / "raw", standin_root / "torch"
    files = {f"hf:{repo}/{name}": raw / "ddpm-256" / name for repo in standins.DDPM_REPOS.values()
             for name in ("config.json", "diffusion_pytorch_model.bin", "model_index.json", "scheduler_config.json")}
    files |= {f"hf:{repo}/open_clip_model.safetensors": raw / repo / "open_clip_model.safetensors"
              for repo in standins.CLIP_REPOS.values()}
    files[f"hf:{standins.FFHQ_REPO}/{standins.FFHQ_FILE}"] = raw / standins.FFHQ_REPO / standins.FFHQ_FILE
    files["/models/alexnet-owt-7be5be79.pth"] = torch_home / "hub" / "checkpoints" / standins.ALEXNET_FILE
    files["/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"] = (
        torch_home / "checkpoints" / standins.VGGFACE2_FILE)
    server = _Server(files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fresh = {"DCLIP_WEIGHTS": str(tmp_path / "weights"), "HF_HUB_CACHE": str(tmp_path / "hf"),
             "HF_HOME": str(tmp_path / "hf-home"), "TORCH_HOME": str(tmp_path / "torch"),
             "XDG_CACHE_HOME": str(tmp_path / "xdg"), "HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0",
             "DCLIP_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    try:
        out = _run(_DOWNLOAD.format(base=server.url), fresh, context=server.requests)
    finally:
        server.shutdown()
    assert "celeba_hq UNet2DModel" in out and "gan 1024" in out, out
    assert "unsafe serialization" not in out.lower() and "error occurred" not in out.lower(), out
    fetched = {re.sub(r"/resolve/[^/]+/", "/resolve/", path) for method, path in server.requests if method == "GET"}
    assert fetched >= {"/models/alexnet-owt-7be5be79.pth",
                       "/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
                       "/google/ddpm-ema-celebahq-256/resolve/diffusion_pytorch_model.bin",
                       "/google/ddpm-ema-church-256/resolve/diffusion_pytorch_model.bin",
                       "/timm/vit_base_patch16_clip_224.openai/resolve/open_clip_model.safetensors",
                       "/timm/vit_base_patch32_clip_224.openai/resolve/open_clip_model.safetensors",
                       f"/{standins.FFHQ_REPO}/resolve/{standins.FFHQ_FILE}"}, sorted(server.requests)
    # each file where its library keeps it, in the HF cache's own layout for Hub files
    assert (tmp_path / "torch" / "hub" / "checkpoints" / standins.ALEXNET_FILE).is_file()
    assert (tmp_path / "torch" / "checkpoints" / standins.VGGFACE2_FILE).is_file()
    snapshot = next((tmp_path / "hf" / "models--google--ddpm-ema-church-256" / "snapshots").iterdir())
    assert {"config.json", "diffusion_pytorch_model.bin"} <= {p.name for p in snapshot.iterdir()}
    assert (snapshot / "diffusion_pytorch_model.bin").is_symlink()  # into blobs/, as hf_hub_download leaves it
    # what the offline loaders look up (test_every_paper_model_loads_from_the_real_layouts_offline) is there
    from huggingface_hub import try_to_load_from_cache

    for key in files:
        if key.startswith("hf:") and "bedroom" not in key:
            repo, _, name = key[3:].rpartition("/")
            if name.endswith((".bin", ".safetensors", ".pt")):
                assert isinstance(try_to_load_from_cache(repo, name, cache_dir=tmp_path / "hf"), str), key
