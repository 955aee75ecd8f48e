"""The numbers the DiffusionCLIP paper reports, for side-by-side tables.

They are from the CVPR 2022 version (Tables 1 and 3); the earlier ICLR 2022 submission has no
quantitative tables.

Only values the paper prints are here; a missing entry is ``None`` and shows as "-" in tables.
"""
from __future__ import annotations

__all__ = ["TABLE1_RECONSTRUCTION", "TABLE1_GAN_INVERSION", "TABLE3_MANIPULATION", "TABLE3_PROMPTS",
           "paper_reconstruction", "paper_gan_inversion", "paper_manipulation"]

#: Table 1, DiffusionCLIP's reconstruction of CelebA-HQ test images at each return step t0:
#: t0 -> {"mae", "lpips", "ssim"}.
TABLE1_RECONSTRUCTION: dict[int, dict[str, float]] = {
    300: {"mae": 0.020, "lpips": 0.073, "ssim": 0.914},
    400: {"mae": 0.021, "lpips": 0.076, "ssim": 0.910},
    500: {"mae": 0.022, "lpips": 0.082, "ssim": 0.901},
    600: {"mae": 0.024, "lpips": 0.087, "ssim": 0.893},
}

#: Table 1, the GAN inversions the baselines start from, on CelebA-HQ: name -> {"mae", "lpips", "ssim"}.
#: "Optimization" is the StyleGAN2 projector (:mod:`dclip.baselines.projection`); "e4e" is the encoder the
#: paper's StyleCLIP used (:mod:`dclip.baselines.e4e`).
TABLE1_GAN_INVERSION: dict[str, dict[str, float]] = {
    "Optimization": {"mae": 0.061, "lpips": 0.126, "ssim": 0.875},
    "e4e": {"mae": 0.092, "lpips": 0.221, "ssim": 0.742},
}

#: The prompts Table 3 averages over (Sec. 4.1): three in-domain face edits and three church edits,
#: by their :data:`dclip.method.attributes.ATTRIBUTES` names.
TABLE3_PROMPTS = ("makeup", "tanned", "gray_hair", "church_golden", "church_red_brick", "church_sunset")

#: Table 3, mean over the comparison prompts: (method, domain) -> {"s_dir", "id"}.
TABLE3_MANIPULATION: dict[tuple[str, str], dict[str, float | None]] = {
    ("StyleCLIP", "celeba_hq"): {"s_dir": 0.13, "id": 0.35},
    ("StyleGAN-NADA", "celeba_hq"): {"s_dir": 0.16, "id": 0.42},
    ("DiffusionCLIP", "celeba_hq"): {"s_dir": 0.17, "id": 0.70},
    ("DiffusionCLIP", "lsun_church"): {"s_dir": 0.20, "id": None},
}


def paper_reconstruction(t0: int) -> dict[str, float | None]:
    """Table 1's MAE / LPIPS / SSIM at ``t0`` (Nones where the paper has no such row)."""
    return TABLE1_RECONSTRUCTION.get(int(t0), {"mae": None, "lpips": None, "ssim": None})


def paper_gan_inversion(name: str) -> dict[str, float | None]:
    """Table 1's MAE / LPIPS / SSIM of a GAN inversion ("Optimization" or "e4e"; Nones otherwise)."""
    return TABLE1_GAN_INVERSION.get(name, {"mae": None, "lpips": None, "ssim": None})


def paper_manipulation(method: str, domain: str) -> dict[str, float | None]:
    """Table 3's S_dir and ID for a method on a domain (Nones where the paper has none)."""
    return TABLE3_MANIPULATION.get((method, domain), {"s_dir": None, "id": None})
