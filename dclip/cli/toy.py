"""What ``--model toy`` means to ``python -m dclip precompute | finetune``: the toy world as a preset like the
others, with the settings the notebooks' toy world uses where no flag says otherwise -- the toy profile's recipe
and training faces (read from :data:`dclip.notebook.profiles.PROFILES`, never copied), the toy CLIP, and no
identity term (:func:`dclip.method.finetune.world_settings`, the rule the notebooks' toy world follows too).
"""
from __future__ import annotations

import functools

__all__ = ["toy_profile", "preset", "notes", "training_faces"]


def toy_profile():
    """The notebooks' toy profile (:data:`dclip.notebook.profiles.PROFILES`): what ``--model toy`` takes its recipe
    and number of training faces from."""
    from ..notebook.profiles import PROFILES

    return PROFILES["toy"]


def preset(args, edit: str | None = None) -> dict:
    """The settings ``--model toy`` gives where no flag does, as the notebooks' toy world: the toy profile's
    recipe (:func:`dclip.notebook.worlds.profile_recipe`; not when ``--recipe`` names one), its number of
    training faces, the toy CLIP and λ_ID = 0 (:func:`dclip.method.finetune.world_settings`); for a toy edit
    ``edit``, its own recipe (lr, passes, λ_L1: :data:`dclip.notebook.profiles.TOY_EDIT_RECIPES`). Empty for
    other models."""
    if args.model != "toy":
        return {}
    from ..method.finetune import world_settings
    from ..notebook.worlds import profile_recipe

    toy = toy_profile()
    recipe = profile_recipe(toy, getattr(args, "adapter", "none"), edit) if getattr(args, "recipe", None) is None else {}
    return {**recipe, **world_settings(toy.world), "n_images": toy.n_train, "clip": "toy"}


def notes(args, config) -> list[str]:
    """What ``--model toy`` chose for the flags left unset, a line each (the CLI prints them as notes)."""
    from ..method.finetune import NO_IDENTITY_NOTE
    from ..notebook.profiles import edit_recipe

    if args.model != "toy":
        return []
    faces = "" if args.images else f" on {args.n_images} training-seed toy faces"
    edit = args.attribute[0] if args.attribute and not args.source and not args.target else None
    whose = f"{edit}'s toy recipe" if edit_recipe(toy_profile(), edit) else "the toy profile's recipe"
    out = [f"--model toy: {whose} (t0 {config.t0}, lr {config.lr:g}, {config.n_iter} passes, λ_L1 "
           f"{config.lambda_l1:g}, S_gen {config.n_gen}){faces}; a flag you give wins"] if args.recipe is None else []
    return out + ([f"--model toy: {NO_IDENTITY_NOTE}; --lambda-id sets it"] if args.lambda_id is None else [])


def training_faces(n: int) -> list[tuple[str, functools.partial]]:
    """(name, loader) of the first ``n`` of the notebooks' toy fine-tuning faces (training seeds from
    :data:`dclip.toy.domain.FINETUNE_SEED`, never a test or validation face): ``--model toy`` without ``--images``."""
    from ..toy.domain import FINETUNE_SEED, face_set

    faces = face_set(FINETUNE_SEED, n)[0]
    return [(f"toy_{i:02d}", functools.partial(_row, faces, i)) for i in range(len(faces))]


def _row(images, i: int):
    return images[i: i + 1]
