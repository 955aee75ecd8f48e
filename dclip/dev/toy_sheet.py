"""The toy world at a glance: held-out faces in every style, the toy DDPM's reconstructions (t0 = 300,
S_inv = S_gen = 40) and its samples from noise, each captioned with what the judge reads."""
from __future__ import annotations

import torch

from ..toy import domain

__all__ = ["toy_world_figure"]


def _label(verdict: dict) -> str:
    """The judge's reading of a sample; "refused" when it finds no well-formed toy face in it."""
    text = f"{verdict['expression']}, {verdict['hair']}\nglasses {verdict['glasses']}, {verdict['style']}"
    return text if verdict["well_formed"] else f"refused\n({text})"


def toy_world_figure(n: int = 6, seed: int = 0):
    """A stamped image grid (see module doc); returns (figure, rows of numbers: the reconstruction MAE)."""
    import dclip

    from ..method.ddim import sample
    from ..studies.plots import image_grid
    from ..notebook.profiles import TOY_STAMP
    from ..toy.nets import load_judge

    x, records = domain.face_set(domain.HELD_OUT_SEED, n)
    styles = [x] + [domain.to_tensor([domain.render(f, s) for f in records]) for s in domain.STYLES[1:]]
    unet, judge = dclip.load_unet("toy"), load_judge()
    with torch.no_grad():
        rec = dclip.generate(unet, dclip.invert(unet, x, 300, 40), 300, 40)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        samples = sample(unet, noise, 40)
    rows = [*styles, rec, samples]
    labels = [*domain.STYLES, "DDPM rec. t0=300", "DDPM samples"]
    captions = [[""] * n for _ in styles] + [[""] * n, [_label(v) for v in judge.predict(samples)]]
    fig = image_grid([list(r) for r in rows], row_labels=labels, captions=captions,
                     title="The toy world: held-out faces, reconstructions and samples of the toy DDPM",
                     stamp_text=TOY_STAMP)
    mae = float(((rec - x).abs() / 2).mean())
    return fig, [{"what": "DDIM round trip, t0=300, S=40", "n": n, "mae": mae}]
