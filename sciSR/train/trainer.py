"""A compact, deterministic training loop: Adam, L1/Charbonnier, cosine LR, validation, safetensors output."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..metrics import psnr
from .data import PatchSampler
from .degrade import degrade


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`."""

    steps: int = 10000
    batch_size: int = 16
    patch: int = 96
    lr: float = 1e-3
    lr_min: float = 1e-5
    loss: str = "l1"
    grad_clip: float | None = None
    degradation: str = "bicubic"
    seed: int = 0
    log_every: int = 500
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _charbonnier(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((a - b) ** 2 + 1e-6).mean()


_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": nn.functional.l1_loss,
    "l2": nn.functional.mse_loss,
    "charbonnier": _charbonnier,  # sqrt(d² + ε²), ε = 1e-3
}


def _loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name not in _LOSSES:
        raise ValueError(f"unknown loss '{name}'; choose one of {', '.join(_LOSSES)}")
    return _LOSSES[name]


def _check_config(config: TrainConfig) -> None:
    from .degrade import DEGRADATIONS

    if config.steps < 1 or config.batch_size < 1 or config.log_every < 1:
        raise ValueError(
            f"steps, batch_size and log_every must be >= 1, got {config.steps}, {config.batch_size}, "
            f"{config.log_every}"
        )
    if config.degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation '{config.degradation}'; choose one of {DEGRADATIONS}")
    _loss_fn(config.loss)


@torch.no_grad()
def evaluate_psnr(
    model: nn.Module, images: Sequence[np.ndarray], scale: int, degradation: str = "bicubic"
) -> dict[str, float]:
    """Mean PSNR (dB, data range 1, ``scale`` border shaved) of ``model`` and of bicubic on ``images``."""
    model.eval()
    got, base = [], []
    for im in images:
        h, w = (im.shape[0] // scale) * scale, (im.shape[1] // scale) * scale
        hr = torch.from_numpy(np.ascontiguousarray(im[:h, :w]))[None, None]
        lr = degrade(hr, scale, degradation)
        sr = model(lr)[0, 0].numpy()
        bic = nn.functional.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)[
            0, 0
        ].numpy()
        ref = hr[0, 0].numpy()
        b = scale
        got.append(psnr(sr[b:-b, b:-b], ref[b:-b, b:-b], data_range=1.0))
        base.append(psnr(bic[b:-b, b:-b], ref[b:-b, b:-b], data_range=1.0))
    return {"psnr": float(np.mean(got)), "psnr_bicubic": float(np.mean(base))}


def _fit(
    model: nn.Module,
    images: Sequence[np.ndarray],
    config: TrainConfig,
    val_images: Sequence[np.ndarray],
    log: Callable[[str], None],
    t0: float,
) -> list[dict[str, float]]:
    torch.manual_seed(config.seed)
    scale = int(model.scale)
    sampler = PatchSampler(images, scale, config.patch, config.degradation, seed=config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = _loss_fn(config.loss)
    history: list[dict[str, float]] = []
    running, n_running = 0.0, 0
    for step in range(1, config.steps + 1):
        model.train()
        lr_now = config.lr_min + 0.5 * (config.lr - config.lr_min) * (
            1 + math.cos(math.pi * (step - 1) / config.steps)
        )
        for g in opt.param_groups:
            g["lr"] = lr_now
        lr_t, hr_t = sampler.batch(config.batch_size)
        loss = loss_fn(model(lr_t), hr_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        running += loss.item()
        n_running += 1
        if step % config.log_every == 0 or step == config.steps:
            rec = {
                "step": step,
                "loss": running / n_running,  # mean training loss since the previous record
                "lr": lr_now,
                "seconds": time.perf_counter() - t0,
            }
            if val_images:
                rec.update(evaluate_psnr(model, val_images, scale, config.degradation))
            history.append(rec)
            log(json.dumps(rec))
            running, n_running = 0.0, 0
    return history


def train(
    model: nn.Module,
    images: Sequence[np.ndarray],
    config: TrainConfig,
    val_images: Sequence[np.ndarray] = (),
    out: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``model`` on random patches of ``images`` and optionally save safetensors to ``out``.

    Adam with a cosine learning rate: step ``t`` (1-based) uses
    ``lr_min + ½·(lr - lr_min)·(1 + cos(π·(t - 1)/steps))``. Batches come from a
    :class:`~sciSR.train.data.PatchSampler` seeded with ``config.seed``; the torch seed is set too,
    so a run is reproducible on one machine and thread count. ``config.threads`` sets torch's
    (process-wide) thread count for the run only; the previous count is restored afterwards.

    Args:
        model: SR network with a ``scale`` attribute, ``(N, 1, h, w) -> (N, 1, s·h, s·w)``.
        images: Training fields (2-D float arrays, e.g. luma in [0, 1]).
        config: Hyper-parameters.
        val_images: Held-out fields for :func:`evaluate_psnr` at each record.
        out: Safetensors path for the trained weights (with the record in the metadata).
        metadata: Extra metadata strings stored with the weights.
        log: Called with each record as a JSON line.

    Returns:
        ``{"config", "history", "seconds"}``; each history entry has ``step``, ``loss`` (mean
        training loss over the steps since the previous entry), ``lr``, ``seconds`` and, with
        ``val_images``, ``psnr`` and ``psnr_bicubic``.

    Raises:
        ValueError: Non-positive steps, batch size or log interval, or an unknown loss or degradation.
    """
    _check_config(config)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    t0 = time.perf_counter()
    try:
        history = _fit(model, images, config, val_images, log, t0)
    finally:
        torch.set_num_threads(threads)  # the thread count is process-wide: give it back
    model.eval()
    record = {"config": asdict(config), "history": history, "seconds": time.perf_counter() - t0}
    if out is not None:
        from ..models.weights_io import save_weights

        meta = {"scisr_norm": "minmax", "training": json.dumps(record), **(metadata or {})}
        save_weights(model, out, meta)
    return record
