"""The named fine-tuning recipes as plain numbers: the paper's text (Sec. 4) and the authors' README command line.

Torch-free on purpose: the command line's ``--help`` prints these defaults without importing torch.
:func:`dclip.method.finetune.recipe` builds a :class:`~dclip.method.finetune.FinetuneConfig` from them.
"""
from __future__ import annotations

__all__ = ["RECIPES", "PAPER_LAMBDA_ID"]

#: Named recipes: the FinetuneConfig fields each one sets.
RECIPES: dict[str, dict] = {
    "paper": dict(lr=1e-6, lr_gamma=1.2, lr_step=50, lr_step_unit="update", lambda_clip=1.0, lambda_l1=0.3,
                  n_gen=6, n_iter=1),
    "authors_readme": dict(lr=8e-6, lr_gamma=1.3, lr_step=1, lr_step_unit="epoch", lambda_clip=3.0,
                           lambda_l1=1.0, lambda_id=0.0, n_gen=6, n_iter=5),
}

#: λ_ID of the paper (Sec. 4) for edits that must keep the person recognisable (``Attribute.use_id``).
PAPER_LAMBDA_ID = 0.1
