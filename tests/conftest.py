"""Shared test setup: quiet progress bars, one torch thread per xdist worker, deterministic seeds."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SCISR_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    import torch

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(
            max(1, (os.cpu_count() or 2) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
        )
