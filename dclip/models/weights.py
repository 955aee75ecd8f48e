"""Finding weight files: a local path, dclip's weights folder, a library's own cache, or a download.

Every pretrained file dclip uses (diffusion checkpoints, CLIP, face models, StyleGAN2, LPIPS'
backbone) goes through :func:`resolve_file` or :func:`resolve_library_file`, so the rules are the
same everywhere:

1. an existing local path always wins and never touches the network;
2. then the weights folder, ``$DCLIP_WEIGHTS`` (default ``~/.cache/dclip/weights``), by file name;
3. then the cache of the library that publishes the file -- the Hugging Face Hub cache for Hub
   files, torch hub's ``$TORCH_HOME/hub/checkpoints`` for torchvision's AlexNet, facenet-pytorch's
   ``$TORCH_HOME/checkpoints`` for VGGFace2 -- downloading into it, with that library's own
   downloader, only when the file's host can be reached.

Offline (``HF_HUB_OFFLINE=1`` or ``DCLIP_OFFLINE=1``, or the host does not answer within a few
seconds) and without a local copy, :class:`WeightsNotFoundError` is raised at once, naming the file,
where it comes from and where to put it. There is no minute of retries.
"""
from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

__all__ = ["WeightsNotFoundError", "weights_dir", "resolve_file", "resolve_library_file", "hub_reachable",
           "url_reachable", "offline", "missing_weights"]


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained file is neither on disk nor downloadable right now."""


def weights_dir() -> Path:
    """The folder dclip looks in for weight files by name (``$DCLIP_WEIGHTS``)."""
    return Path(os.environ.get("DCLIP_WEIGHTS", Path.home() / ".cache" / "dclip" / "weights")).expanduser()


def offline() -> bool:
    """True when the environment says there is no network: ``HF_HUB_OFFLINE`` or ``DCLIP_OFFLINE``."""
    return any(os.environ.get(name, "0").strip().lower() in {"1", "true", "yes", "on"}
               for name in ("HF_HUB_OFFLINE", "DCLIP_OFFLINE"))


@lru_cache(maxsize=8)
def _host_answers(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the HF Hub endpoint accepts a TCP connection (one quick probe, cached)."""
    return url_reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout)


def url_reachable(url: str, timeout: float = 3.0) -> bool:
    """True unless :func:`offline` or the URL's host refuses a TCP connection within ``timeout`` (cached)."""
    if offline():
        return False
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return _host_answers(parsed.hostname or "", port, timeout)


def missing_weights(what: str, filename: str, source: str, *, downloadable: bool,
                    library_cache: Path | None = None) -> WeightsNotFoundError:
    """The error for a weight file that is not on this machine: which file, where from, where to put it."""
    why = "cannot be downloaded now (offline)" if downloadable else "is not downloaded automatically"
    also = f"\n       or where its library keeps it: {library_cache}" if library_cache is not None else ""
    return WeightsNotFoundError(
        f"{what}: '{filename}' is not on this machine and {why}.\n"
        f"  source: {source}\n"
        f"  fix: download it on a machine with network and put it at {weights_dir() / filename}{also}\n"
        f"       (or set DCLIP_WEIGHTS to the folder holding it, or pass the file's path directly)."
    )


def _explicit(source: str | os.PathLike, what: str) -> Path:
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"{what}: no file at '{path}'. Check the path.")
    return path


def resolve_file(source: str | os.PathLike | None, *, filename: str, repo_id: str | None = None,
                 url: str | None = None, what: str = "weights") -> Path:
    """Return a local path for a weight file, downloading it through the HF Hub cache if needed.

    Args:
        source: an explicit path (must exist) or ``None`` to look the file up by ``filename``.
        filename: the file's name in the weights folder and in ``repo_id`` on the Hub.
        repo_id: HF Hub model repository holding ``filename``; ``None`` if the file is not on the Hub.
        url: the original download address, quoted in the error message when the file is missing.
        what: a few words naming the file's role, for messages ("CelebA-HQ diffusion model").
    """
    if source is not None:
        return _explicit(source, what)
    local = weights_dir() / filename
    if local.is_file():
        return local
    origin = f"https://huggingface.co/{repo_id} (file {filename})" if repo_id else (url or "unknown")
    if repo_id is None:
        raise missing_weights(what, filename, origin, downloadable=False)
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, filename)
    if isinstance(cached, str):
        return Path(cached)
    if not hub_reachable():
        raise missing_weights(what, filename, origin, downloadable=True)
    return Path(hf_hub_download(repo_id, filename))


def resolve_library_file(source: str | os.PathLike | None, *, filename: str, url: str, library_cache: Path,
                         download: Callable[[str, Path], None], what: str = "weights") -> Path:
    """Return a local path for a file a library publishes and caches itself (torchvision, facenet-pytorch).

    Looks at ``source`` (an explicit path), ``$DCLIP_WEIGHTS/filename``, then ``library_cache`` (the
    path where the library keeps the file); when none has it and ``url``'s host answers, calls
    ``download(url, library_cache)`` -- the library's own downloader -- and returns ``library_cache``.
    Offline, :class:`WeightsNotFoundError` at once.
    """
    if source is not None:
        return _explicit(source, what)
    for path in (weights_dir() / filename, Path(library_cache)):
        if path.is_file():
            return path
    if not url_reachable(url):
        raise missing_weights(what, filename, url, downloadable=True, library_cache=Path(library_cache))
    Path(library_cache).parent.mkdir(parents=True, exist_ok=True)
    download(url, Path(library_cache))
    if not Path(library_cache).is_file():
        raise WeightsNotFoundError(f"{what}: downloading {url} did not produce {library_cache}.")
    return Path(library_cache)
