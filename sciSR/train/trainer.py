"""The training loop: mixed precision, EMA, schedules, exact resume, validation, CSV log, progress.

:func:`fit` trains any sciSR (or user) network on random patches drawn by a
:class:`~sciSR.train.data.PatchSampler`. Design points:

* **Fast where the hardware is.** ``precision="auto"`` trains under bf16 autocast with fp32 master
  weights on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), in channels_last layout; fp32
  elsewhere. ``"fp16"`` (CUDA only) uses a gradient scaler.
* **Exact resume.** Batch ``i`` depends only on ``(seed, i)`` (the sampler's contract), so a
  checkpoint holding the model, EMA, optimizer, objective (discriminator) and step resumes to the
  same weights as an uninterrupted run on the same machine and thread count.
* **Prefetch workers.** ``workers`` threads build the next batches while the network trains; the
  order stays deterministic because batches are addressed by index.
* **EMA.** An exponential moving average of the weights (decay ``ema``, warmed up as
  ``min(ema, (1 + t)/(10 + t))``) is validated and saved instead of the raw weights.
* **Schedules** by name from :data:`SCHEDULES`: ``cosine`` (to ``lr_min``), ``step`` (×``gamma`` at
  each milestone, EDSR/RCAN style) and ``constant``; an optional linear warm-up.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..metrics import psnr, ssim
from .data import PatchSampler
from .degrade import degrade

#: Checkpoint format version written by :func:`fit`.
CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`fit` (all JSON-serialisable; stored with the weights).

    Attributes:
        steps: Optimizer steps.
        batch_size: Patches per step.
        patch: HR patch side (a multiple of the scale).
        lr: Peak learning rate (Adam, betas 0.9/0.999).
        lr_min: Final learning rate of the cosine schedule.
        schedule: ``"cosine"``, ``"step"`` or ``"constant"``.
        milestones: Steps at which ``"step"`` multiplies the rate by ``gamma``; empty = at 50% and 75%.
        gamma: Factor of the step schedule.
        warmup: Linear warm-up steps.
        loss: Objective for :func:`~sciSR.train.losses.build_objective` (``"l1"``, ``"l1+perceptual"``...).
        loss_weights: Per-output weights for multi-output networks (LapSRN levels, DRCN recursions).
        grad_clip: Clip the global gradient norm to this value (VDSR); ``None`` = off.
        degradation: LR maker (:data:`~sciSR.train.degrade.DEGRADATIONS`).
        degrade_options: Options of the degradation (``sigma``, ``noise``...).
        augment: Random flips and 90° rotations of patches (off for oriented or anisotropic data).
        min_std: Texture threshold of the patch sampler (in normalized units).
        seed: Seeds the weights' initial draw (when the caller builds the model after seeding), the
            batches and torch.
        log_every: Steps between log records (mean loss, learning rate, speed).
        val_every: Steps between validations (default: ``log_every``).
        val_crop: Validation fields are centre-cropped to at most this HR side (keeps checks quick).
        threads: torch CPU threads during the run (restored afterwards); ``None`` = unchanged.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA).
        channels_last: NHWC layout; ``None`` = on with bf16/fp16 and on CUDA (on a Zen 4 CPU, bf16
            training steps of EDSR-baseline and RCAN ran about 10% faster in NHWC than in NCHW).
        ema: EMA decay (0 = no EMA).
        workers: Batch-building threads; ``None`` = 2 on CPU samplers, 0 when batches are built on the GPU.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        checkpoint_every: Steps between checkpoints (when a checkpoint path is given); default
            ``val_every``.
        gan: ``None``, ``"vanilla"`` or ``"ragan"`` (adversarial training).
        discriminator: ``"srgan"`` or ``"esrgan"``.
        gan_weight: Weight of the generator's adversarial term.
        perceptual_weight: Weight of perceptual/texture terms.
        vgg_weights: VGG19 weight file for perceptual and texture losses.
        d_lr: Discriminator learning rate (default ``lr``).
        constraint: Consistency layer applied to the network output in training and validation
            (Harder et al. 2023; :mod:`sciSR.constraints`): ``"add"``, ``"mult"`` or ``"softmax"``
            (``mult``/``softmax`` need ``degradation="area"``; ``add`` also projects onto the other
            linear degradations). It acts in the training data's units (normalized: for ``add`` the
            same as data units under an affine normalization; ``mult``/``softmax`` need the
            normalization to keep 0 at 0). The saved weights record it, so ``downscale`` applies it
            with them by default.
        covariates: Number of trailing channels of the training fields that are static HR covariates
            (:mod:`sciSR.covariates`; set by ``finetune``/``train`` from ``covariates=``). They are cut
            and augmented with the data patches, pixel-unshuffled onto the LR grid after the degraded
            data channels (never degraded), and are not part of the target.
        extra: Free-form record (stored with the weights).
    """

    steps: int = 10000
    batch_size: int = 16
    patch: int = 96
    lr: float = 1e-3
    lr_min: float = 1e-5
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    warmup: int = 0
    loss: Any = "l1"
    loss_weights: tuple[float, ...] | None = None
    grad_clip: float | None = None
    degradation: str = "bicubic"
    degrade_options: dict[str, Any] = field(default_factory=dict)
    augment: bool = True
    min_std: float = 0.04
    seed: int = 0
    log_every: int = 500
    val_every: int | None = None
    val_crop: int = 384
    threads: int | None = None
    precision: str = "auto"
    channels_last: bool | None = None
    ema: float = 0.0
    workers: int | None = None
    device: str = "auto"
    checkpoint_every: int | None = None
    gan: str | None = None
    discriminator: str = "esrgan"
    gan_weight: float = 5e-3
    perceptual_weight: float = 1.0
    vgg_weights: str | None = None
    d_lr: float | None = None
    constraint: str | None = None
    covariates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _lr_cosine(step: int, c: TrainConfig) -> float:
    return c.lr_min + 0.5 * (c.lr - c.lr_min) * (1 + math.cos(math.pi * (step - 1) / c.steps))


