"""Inference engine: device and precision choice, tile batching, ``inference_mode``, progress.

``precision="auto"`` runs bf16 autocast with channels_last memory layout where the hardware has
native bf16 matrix units (CUDA with bf16, x86 CPUs with AMX/AVX512-BF16) and fp32 elsewhere;
parameter-free baselines always run fp32. Results are always returned as float32 on the CPU.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .tiling import Tiler, Window

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: ``precision="auto"`` uses bf16 only when at least this share of the work runs in bf16.
MIN_REDUCED_SHARE = 0.9
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` → CUDA when available, else CPU; otherwise ``torch.device(device)``.

    Raises:
        ValueError: The device is unknown or not available on this machine.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device '{device}'; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' was asked for but no CUDA GPU is available; use device='cpu' or 'auto'"
        )
    return dev


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True on x86 CPUs with AMX-BF16 or AVX512-BF16 (where oneDNN runs bf16 faster than fp32)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return ("amx_bf16" in flags or "avx512_bf16" in flags) and torch.backends.mkldnn.is_available()


def resolve_precision(precision: str | None, device: torch.device, learned: bool = True) -> str:
    """Concrete precision (``"fp32"``, ``"bf16"`` or ``"fp16"``) for ``precision`` on ``device``.

    Raises:
        ValueError: Unknown precision, or one the device cannot run.
    """
    p = "auto" if precision is None else str(precision).lower()
    aliases = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
    p = aliases.get(p, p)
    if p not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; choose one of {PRECISIONS}")
    if p == "auto":
        if not learned:
            return "fp32"
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
    if p == "fp16" and device.type == "cpu":
        raise ValueError("precision 'fp16' is for GPUs; on the CPU use 'bf16' or 'fp32'")
    return p


def reduced_share(model: nn.Module, in_channels: int, scale: int) -> float:
    """Share of ``model``'s multiply-accumulates that bf16 autocast would run in bf16."""
    from .precision import profile_model

    return profile_model(model, in_channels, scale).reduced_fraction


