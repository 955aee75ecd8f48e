"""Shared fixtures and helpers: the reference fixtures' folder, relative error, and a smoke profile cut
down further so the notebook helpers run in seconds, and a stand-in that stops a training run. Test modules import
the helpers with ``from conftest import FIXTURES, rel_err``."""
import dataclasses
import os
from pathlib import Path

import pytest
import torch

from dclip.notebook.profiles import get_profile

# The engine's "auto" fast path is bf16 on CPUs with native bf16 (dclip.runtime.fast.cpu_bf16_native): the suite
# runs it as fp32 everywhere, so that no expected number depends on the CPU it runs on; tests of the bf16 path
# name it or set DCLIP_CPU_BF16 themselves (tests/test_cpu_bf16.py).
os.environ.setdefault("DCLIP_CPU_BF16", "0")

#: Reference tensors from the authors' code and the libraries dclip is checked against (see fixtures/README.md).
FIXTURES = Path(__file__).parent / "fixtures"


def stopping_at(fn, step: int):
    """``fn`` (a trainer's per-step batch function, called with the step first) that raises KeyboardInterrupt at
    ``step``, as a user stopping the run there would: monkeypatch it in to stop a training run mid-way."""
    def stop(at, *args, **kwargs):
        if at == step:
            raise KeyboardInterrupt
        return fn(at, *args, **kwargs)
    return stop


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖, half-precision tensors widened to fp32 first."""
    a = a.float() if a.dtype in (torch.bfloat16, torch.float16) else a
    b = b.float() if b.dtype in (torch.bfloat16, torch.float16) else b
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="session")
def quick_profile():
    """The smoke profile with even fewer steps; leaves torch's thread count alone."""
    return dataclasses.replace(get_profile("smoke"), n_inv=4, n_gen=4, n_inv_train=4, n_gen_train=2, n_iter=1,
                               latent_opt_iterations=2, project_repeats=1, project_steps=2, num_threads=0)


@pytest.fixture
def quick_context(quick_profile, tmp_path):
    from dclip.notebook.context import Context

    return Context(quick_profile, output_dir=str(tmp_path / "figures"))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test (offline paths must not try)."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
