"""What every toy trainer shares: the loss history, the periodic save and the resume file beside the model."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..runtime.progress import progress_bar

__all__ = ["TrainingLog", "init_copy", "discard_init_copy"]


class TrainingLog:
    """One rule for every trainer: the loss averaged over each ``save_every`` steps goes into
    ``meta["history"]`` with the steps done and the CPU time, at which point the model is saved; with the
    model, the run's resume file (:mod:`dclip.runtime.resume`), so a stopped run continues from its last save
    when it is started again with the same settings. :meth:`start` restores it; :meth:`finish` removes the file
    once the finished model is written."""

    def __init__(self, settings, meta: dict, out: Path, name: str, *, modules: dict, optimizers: dict,
                 generators: dict):
        from ..runtime.resume import resume_path

        self.every, self.steps, self.meta = settings.save_every, settings.steps, meta
        self.settings, self.path = asdict(settings), resume_path(out, name)
        self.state = dict(modules=modules, optimizers=optimizers, generators=generators)
        self.history, self.window, self.started, self.cpu_before, self.step = [], [], time.process_time(), 0.0, 0
        self.bar = None

    def start(self, desc: str, progress: bool | None):
        """Restore the run from its resume file if there is one; returns the progress bar over the steps left."""
        from ..runtime.resume import load_state

        resumed = load_state(self.path, self.settings, **self.state)
        if resumed is not None:
            self.step, self.history = resumed["step"], list(resumed["log"]["history"])
            self.cpu_before = float(resumed["log"]["cpu_seconds"])
            desc = f"{desc} (resumed at step {self.step} from {self.path.name})"
        self.bar = progress_bar(range(self.step, self.steps), desc=desc, progress=progress)
        return self.bar

    def record(self, step: int, loss: float) -> bool:
        """Log step ``step``'s loss; True when the model is due to be saved (then ``meta`` is up to date)."""
        self.window.append(loss)
        self.bar.set_postfix(loss=f"{np.mean(self.window):.4f}")
        if (step + 1) % self.every and step + 1 != self.steps:
            return False
        self.history.append({"step": step + 1, "loss": float(np.mean(self.window))})
        self.window = []
        self.meta.update(steps_done=step + 1, cpu_seconds=round(self.cpu_before + time.process_time() - self.started, 1),
                         history=self.history)
        return True

    def saved(self) -> None:
        """After the model of the last :meth:`record` is written: write the resume file beside it."""
        from ..runtime.resume import save_state

        save_state(self.path, step=self.meta["steps_done"], settings=self.settings,
                   log={"history": self.history, "cpu_seconds": self.meta["cpu_seconds"]}, **self.state)

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def init_copy(init: Path, target: Path, what: str, command: str) -> Path:
    """The model a continued run starts from. When ``init`` is the file the run writes (``target``, without its
    suffix), a copy beside it (``<name>.before-continuing.*``, removed by :func:`discard_init_copy` when the run finishes), so
    that a run that stops and is started again still starts from the model it started from, not from its own
    partial save. ``what`` and ``command`` name the model and the ``toy train`` command that makes one."""
    import shutil

    from ..runtime.atomic import atomic_write_all

    init, target = Path(init), Path(target)
    if not init.is_file():
        raise FileNotFoundError(f"no {what} at {init}: train one first (`python -m dclip toy train {command}`) or pass "
                                f"--init with a {what}'s .safetensors")
    if init.resolve() != target.with_suffix(".safetensors").resolve():
        return init
    copy = target.with_name(f"{target.name}.before-continuing.safetensors")
    if not copy.is_file():
        atomic_write_all([(copy, lambda tmp: shutil.copyfile(init, tmp)),
                          (copy.with_suffix(".json"), lambda tmp: shutil.copyfile(init.with_suffix(".json"), tmp))])
    return copy


def discard_init_copy(start: Path, init: Path) -> None:
    """After a continued run finished: remove the copy :func:`init_copy` kept of its start (``start`` is not the
    ``init`` the run was given), with its sidecar; nothing when the run started from ``init`` itself."""
    if Path(start) != Path(init):
        for suffix in (".safetensors", ".json"):
            Path(start).with_suffix(suffix).unlink(missing_ok=True)
