"""The toy world's networks as its runtime uses them: the architectures of the shipped toy DDPM and toy CLIP
(the trainer writes them into the sidecars, from which ``load_unet("toy")`` / ``load_clip("toy")`` build the
models), and the judge that scores edits.

Nothing here trains (that is :mod:`dclip.toy.train`, which imports this module, never the reverse).
"""
from __future__ import annotations

import torch

from ..models.folder import read_sidecar, read_tensors, shipped_file
from . import domain

__all__ = ["DDPM_UNET_CONFIG", "CLIP_CONFIG", "JUDGE_HEADS", "COLOUR_HEADS", "FORM", "IDENTITY_RANGES", "judge_perceptual",
           "identity_vector", "Judge", "judge_distance", "face_of", "rerender", "rerender_residual", "load_judge", "sidecar", "MODEL_NAMES"]

#: The shipped toy models' names in :data:`dclip.models.folder.SHIPPED_DIR` (read from
#: :func:`dclip.models.folder.toy_models_dir`).
MODEL_NAMES = ("toy_ddpm", "toy_clip", "toy_judge")


#: diffusers UNet2DModel keywords of the toy DDPM (1.1 M parameters; attention at 8 px).
DDPM_UNET_CONFIG = dict(
    sample_size=domain.SIZE, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=None,
)


#: open_clip.CLIP keywords of the toy CLIP (a ViT on 32 px, 4 px patches; the standard BPE vocabulary
#: with a 32-token context, which every caption and every ImageNet template fits).
CLIP_CONFIG = dict(
    embed_dim=64, quick_gelu=True,
    vision_cfg=dict(image_size=domain.SIZE, layers=3, width=64, head_width=32, patch_size=4),
    text_cfg=dict(context_length=32, vocab_size=49408, width=64, heads=2, layers=3),
)


#: The judge's heads: every attribute and the style. Colour heads are not trained (nor read) on sketches.
JUDGE_HEADS: dict[str, tuple[str, ...]] = {**domain.ATTRIBUTES, "style": domain.STYLES}
COLOUR_HEADS = ("skin", "hair", "background")

#: The judge's form head: is the image a well-formed toy face (in any style) or broken
#: (:mod:`dclip.toy.corruptions`)?
FORM = ("broken", "well-formed")

#: The identity parameters the judge reads back (:class:`dclip.toy.domain.Face` fields) and their ranges
#: (min, max) as :func:`dclip.toy.domain.random_face` draws them.
IDENTITY_RANGES: dict[str, tuple[int, int]] = {
    "face_w": (36, 44), "face_h": (44, 51), "dx": (-5, 5), "eye_gap": (13, 17), "eye_y": (-10, -4),
    "mouth_w": (10, 14), "hair_len": (0, 33), "fringe": (10, 21),
}


def identity_vector(face) -> torch.Tensor:
    """A face's identity parameters scaled to [0, 1] by :data:`IDENTITY_RANGES` (what the judge regresses)."""
    return torch.tensor([(getattr(face, k) - lo) / (hi - lo) for k, (lo, hi) in IDENTITY_RANGES.items()])