def _lr_step(step: int, c: TrainConfig) -> float:
    marks = c.milestones or (c.steps // 2, (3 * c.steps) // 4)
    return c.lr * c.gamma ** sum(step > m for m in marks)


def _lr_constant(step: int, c: TrainConfig) -> float:
    return c.lr


#: Learning-rate schedules by name: ``f(step (1-based), config) -> rate`` before warm-up.
SCHEDULES: dict[str, Callable[[int, TrainConfig], float]] = {
    "cosine": _lr_cosine,
    "step": _lr_step,
    "constant": _lr_constant,
}


def learning_rate(step: int, config: TrainConfig) -> float:
    """Learning rate of 1-based ``step``: the schedule, times ``step / warmup`` during warm-up."""
    rate = SCHEDULES[config.schedule](step, config)
    if config.warmup and step <= config.warmup:
        rate *= step / config.warmup
    return rate


def check_config(config: TrainConfig) -> None:
    """Refuse a configuration that cannot run, before any data is read or any step is taken.

    Raises:
        ValueError: Non-positive sizes, an unknown schedule, degradation or precision.
    """
    from ..engine import PRECISIONS
    from .degrade import DEGRADATIONS

    sizes = {"steps": config.steps, "batch_size": config.batch_size, "log_every": config.log_every}
    sizes["patch"] = config.patch
    bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or v < 1}
    if bad:
        raise ValueError(f"{', '.join(bad)} must be >= 1 (an integer), got {bad}")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule '{config.schedule}'; choose one of {', '.join(SCHEDULES)}")
    if config.degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation '{config.degradation}'; choose one of {DEGRADATIONS}")
    if str(config.precision).lower() not in PRECISIONS:
        raise ValueError(f"unknown precision '{config.precision}'; choose one of {PRECISIONS}")
    if not 0.0 <= config.ema < 1.0:
        raise ValueError(f"ema must be a decay in [0, 1), got {config.ema}")
    if config.lr <= 0 or config.lr_min < 0:
        raise ValueError(f"lr must be > 0 and lr_min >= 0, got {config.lr}, {config.lr_min}")
    train_constraint(config)


def train_constraint(config: TrainConfig) -> Any:
    """The :class:`sciSR.constraints.Constraint` of ``config`` (``None`` without one): its
    ``constraint`` with the training ``degradation`` and that degradation's options.

    Raises:
        ValueError: Unknown constraint, or one that the degradation does not support.
    """
    from ..constraints import get_constraint
    from .degrade import _lookup

    if config.constraint is None:
        return None
    allowed = _lookup(config.degradation).options
    opts = {k: v for k, v in (config.degrade_options or {}).items() if k in allowed}
    return get_constraint(config.constraint, config.degradation, **opts)


