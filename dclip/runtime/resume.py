"""Resume files: a training run's whole state, written whenever the run saves its model, so that a run stopped
anyhow (Ctrl-C, a closed laptop, the end of a session) continues from there when it is started again.

A resume file ``<name>.resume.pt`` sits beside the model it belongs to and holds the step reached, the run's
settings, the state dicts of its modules and optimizers, the states of its random generators and its log (loss
history, CPU seconds so far). It is written atomically (:func:`dclip.runtime.atomic.atomic_write`) and read with
``torch.load(..., weights_only=True)``. A run resumes only with the settings it was started with: anything else
would be a different run, so :func:`load_state` refuses it and says what differs.
"""
from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["RESUME_SUFFIX", "resume_path", "save_state", "load_state"]

RESUME_SUFFIX = ".resume.pt"


def resume_path(out: Path, name: str) -> Path:
    """Where the run writing ``out/<name>.safetensors`` keeps its resume file."""
    return Path(out) / f"{name}{RESUME_SUFFIX}"


def save_state(path: Path, *, step: int, settings: dict, modules: dict, optimizers: dict, generators: dict,
               log: dict) -> None:
    """Write the run's state at ``step`` (steps done) to ``path``, atomically."""
    from .atomic import atomic_write

    state = {"step": int(step), "settings": dict(settings),
             "modules": {k: m.state_dict() for k, m in modules.items()},
             "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
             "generators": {k: g.get_state() for k, g in generators.items()}, "log": dict(log)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path, settings: dict, *, modules: dict, optimizers: dict, generators: dict) -> dict | None:
    """Restore a run from ``path`` into ``modules``, ``optimizers`` and ``generators`` (in place); returns
    ``{"step": ..., "log": ...}``, or None when there is no resume file.

    Raises ValueError when the file was written with other settings, naming them and the fix."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or not a resume file: say which and how to start over
        raise ValueError(f"{path} is not a readable resume file ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}); delete it to train from the "
                         "start.") from err
    differ = {k: (state["settings"].get(k), v) for k, v in settings.items() if state["settings"].get(k) != v}
    if differ:
        listed = ", ".join(f"{k} {old!r} there, {new!r} now" for k, (old, new) in differ.items())
        raise ValueError(f"{path} belongs to a run with other settings ({listed}): run with its settings to "
                         f"continue it, or delete it to train from the start.")
    for key, module in modules.items():
        module.load_state_dict(state["modules"][key])
    for key, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][key])
    for key, generator in generators.items():
        generator.set_state(state["generators"][key])
    return {"step": state["step"], "log": state["log"]}