class Judge(torch.nn.Module):
    """A small CNN that reads a toy image: one classification head per attribute and for the style, a *form*
    head (:data:`FORM`: well-formed toy face or broken) and an *identity* head regressing the identity
    parameters (:data:`IDENTITY_RANGES`, scaled to [0, 1]).

    Independent of the toy CLIP (a convolutional network, other seed, cross-entropy on the true labels):
    it only scores edits and is never a loss, so an edit cannot pass by fooling the CLIP it optimised.
    Input: images in [-1, 1], (N, 3, 32, 32).
    """

    def __init__(self, width: int = 32):
        super().__init__()

        def block(cin, cout):
            return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout),
                                       torch.nn.ReLU(), torch.nn.Conv2d(cout, cout, 3, padding=1),
                                       torch.nn.BatchNorm2d(cout), torch.nn.ReLU())

        self.blocks = torch.nn.ModuleList([block(3, width), torch.nn.Sequential(torch.nn.MaxPool2d(2),
                                           block(width, 2 * width)), torch.nn.Sequential(torch.nn.MaxPool2d(2),
                                           block(2 * width, 4 * width))])
        self.pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.heads = torch.nn.ModuleDict({name: torch.nn.Linear(4 * width, len(values))
                                          for name, values in JUDGE_HEADS.items()})
        self.form = torch.nn.Linear(4 * width, len(FORM))
        self.identity = torch.nn.Linear(4 * width, len(IDENTITY_RANGES))
        # per style read, the largest judge_distance between an image and the face the judge reads in it,
        # re-rendered, that a well-formed image shows (calibrated after training: dclip.toy.train.calibrate_judge)
        self.register_buffer("rerender_threshold", torch.full((len(domain.STYLES),), float("inf")))

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three blocks' activations (32, 16 and 8 px): what :func:`judge_distance` compares."""
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.pool(self.feature_maps(x)[-1])
        return {**{name: head(h) for name, head in self.heads.items()}, "form": self.form(h),
                "identity": self.identity(h)}

    @torch.no_grad()
    def read(self, x: torch.Tensor) -> list[dict]:
        """What the heads read in each image: the attributes and style (values of :data:`JUDGE_HEADS`),
        ``form`` (the form head's verdict, bool) and ``identity`` (a tensor, :data:`IDENTITY_RANGES`)."""
        out = self(x.float().clamp(-1, 1))
        indices = {name: out[name].argmax(1).tolist() for name in JUDGE_HEADS}
        formed = (out["form"].argmax(1) == FORM.index("well-formed")).tolist()
        return [{**{name: JUDGE_HEADS[name][indices[name][i]] for name in JUDGE_HEADS}, "form": formed[i],
                 "identity": out["identity"][i].cpu()} for i in range(len(x))]

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> list[dict]:
        """:meth:`read`, plus ``well_formed``: the image is the face the judge reads in it -- :func:`rerender` of
        the reading lies within the read style's ``rerender_threshold`` of the image in :func:`judge_distance`
        -- and ``residual``, that distance. Analysis by synthesis: a corruption never seen in training (a
        warp, a jigsaw) still leaves an image that no toy face explains. (The form head's own verdict,
        ``form``, refuses 8 % of clean sketches; training it shapes the features the distance is taken on.)"""
        readings = self.read(x)
        residual = rerender_residual(self, x, readings)
        limits = [float(self.rerender_threshold[domain.STYLES.index(r["style"])]) for r in readings]
        return [{**r, "well_formed": bool(d <= limit), "residual": float(d)}
                for r, d, limit in zip(readings, residual, limits)]


def face_of(reading: dict) -> domain.Face:
    """The toy face a judge reading describes (identity parameters rounded to the domain's integers, no
    colour jitter)."""
    identity = {k: int(round(lo + float(v.clamp(0, 1)) * (hi - lo)))
                for (k, (lo, hi)), v in zip(IDENTITY_RANGES.items(), reading["identity"])}
    return domain.Face(**{a: reading[a] for a in domain.ATTRIBUTES}, **identity, jitter=(0, 0, 0))


def rerender(readings: list[dict]) -> torch.Tensor:
    """The faces the readings describe, drawn in the style read (images in [-1, 1])."""
    return domain.to_tensor([domain.render(face_of(r), r["style"]) for r in readings])


def rerender_residual(judge: "Judge", x: torch.Tensor, readings: list[dict]) -> torch.Tensor:
    """:func:`judge_distance` between each image and :func:`rerender` of what the judge read in it."""
    return judge_distance(judge, x.cpu().float(), rerender(readings))


@torch.no_grad()
def judge_distance(judge: Judge, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A perceptual distance on the judge's features, per image pair (LPIPS's recipe without learned
    weights: channel-normalised activations of every block, squared differences averaged over space and
    channels, summed over the blocks). 0 for identical images. On the CPU; :func:`judge_perceptual` is the
    differentiable form."""
    device = next(judge.parameters()).device
    return judge_perceptual(judge)(a.float().to(device), b.float().to(device)).cpu()


def judge_perceptual(judge: Judge):
    """:func:`judge_distance` as a differentiable ``f(a, b) -> (N,)`` on the judge's device: the toy world's
    stand-in for LPIPS where a loss needs one (the GAN projection, e4e's training)."""
    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for fa, fb in zip(judge.feature_maps(a.clamp(-1, 1)), judge.feature_maps(b.clamp(-1, 1))):
            fa, fb = torch.nn.functional.normalize(fa, dim=1), torch.nn.functional.normalize(fb, dim=1)
            total = total + (fa - fb).pow(2).sum(1).mean((1, 2)) / 2
        return total

    return distance


def load_judge(device: str | torch.device = "cpu", folder=None) -> Judge:
    """The toy judge classifier (eval mode, frozen), from ``folder`` or the toy models' folder
    (:func:`dclip.models.folder.shipped_file`)."""
    judge = Judge()
    judge.load_state_dict(read_tensors(shipped_file("toy_judge", folder)))
    return judge.to(device).eval().requires_grad_(False)


def sidecar(name: str, folder=None) -> dict:
    """The JSON sidecar of a shipped toy model (settings, domain, CPU time, final metrics)."""
    return read_sidecar(shipped_file(name, folder))