class _Constrained(nn.Module):
    """``constraint(net(lr), lr)``: a network with its consistency layer (validation in training)."""

    def __init__(self, net: nn.Module, constraint: Any, scale: int) -> None:
        super().__init__()
        self.net, self.constraint, self.scale = net, constraint, scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return _constrain_outputs(self.constraint, self.net(lr), lr, self.scale)


def _constrain_outputs(constraint: Any, outputs: Any, lr: torch.Tensor, scale: int) -> Any:
    """The constraint applied to every output at the full scale (multi-output nets: each one).

    Shape:
        outputs ``(N, C, s·h, s·w)`` (or a list of them), lr ``(N, C, h, w)`` -> as outputs.
    """
    if constraint is None:
        return outputs
    full = (lr.shape[-2] * scale, lr.shape[-1] * scale)

    def one(o: torch.Tensor) -> torch.Tensor:
        if tuple(o.shape[-2:]) != full:
            return o
        return constraint.apply(o, lr[:, : o.shape[1]].to(o.dtype), scale)  # data channels: covariates follow

    return [one(o) for o in outputs] if isinstance(outputs, (list, tuple)) else one(outputs)


class EMA:
    """Exponential moving average of a network's floating-point parameters and buffers.

    Args:
        model: The network being trained.
        decay: Target decay; step ``t`` uses ``min(decay, (1 + t) / (10 + t))``.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average towards ``model``'s current weights."""
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        ema_t = [t for t in self.model.state_dict().values() if t.is_floating_point()]
        cur_t = [t for t in model.state_dict().values() if t.is_floating_point()]
        torch._foreach_lerp_(ema_t, cur_t, 1.0 - d)
        for e, c in zip(self.model.buffers(), model.buffers(), strict=True):
            if not e.is_floating_point():
                e.copy_(c)


def _autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _centre_crop(im: np.ndarray, side: int, scale: int) -> np.ndarray:
    h, w = im.shape[-2:]
    th, tw = (min(h, side) // scale) * scale, (min(w, side) // scale) * scale
    y, x = (h - th) // 2, (w - tw) // 2
    return np.ascontiguousarray(im[..., y : y + th, x : x + tw])


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: Sequence[np.ndarray],
    scale: int,
    degradation: str = "bicubic",
    degrade_options: dict[str, Any] | None = None,
    crop: int | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Mean PSNR and SSIM (data range 1, ``scale`` pixels shaved) of ``model`` and of bicubic.

    Each field is cropped to a multiple of ``scale`` (centre crop to ``crop`` when given), degraded
    with ``degradation`` and super-resolved in fp32.

    Args:
        model: ``(N, C, h, w) -> (N, C, s·h, s·w)`` network.
        images: ``(H, W)`` or ``(C, H, W)`` fields normalized to about [0, 1].
        scale: SR factor.
        degradation: LR maker.
        degrade_options: Its options.
        crop: Largest HR side evaluated.
        device: Where the network runs.

    Returns:
        ``{"psnr", "ssim", "psnr_bicubic", "ssim_bicubic"}``.
    """
    was_training = model.training
    model.eval()
    dev = torch.device(device)
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "psnr_bicubic": [], "ssim_bicubic": []}
    for im in images:
        im = _centre_crop(im, crop or max(im.shape[-2:]), scale)
        hr = torch.from_numpy(im).float()
        hr = hr[None, None] if hr.ndim == 2 else hr[None]
        opts = dict(degrade_options or {})
        if opts.get("noise"):
            opts["generator"] = torch.Generator().manual_seed(len(scores["psnr"]))  # same noise each check
        lr = degrade(hr, scale, degradation, **opts)
        sr = model(lr.to(dev)).float().cpu()[0].numpy()
        size = tuple(hr.shape[-2:])
        bic = nn.functional.interpolate(lr, size=size, mode="bicubic", align_corners=False)[0].numpy()
        ref = hr[0].numpy()
        b = scale
        for c in range(ref.shape[0]):
            r, s_, bb = ref[c, b:-b, b:-b], sr[c, b:-b, b:-b], bic[c, b:-b, b:-b]
            scores["psnr"].append(psnr(s_, r, data_range=1.0))
            scores["ssim"].append(ssim(s_, r, data_range=1.0))
            scores["psnr_bicubic"].append(psnr(bb, r, data_range=1.0))
            scores["ssim_bicubic"].append(ssim(bb, r, data_range=1.0))
    model.train(was_training)
    return {k: float(np.mean(v)) for k, v in scores.items()}


def evaluate_psnr(
    model: nn.Module, images: Sequence[np.ndarray], scale: int, degradation: str = "bicubic"
) -> dict[str, float]:
    """:func:`evaluate` on whole fields (no crop): PSNR/SSIM of ``model`` and of bicubic."""
    return evaluate(model, images, scale, degradation)


def _model_outputs(model: nn.Module, lr: torch.Tensor) -> Any:
    forward_train = getattr(model, "forward_train", None)
    return forward_train(lr) if callable(forward_train) else model(lr)


def _final(outputs: Any) -> torch.Tensor:
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


def _batches(
    sampler: PatchSampler, n: int, first: int, last: int, workers: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``first … last`` (1-based step numbers), built ahead by ``workers`` threads."""
    if workers <= 0:
        for i in range(first, last + 1):
            yield sampler.batch(n, i)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="scisr-batch") as pool:
        ahead = 2 * workers
        futures = [pool.submit(sampler.batch, n, i) for i in range(first, min(last, first + ahead - 1) + 1)]
        nxt = first + len(futures)
        while futures:
            fut = futures.pop(0)
            if nxt <= last:
                futures.append(pool.submit(sampler.batch, n, nxt))
                nxt += 1
            yield fut.result()