def set_cpu_threads() -> int:
    """Cap torch's intra-op threads at the cores this process may use (containers, cgroups, taskset).

    torch sizes its pool from the machine's cores, which oversubscribes a job pinned to fewer;
    ``OMP_NUM_THREADS`` or an earlier ``torch.set_num_threads`` by the user is respected.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    if "OMP_NUM_THREADS" not in os.environ and torch.get_num_threads() > usable:
        torch.set_num_threads(usable)
    return torch.get_num_threads()


def activation_bytes_per_pixel(model: nn.Module, in_channels: int, scale: int | None = None) -> float:
    """Largest single activation of ``model`` per LR input pixel, in bytes at fp32.

    Measured once per model structure by :func:`sciSR.precision.profile_model` (forward hooks on a
    small probe input) and cached.
    """
    from .precision import profile_model

    s = int(scale if scale is not None else getattr(model, "scale", 1) or 1)
    return profile_model(model, in_channels, s).activation_bytes_per_px


def auto_tile_size(
    model: nn.Module,
    in_channels: int,
    halo: int,
    budget_bytes: float,
    precision: str = "fp32",
    scale: int | None = None,
) -> int:
    """Largest core tile (LR pixels per side) whose activations fit ``budget_bytes``.

    The working set is taken as twice the largest activation (a layer's input and output alive
    at once), at 2 bytes per value under bf16/fp16 autocast and 4 at fp32.
    """
    per_value = 2.0 if precision in ("bf16", "fp16") else 4.0
    per_px = 2.0 * activation_bytes_per_pixel(model, in_channels, scale) * per_value / 4.0
    side = int(math.sqrt(max(budget_bytes, 1.0) / per_px)) - 2 * halo
    return int(min(max(side, 32), 8192))


def available_memory() -> float:
    """Bytes available to a call (:func:`sciSR.sysinfo.available_bytes`: ``SCISR_MEMORY_LIMIT``,
    else ``MemAvailable`` lowered to the container's cgroup allowance); 4 GiB if unknown."""
    from .sysinfo import available_bytes

    free = available_bytes()
    return free if math.isfinite(free) else 4.0 * 2**30


#: Largest CPU tile budget by default (bytes): tiles of ~500 LR px for a ×4 RCAN already run at full
#: speed, and a bounded working set keeps streamed files and dask workers within a known memory.
CPU_BUDGET_CAP = 1.0 * 2**30


def default_budget(device: torch.device) -> float:
    """Memory for one batch of tiles: ``SCISR_MEMORY_BUDGET`` (bytes) if set, else half the free
    GPU memory, or a quarter of the available RAM (at most :data:`CPU_BUDGET_CAP`) on the CPU."""
    env = os.environ.get("SCISR_MEMORY_BUDGET")
    if env:
        return float(env)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return 0.5 * free
    return min(0.25 * available_memory(), CPU_BUDGET_CAP)


@dataclass
class Engine:
    """Runs a model over tiles of a ``(B, C, H, W)`` float32 tensor.

    Attributes:
        device: Where the model runs.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (concrete, see :func:`resolve_precision`).
        batch_size: Tiles per forward call.
        progress: ``True``/``False``, or ``None`` to show a bar only on an interactive stderr.
        channels_last: Use the NHWC memory layout (on with reduced precision).
    """

    device: torch.device
    precision: str = "fp32"
    batch_size: int = 1
    progress: bool | None = None
    channels_last: bool = False

    @classmethod
    def create(
        cls,
        model: nn.Module,
        device: str | torch.device | None = "auto",
        precision: str | None = "auto",
        batch_size: int | None = None,
        progress: bool | None = None,
        in_channels: int = 1,
        scale: int = 1,
    ) -> Engine:
        """Engine for ``model`` with concrete device and precision.

        ``precision="auto"`` runs bf16 autocast where the hardware is fast at it and at least
        :data:`MIN_REDUCED_SHARE` of the network's multiply-accumulates would run in bf16 (the
        image-space layers stay fp32, see :mod:`sciSR.precision`); fp32 otherwise.
        """
        dev = resolve_device(device)
        learned = any(True for _ in model.parameters())
        prec = resolve_precision(precision, dev, learned)
        auto = precision is None or str(precision).lower() == "auto"
        if auto and prec != "fp32" and reduced_share(model, in_channels, scale) < MIN_REDUCED_SHARE:
            prec = "fp32"  # too little of the work would run in bf16 to pay for the casts
        if prec != "fp32" and not getattr(model, "reduced_precision", True):
            name = getattr(model, "registry_name", type(model).__name__)
            if not auto:
                raise ValueError(
                    f"{name} runs in fp32 only (it has no reduced-precision kernels); "
                    f"use precision='fp32' or 'auto'"
                )
            prec = "fp32"
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if dev.type == "cpu":
            set_cpu_threads()
        return cls(dev, prec, batch_size or 1, progress, channels_last=prec != "fp32")

    def prepare(self, model: nn.Module, in_channels: int = 1, scale: int = 1) -> nn.Module:
        """Move ``model`` to the device and layout; set eval mode (BatchNorm in eval).

        Under reduced precision the image-space layers are marked to run in fp32
        (:func:`sciSR.precision.keep_image_layers_fp32`), so outputs are not quantized to bf16.
        The module is changed in place: callers pass their own copy.
        """
        model = model.to(self.device).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.precision != "fp32":
            from .precision import keep_image_layers_fp32

            keep_image_layers_fp32(model, in_channels, scale)
        return model

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    def forward(self, model: nn.Module, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """One batch through the model; returns float32 on the CPU.

        Args:
            model: Prepared module (see :meth:`prepare`).
            x: Batch of LR tiles.
            scale: When given, the output size is checked against ``x`` (see :func:`check_scaled`).

        Shape:
            ``(N, C, h, w) -> (N, C_out, s·h, s·w)``.
        """
        xd = x.to(self.device, non_blocking=True)
        if self.channels_last:
            xd = xd.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self.autocast():
            y = model(xd)
        if scale is not None:
            check_scaled(y, x, scale)
        return y.float().contiguous().cpu()

    def run(self, model: nn.Module, x: torch.Tensor, tiler: Tiler, desc: str = "sciSR") -> torch.Tensor:
        """Super-resolve every item of ``x`` tile by tile and merge.

        An array that fits one window runs in batches of whole items, with no tile copies.

        Raises:
            ValueError: The model does not return its input ×scale.

        Shape:
            ``(B, C, H, W) -> (B, C_out, s·H, s·W)``.
        """
        _b, _c, h, w = x.shape
        wins = tiler.windows(h, w)
        if len(wins) == 1:
            return self._run_whole(model, x, tiler.scale, desc)
        return self.run_windows(model, x, tiler, wins, (0, h, 0, w), (0, 0), desc)

    def run_windows(
        self,
        model: nn.Module,
        x: torch.Tensor,
        tiler: Tiler,
        wins: list[Window],
        region: tuple[int, int, int, int],
        origin: tuple[int, int],
        desc: str = "sciSR",
    ) -> torch.Tensor:
        """Run the windows ``wins`` and merge them into the HR block of the LR ``region``.

        This is :meth:`run` restricted to one region of a larger array: ``x`` holds the LR box
        that starts at ``origin`` (absolute LR row, column) and covers every window in ``wins``
        (absolute coordinates of the whole array's tiling). With the windows of the whole array
        that touch ``region``, in the whole array's order, the block equals the same block of
        :meth:`run` on the whole array (same tiles, same weights, same summation order), so
        chunked, streamed and whole-array results agree for any model.

        Args:
            model: Prepared module.
            x: LR box ``(B, C, bh, bw)``.
            tiler: The whole array's tiler.
            wins: Windows to run, a subset of ``tiler.windows(H, W)`` in its order.
            region: ``(y0, y1, x0, x1)`` absolute LR bounds of the block returned.
            origin: Absolute LR position of ``x[..., 0, 0]``.
            desc: Progress-bar label.

        Returns:
            The HR block, ``(B, C_out, s·(y1-y0), s·(x1-x0))`` float32.

        Shape:
            ``(B, C, bh, bw) -> (B, C_out, s·(y1-y0), s·(x1-x0))``.
        """
        b = x.shape[0]
        s = tiler.scale
        ry0, ry1, rx0, rx1 = region
        oy, ox = origin
        jobs = [(i, win) for i in range(b) for win in wins]
        out: torch.Tensor | None = None
        hr = (s * (ry1 - ry0), s * (rx1 - rx0))
        wsum = None if tiler.blend == "crop" else torch.zeros(b, *hr)
        bar = _progress(math.ceil(len(jobs) / self.batch_size), self.progress, desc)
        try:
            for chunk in _chunks(jobs, self.batch_size):
                batch = torch.stack(
                    [x[i, :, win.y0 - oy : win.y1 - oy, win.x0 - ox : win.x1 - ox] for i, win in chunk]
                )
                y = self.forward(model, batch, s)
                if out is None:
                    out = torch.zeros(b, y.shape[1], *hr)
                for (i, win), yi in zip(chunk, y):
                    tiler.merge_into(out[i], None if wsum is None else wsum[i], yi, win, (ry0, rx0, *hr))
                bar.update(1)
        finally:
            bar.close()
        if out is None:
            raise ValueError(f"no window touches the region {region}")
        if wsum is not None:
            out /= wsum[:, None]
        return out

    def _run_whole(self, model: nn.Module, x: torch.Tensor, s: int, desc: str) -> torch.Tensor:
        b = x.shape[0]
        parts = []
        bar = _progress(math.ceil(b / self.batch_size), self.progress, desc)
        try:
            for i in range(0, b, self.batch_size):
                xi = x[i : i + self.batch_size]
                y = self.forward(model, xi, s)
                parts.append(y)
                bar.update(1)
        finally:
            bar.close()
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def check_scaled(y: object, x: torch.Tensor, s: int) -> None:
    """Raise a clear error unless ``y`` is a ``(N, C_out, s·h, s·w)`` tensor for input ``x``.

    Raises:
        ValueError: Wrong type, rank, batch size or spatial size.
    """
    n, _c, h, w = x.shape
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.shape[0] != n or y.shape[-2:] != (s * h, s * w):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(
            f"the model returned {got} for a {tuple(x.shape)} input; expected ×{s}, i.e. "
            f"({n}, C, {s * h}, {s * w}): pass the scale the model was built for"
        )


def _chunks(jobs: list[tuple[int, Window]], n: int) -> Iterator[list[tuple[int, Window]]]:
    for k in range(0, len(jobs), n):
        yield jobs[k : k + n]


class _NoBar:
    def update(self, n: int = 1) -> None:
        return None

    def close(self) -> None:
        return None


def _progress(total: int, progress: bool | None, desc: str):
    if progress is False or total <= 1 or os.environ.get("SCISR_NO_PROGRESS"):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, unit="batch", disable=None if progress is None else False, leave=False
    )
