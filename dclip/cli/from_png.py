"""``python -m dclip edit --from-png FILE --out OUT``: redo an edit the live editor saved (notebook 06's Save).

The PNG's settings (:mod:`dclip.editor.saved_edit`) name the base model, the input image and each fine-tuned
model's file with its sha256; every file must be there, unchanged. The edit is then run as the editor ran it
(:mod:`dclip.editor.mix_edit`: inversion with the base model, generation with the mix by r and γ) and written to
OUT, the edited image alone at the model's size, as the saved PNG holds it.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["check_files", "reproduce", "run"]


def check_files(settings: dict, png) -> list[Path]:
    """The files the saved edit needs, each checked: a missing one is a FileNotFoundError naming it, one whose
    sha256 differs from the saved one an :class:`~dclip.runtime.errors.UnreadableFileError`."""
    from ..editor.saved_edit import needed_files, sha256_of
    from ..runtime.errors import UnreadableFileError

    paths = []
    for path, what, digest in needed_files(settings, png):
        if not path.is_file():
            raise FileNotFoundError(f"'{path}' is missing: it is {what}, which the edit saved in '{png}' needs. "
                                    "Put it back beside the PNG (as the editor saved it), or save the edit again.")
        if digest is not None and sha256_of(path) != digest:
            raise UnreadableFileError(path, f"is not the file the edit in '{png}' was saved with (its sha256 "
                                            "differs)", "Put back the file saved with the edit, or save the edit again.")
        paths.append(path)
    return paths


def reproduce(png, out, device: str = "cpu") -> Path:
    """Redo the edit saved in ``png`` and write it to ``out`` (PNG); returns the path written."""
    import torch

    from ..data.images import load_image, save_image
    from ..method.finetune import load_finetuned
    from ..models.unet import load_unet
    from ..editor.mix_edit import generate_mix, invert_image
    from ..editor.saved_edit import read_settings
    from ..runtime.fast import MODES

    settings = read_settings(png)
    files = check_files(settings, png)
    base = load_unet(settings["base_model"]).to(device)
    models = [load_finetuned(path, base=base) for path in files[1::2]]
    x = load_image(files[0], size=int(base.config.sample_size)).to(device)
    with torch.no_grad():
        x_lat = invert_image(base, x, settings["t0"], settings["S_inv"])
    # the mode it was generated in (edits saved before modes were recorded ran in what is now "fp32-off-cuda")
    mode = settings.get("mode", "fp32-off-cuda")
    edited = generate_mix(base, models, x_lat, settings["t0"], settings["S_gen"], settings["r"], settings["gammas"],
                          fast=mode if mode in MODES or mode == "fp32-off-cuda" else "auto")
    return save_image(edited.cpu(), out)


def run(args) -> None:
    """The command: ``args.from_png``, ``args.out``, ``args.device``."""
    path = reproduce(args.from_png, args.out, args.device)
    print(f"wrote {path} (the edit saved in {args.from_png}, redone)")
