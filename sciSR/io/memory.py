"""Memory a call will need, estimated from shapes and dtypes before any data are read.

A small file can declare a huge grid (a 1 MB compressed GeoTIFF of 100000² pixels), and a large
``scale`` multiplies the output by ``scale²``. Reading or computing such a call would exhaust the
machine's memory before failing, so the adapters compare an estimate with the memory available
and refuse with the figures and the fix.

The estimate counts (per variable, then summed over what is held at once):

* input: the values read (on-disk item size) plus their float working copy;
* output: the result in float32, the assembled copy, and the cast to the output dtype;
* work: the temporaries of one batch of the pipeline (about 25 bytes per LR cell: valid mask,
  normalized float32 and float64 intermediates; about 13 bytes per HR cell: model output,
  denormalized copy, mask) plus the model's working set on the CPU (the engine's tile budget)
  or the HR batch copied back from a GPU.

Memory available: ``SCISR_MEMORY_LIMIT`` (bytes, or with a ``K``/``M``/``G``/``T`` suffix) when set,
else ``MemAvailable`` from ``/proc/meminfo``, lowered to the cgroup's remaining allowance
(``memory.max - memory.current``) inside a container. When neither is known nothing is refused.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: environment variable overriding the memory available to one call
ENV = "SCISR_MEMORY_LIMIT"
#: pipeline temporaries per LR cell and per HR cell of one batch (bytes)
LR_WORK_BYTES = 25
HR_WORK_BYTES = 13
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class InsufficientMemoryError(MemoryError):
    """A call would need more memory than is available; the message gives the figures and the fix."""


def parse_bytes(text: str) -> float:
    """``"2G"``, ``"512m"``, ``"1.5T"``, ``"1000000"`` → bytes (binary units).

    Raises:
        ValueError: Not a size.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", str(text))
    if m is None:
        raise ValueError(f"{ENV}={text!r} is not a size; use bytes or a number with K, M, G or T")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def available_bytes() -> float:
    """Memory one call may use (see the module docstring); ``inf`` when unknown."""
    env = os.environ.get(ENV)
    if env:
        return parse_bytes(env)
    found = [v for v in (_meminfo_available(), _cgroup_remaining()) if v is not None]
    return min(found) if found else math.inf


def _meminfo_available() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_remaining() -> float | None:
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = float((base / "memory.current").read_text().strip())
        return max(float(limit) - used, 0.0)
    except (OSError, ValueError):
        return None


def fmt_bytes(n: float) -> str:
    """Human-readable binary size (``"3.2 GiB"``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


@dataclass
class Need:
    """Bytes a call holds at its peak, by kind."""

    input: float = 0.0
    output: float = 0.0
    work: float = 0.0

    @property
    def total(self) -> float:
        return self.input + self.output + self.work

    def __add__(self, other: Need) -> Need:
        return Need(self.input + other.input, self.output + other.output, max(self.work, other.work))


def variable_need(
    lr_cells: int,
    batch_lr_cells: int,
    scale: int,
    src_itemsize: int,
    out_itemsize: int,
    work_itemsize: int = 4,
) -> Need:
    """Peak memory of downscaling one variable held in memory.

    Args:
        lr_cells: Values of the variable (all loop items and channels).
        batch_lr_cells: Values run through the pipeline at once (one batch).
        scale: Integer factor.
        src_itemsize: Bytes per value as read.
        out_itemsize: Bytes per value of the output dtype.
        work_itemsize: Bytes per value of the float working copy (4, or 8 for float64 data).
    """
    s2 = scale * scale
    return Need(
        input=lr_cells * (src_itemsize + work_itemsize),
        output=lr_cells * s2 * (2 * 4 + out_itemsize),
        work=batch_lr_cells * (LR_WORK_BYTES + s2 * HR_WORK_BYTES),
    )


def model_working_set(pipe: Any, batch_hr_cells: int) -> float:
    """Host memory the model itself needs for one batch: the engine's tile budget on the CPU for a
    learned model (capped by the batch's size), the HR batch returned from a GPU otherwise."""
    hr_bytes = 4.0 * batch_hr_cells
    engine = getattr(pipe, "engine", None)
    device = getattr(engine, "device", None)
    learned = any(True for _ in pipe.model.parameters()) if hasattr(pipe, "model") else False
    if device is None or getattr(device, "type", "cpu") != "cpu" or not learned:
        return 2.0 * hr_bytes
    from ..engine import default_budget

    return min(float(default_budget(device)), 32.0 * hr_bytes)


def check(need: Need, what: str, fixes: list[str]) -> None:
    """Refuse when ``need`` exceeds the available memory.

    Raises:
        InsufficientMemoryError: One line: what, the figures, the fixes and the override.
    """
    avail = available_bytes()
    if need.total <= avail:
        return
    fix = "; ".join(dict.fromkeys(fixes)) or "downscale a smaller subset"
    raise InsufficientMemoryError(
        f"{what} needs about {fmt_bytes(need.total)} of memory (input {fmt_bytes(need.input)}, output "
        f"{fmt_bytes(need.output)}, model and temporaries {fmt_bytes(need.work)}) but "
        f"{fmt_bytes(avail)} is available: {fix} ({ENV} sets the memory sciSR may use)"
    )


def check_read(nbytes: float, what: str, fix: str) -> None:
    """Refuse to read ``nbytes`` (values plus working copies) when they exceed the available memory.

    Raises:
        InsufficientMemoryError: One line naming the size, the memory available and ``fix``.
    """
    avail = available_bytes()
    if nbytes <= avail:
        return
    raise InsufficientMemoryError(
        f"reading {what} needs about {fmt_bytes(nbytes)} of memory but {fmt_bytes(avail)} is available: "
        f"{fix} ({ENV} sets the memory sciSR may use)"
    )


def scale_fix(need_at: Any, scale: int) -> str | None:
    """``"use scale=k (about N)"`` for the largest smaller scale whose need fits, else ``None``.

    Args:
        need_at: Callable ``scale -> Need``.
        scale: The requested scale.
    """
    avail = available_bytes()
    for k in range(int(scale) - 1, 1, -1):
        n = need_at(k)
        if n.total <= avail:
            return f"use a smaller scale (scale={k} needs about {fmt_bytes(n.total)})"
    return None
