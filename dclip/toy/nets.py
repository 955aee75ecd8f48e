"""The toy world's networks as its runtime uses them: the architectures of the shipped toy DDPM and toy CLIP
(the trainer writes them into the sidecars, from which ``load_unet("toy")`` / ``load_clip("toy")`` build the
models), and the judge that scores edits.

Nothing here trains (that is :mod:`dclip.toy.train`, which imports this module, never the reverse).
"""
from __future__ import annotations

import torch

from ..models.folder import SHIPPED_DIR, read_sidecar, read_tensors, shipped_file
from . import domain

__all__ = ["DDPM_UNET_CONFIG", "CLIP_CONFIG", "JUDGE_HEADS", "COLOUR_HEADS", "Judge",
           "load_judge", "sidecar", "MODEL_NAMES"]

#: The shipped toy models' names in :data:`dclip.models.folder.SHIPPED_DIR`.
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


class Judge(torch.nn.Module):
    """A small CNN with one classification head per attribute and one for the style.

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

        self.features = torch.nn.Sequential(block(3, width), torch.nn.MaxPool2d(2), block(width, 2 * width),
                                            torch.nn.MaxPool2d(2), block(2 * width, 4 * width),
                                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.heads = torch.nn.ModuleDict({name: torch.nn.Linear(4 * width, len(values))
                                          for name, values in JUDGE_HEADS.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> list[dict[str, str]]:
        """The judged attributes and style of each image, as values of :data:`JUDGE_HEADS`."""
        logits = self(x.float().clamp(-1, 1))
        indices = {name: out.argmax(1).tolist() for name, out in logits.items()}
        return [{name: JUDGE_HEADS[name][indices[name][i]] for name in JUDGE_HEADS} for i in range(len(x))]


def load_judge(device: str | torch.device = "cpu", folder=SHIPPED_DIR) -> Judge:
    """The shipped judge classifier (eval mode, frozen)."""
    judge = Judge()
    judge.load_state_dict(read_tensors(shipped_file("toy_judge", folder)))
    return judge.to(device).eval().requires_grad_(False)


def sidecar(name: str, folder=SHIPPED_DIR) -> dict:
    """The JSON sidecar of a shipped toy model (settings, domain, CPU time, final metrics)."""
    return read_sidecar(shipped_file(name, folder))