@dataclass
class _State:
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    objective: nn.Module,
    ema: EMA | None,
    state: _State,
    config: TrainConfig,
    scaler: Any = None,
) -> Path:
    """Write a resumable checkpoint (plain tensors and containers, loadable with ``weights_only=True``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {
        "version": CHECKPOINT_VERSION,
        "step": state.step,
        "history": json.dumps(state.history),
        "config": json.dumps(asdict(config), default=str),
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "objective": objective.state_dict(),
        "ema": None if ema is None else {k: v.cpu().contiguous() for k, v in ema.model.state_dict().items()},
        "scaler": None if scaler is None else scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


def _load_checkpoint(path: Path, config: TrainConfig) -> dict[str, Any]:
    try:
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"cannot resume from {path}: {type(err).__name__} (damaged, or not a sciSR checkpoint); "
            f"delete it or pass resume=False"
        ) from None
    if not isinstance(ck, dict) or ck.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} is not a sciSR training checkpoint; pass another checkpoint path")
    saved = json.loads(ck["config"])
    mine = json.loads(json.dumps(asdict(config), default=str))
    keys = ("steps", "batch_size", "patch", "loss", "degradation", "seed", "schedule", "lr", "ema", "gan")
    diff = [k for k in keys if saved.get(k) != mine.get(k)]
    if diff:
        raise ValueError(
            f"cannot resume from {path}: it was written with other settings ({', '.join(diff)}: "
            f"{[saved.get(k) for k in diff]} there, {[mine.get(k) for k in diff]} here); use the same "
            f"settings or another checkpoint path"
        )
    return ck


def _resolve_precision(config: TrainConfig, device: torch.device) -> str:
    from ..engine import resolve_precision

    return resolve_precision(config.precision, device, learned=True)


def _open_csv(path: Path | None, resume: bool) -> tuple[Any, Any]:
    if path is None:
        return None, None
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a" if resume and path.exists() else "w", newline="")
    cols = ["step", "loss", "lr", "seconds", "patches_per_s", "psnr", "ssim", "psnr_bicubic", "ssim_bicubic"]
    writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
    if fh.tell() == 0:
        writer.writeheader()
    return fh, writer


def fit(
    model: nn.Module,
    images: Sequence[np.ndarray],
    config: TrainConfig,
    val_images: Sequence[np.ndarray] = (),
    out: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    *,
    lr_images: Sequence[np.ndarray] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    csv_path: str | Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train ``model`` on random patches of ``images``; optionally save safetensors to ``out``.

    ``model`` is trained in place (its weights end as the raw, not the EMA, weights; with
    ``config.ema`` the EMA weights are validated, saved and returned in the record's ``"model"``).

    Args:
        model: SR network with a ``scale`` attribute, ``(N, C, h, w) -> (N, C, s·h, s·w)``; a
            ``forward_train`` method, when present, gives the outputs the loss sees (multi-scale
            supervision).
        images: Training fields, ``(H, W)`` or ``(C, H, W)``, normalized (e.g. luma in [0, 1]).
        config: Hyper-parameters.
        val_images: Held-out fields validated every ``config.val_every`` steps.
        out: Safetensors path for the trained (EMA) weights, with the record in the metadata.
        metadata: Extra metadata strings stored with the weights (e.g. normalization statistics);
            with ``config.constraint`` the constraint's keys (``scisr_constraint``...) are added to it.
        log: Called with each record as a JSON line (default: nothing; progress shows on stderr).
        lr_images: LR fields paired with ``images`` (DIV2K ``LR_bicubic``); no degradation then.
        checkpoint: Path of a resumable checkpoint written every ``config.checkpoint_every`` steps
            and at the end.
        resume: Continue from ``checkpoint`` when it exists (the settings must match).
        csv_path: CSV log of the records (default: beside ``out`` as ``<out>.csv`` when ``out`` is given).
            A run interrupted without a checkpoint removes the log it started (nothing partial is
            left); with a checkpoint the log stays, and a resumed run appends to it.
        progress: tqdm bar on stderr (``None``: when stderr is a terminal).

    Returns:
        ``{"config", "history", "seconds", "precision", "device", "model"}``; each history entry
        has ``step``, ``loss`` (mean since the previous entry), ``lr``, ``seconds``,
        ``patches_per_s`` and, at validations, ``psnr``/``ssim`` and their bicubic values.

    Raises:
        ValueError: A configuration that cannot run, data smaller than a patch, a model without a
            positive integer ``scale``, or a checkpoint written with other settings.
    """
    from ..engine import resolve_device
    from .losses import build_objective

    check_config(config)
    scale = getattr(model, "scale", None)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError("the model needs an integer `scale` attribute >= 1 (every sciSR model has one)")
    device = resolve_device(config.device)
    precision = _resolve_precision(config, device)
    if precision != "fp32" and getattr(model, "reduced_precision", True) is False:
        precision = "fp32"
    channels_last = config.channels_last
    if channels_last is None:  # NHWC: faster on CUDA and for oneDNN's bf16 convolutions
        channels_last = precision != "fp32" or device.type == "cuda"
    in_channels = int(np.asarray(images[0]).shape[0]) if np.asarray(images[0]).ndim == 3 else 1
    n_cov = int(config.covariates)
    if n_cov and (lr_images is not None or n_cov >= in_channels):
        raise ValueError(
            f"covariates={n_cov} needs fields with more than {n_cov} channels (data first) and no LR pairs"
        )
    in_channels -= n_cov
    constraint = train_constraint(config)
    if constraint is not None and metadata is not None:
        metadata.update(constraint.metadata())  # the caller's record names the layer too
    objective = build_objective(
        config.loss,
        scale=scale,
        weights=config.loss_weights,
        vgg_weights=config.vgg_weights,
        gan=config.gan,
        discriminator=config.discriminator,
        gan_weight=config.gan_weight,
        perceptual_weight=config.perceptual_weight,
        in_channels=in_channels,
        device=str(device),
        lr=config.d_lr or config.lr,
        degradation=config.degradation,
    )
    objective.check_patch(config.batch_size, config.patch, config.patch)
    sampler_device = device if device.type == "cuda" else None
    sampler = PatchSampler(
        images,
        scale,
        config.patch,
        config.degradation,
        seed=config.seed,
        min_std=config.min_std,
        augment=config.augment,
        lr_images=lr_images,
        device=sampler_device,
        degrade_options=config.degrade_options or None,
    )
    workers = config.workers if config.workers is not None else (0 if sampler_device is not None else 2)
    val_every = config.val_every or config.log_every
    ck_every = config.checkpoint_every or val_every
    if csv_path is None and out is not None:
        csv_path = Path(out).with_suffix(".csv")

    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model.to(device)
    objective.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    # fused Adam: one kernel per step instead of several per tensor (same update, fewer passes)
    opt = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, betas=(0.9, 0.999), fused=True
    )
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    ema = EMA(model, config.ema) if config.ema > 0 else None
    state = _State()
    ck_path = Path(checkpoint) if checkpoint is not None else None
    if resume and ck_path is not None and ck_path.exists():
        ck = _load_checkpoint(ck_path, config)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        objective.load_state_dict(ck["objective"])
        if ema is not None and ck["ema"] is not None:
            ema.model.load_state_dict(ck["ema"])
        if scaler is not None and ck["scaler"] is not None:
            scaler.load_state_dict(ck["scaler"])
        torch.set_rng_state(ck["torch_rng"])
        state = _State(step=int(ck["step"]), history=json.loads(ck["history"]))
    fh, writer = _open_csv(Path(csv_path) if csv_path is not None else None, resume and state.step > 0)

    t0 = time.perf_counter()
    seconds_before = state.history[-1]["seconds"] if state.history else 0.0
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.steps, initial=state.step, disable=not show, desc=f"train ×{scale}", file=sys.stderr
    )
    running, n_running, t_rec = 0.0, 0, time.perf_counter()
    csv_new = csv_path is not None and not (resume and state.step > 0)
    finished = False
    try:
        batches = _batches(sampler, config.batch_size, state.step + 1, config.steps, workers)
        for lr_t, hr_t in batches:
            step = state.step + 1
            model.train()
            rate = learning_rate(step, config)
            for g in opt.param_groups:
                g["lr"] = rate
            lr_t, hr_t = lr_t.to(device, non_blocking=True), hr_t.to(device, non_blocking=True)
            if n_cov:
                from ..covariates import split_batch

                lr_t, hr_t = split_batch(lr_t, hr_t, in_channels, scale)
            if channels_last:
                lr_t = lr_t.contiguous(memory_format=torch.channels_last)
            with _autocast(device, precision):
                outputs = _model_outputs(model, lr_t)
            outputs = [o.float() for o in outputs] if isinstance(outputs, (list, tuple)) else outputs.float()
            outputs = _constrain_outputs(constraint, outputs, lr_t.float(), scale)
            loss, _logs = objective(outputs, hr_t)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            if getattr(objective, "adversarial", False):
                with _autocast(device, precision):
                    objective.discriminator_step(_final(outputs).detach(), hr_t)
            if ema is not None:
                ema.update(model, step)
            state.step = step
            running += float(loss.detach())
            n_running += 1
            bar.update(1)
            do_val = bool(val_images) and (step % val_every == 0 or step == config.steps)
            if step % config.log_every == 0 or step == config.steps or do_val:
                now = time.perf_counter()
                rec: dict[str, float] = {
                    "step": step,
                    "loss": running / n_running,
                    "lr": rate,
                    "seconds": seconds_before + now - t0,
                    "patches_per_s": n_running * config.batch_size / max(now - t_rec, 1e-9),
                }
                if do_val:
                    net = ema.model if ema is not None else model
                    if n_cov:
                        from .. import covariates as cov_mod

                        opts = (config.degradation, config.degrade_options, config.val_crop, device)
                        vals = list(val_images)
                        rec.update(cov_mod.evaluate(net, vals, scale, in_channels, *opts, constraint))
                    else:
                        net = net if constraint is None else _Constrained(net, constraint, scale)
                        rec.update(
                            evaluate(
                                net,
                                val_images,
                                scale,
                                config.degradation,
                                config.degrade_options,
                                config.val_crop,
                                device,
                            )
                        )
                state.history.append(rec)
                bar.set_postfix({k: round(v, 4) for k, v in rec.items() if k in ("loss", "psnr")})
                if log is not None:
                    log(json.dumps(rec))
                if writer is not None:
                    writer.writerow(rec)
                    fh.flush()
                running, n_running, t_rec = 0.0, 0, time.perf_counter()
            if ck_path is not None and (step % ck_every == 0 or step == config.steps):
                save_checkpoint(ck_path, model, opt, objective, ema, state, config, scaler)
        finished = True
    finally:
        bar.close()
        if fh is not None:
            fh.close()
            if not finished and csv_new and ck_path is None:  # an interrupted run leaves no partial log
                Path(csv_path).unlink(missing_ok=True)
        torch.set_num_threads(threads)  # the thread count is process-wide: give it back
    final = ema.model if ema is not None else model
    for net in {id(model): model, id(final): final}.values():
        net.to(memory_format=torch.contiguous_format).eval()
    record = {
        "config": asdict(config),
        "history": state.history,
        "seconds": (state.history[-1]["seconds"] if state.history else time.perf_counter() - t0),
        "precision": precision,
        "device": str(device),
        "model": final,
    }
    if out is not None:
        from ..models.weights_io import save_weights

        meta = {"scisr_norm": "minmax", **(metadata or {})}
        if constraint is not None:
            meta.update(constraint.metadata())
        meta["training"] = json.dumps({k: v for k, v in record.items() if k != "model"}, default=str)
        save_weights(final.cpu(), out, meta)
        final.to(device)
    return record
