"""Memory a call will need, estimated from shapes and dtypes before any data are read.

A small file can declare a huge grid (a 1 MB compressed GeoTIFF of 100000² pixels), and a large
``scale`` multiplies the output by ``scale²``. Reading or computing such a call would exhaust the
machine's memory before failing, so the adapters compare an estimate with the memory available
and refuse with the figures and the fix.

The estimate counts (per variable, then summed over what is held at once):

* input: the values read (on-disk item size) plus their float working copy;
* output: the float32 result of every batch and its cast to the output dtype;
* work: the temporaries of the largest batch besides its result (about 25 bytes per LR cell:
  valid mask, normalized float32 and float64 intermediates; about 9 bytes per HR cell: model
  output and mask before masking), plus the model's working set for a learned model on the CPU
  (three times its largest activation over the batch, at most the engine's tile budget).

This is an estimate of the peak, accurate to tens of percent (it errs on the high side); its
purpose is to refuse calls that cannot fit, which typically exceed the memory many times over.

Memory available: ``SCISR_MEMORY_LIMIT`` (bytes, or with a ``K``/``M``/``G``/``T`` suffix) when set,
else ``MemAvailable`` from ``/proc/meminfo``, lowered to the cgroup's remaining allowance
(``memory.max - memory.current``) inside a container. When neither is known nothing is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..sysinfo import ENV, available_bytes, parse_bytes

__all__ = ["ENV", "InsufficientMemoryError", "available_bytes", "check_call", "parse_bytes"]

#: pipeline temporaries per LR cell and per HR cell of one batch (bytes)
LR_WORK_BYTES = 25
HR_WORK_BYTES = 9


class InsufficientMemoryError(MemoryError):
    """A call would need more memory than is available; the message gives the figures and the fix."""


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


@dataclass(frozen=True)
class VarPlan:
    """How one variable will be processed, for the estimate.

    Attributes:
        cells: Values of the variable (all loop items and channels), LR.
        batch_cells: LR values run through the pipeline at once.
        src_itemsize: Bytes per value as read (plus any mask kept beside it).
        out_itemsize: Bytes per value of the output (plus any float64 staging of an integer cast).
        work_itemsize: Bytes per value of the float working copy (4, or 8 for float64 data).
        streamed: Dask-backed: only ``concurrent`` chunks of ``batch_cells`` are in memory at once.
        concurrent: Chunks computed at the same time (dask workers) when streamed.
    """

    cells: int
    batch_cells: int
    src_itemsize: int
    out_itemsize: int
    work_itemsize: int = 4
    streamed: bool = False
    concurrent: int = 1


def variable_need(plan: VarPlan, scale: int) -> Need:
    """Peak memory of downscaling one variable by ``scale`` (see the module docstring)."""
    s2 = scale * scale

    def held(cells: int) -> Need:
        return Need(
            input=cells * (plan.src_itemsize + plan.work_itemsize),
            output=cells * s2 * (4 + plan.out_itemsize),
            work=plan.batch_cells * (LR_WORK_BYTES + s2 * HR_WORK_BYTES),
        )

    if plan.streamed:
        return Need(work=plan.concurrent * held(plan.batch_cells).total)
    return held(plan.cells)


def call_need(plans: list[VarPlan], pipe: Any, scale: int) -> Need:
    """Peak memory of a call: inputs and outputs of all variables add up (they stay referenced),
    temporaries are those of the largest batch, plus the model's working set."""
    total = Need()
    for plan in plans:
        total = total + variable_need(plan, scale)
    batch = max((p.batch_cells for p in plans), default=0)
    total.work += model_working_set(pipe, batch, scale)
    return total


def check_call(plans_at: Any, pipe: Any, scale: int, what: str, fixes: list[str | None]) -> None:
    """Refuse a call whose estimate exceeds the memory available (before reading anything).

    Args:
        plans_at: ``scale -> list[VarPlan]``.
        pipe: The call's pipeline (its model's working set counts).
        scale: Requested factor.
        what: The call, for the message (``"downscaling tas ×4"``).
        fixes: Ways out, in order; a smaller scale that fits is offered first.

    Raises:
        InsufficientMemoryError: The figures and the fixes in one line.
    """
    need = call_need(plans_at(scale), pipe, scale)
    if need.total <= available_bytes():
        return
    smaller = scale_fix(lambda k: call_need(plans_at(k), pipe, k), scale)
    check(need, what, [f for f in (smaller, *fixes) if f])


def model_working_set(pipe: Any, batch_lr_cells: int, scale: int) -> float:
    """Host memory the model itself needs for one batch: for a learned model on the CPU, three
    times its largest activation over the batch (a layer's input and output, plus the convolution
    workspace, measured at about half an activation with oneDNN), capped by the engine's tile
    budget; nothing beyond the batch's output for interpolation or a model on a GPU."""
    engine = getattr(pipe, "engine", None)
    device = getattr(engine, "device", None)
    model = getattr(pipe, "model", None)
    learned = model is not None and any(True for _ in model.parameters())
    if device is None or getattr(device, "type", "cpu") != "cpu" or not learned:
        return 0.0
    from ..engine import activation_bytes_per_pixel, default_budget

    try:
        per_px = activation_bytes_per_pixel(model, int(pipe.in_channels), scale)
    except Exception:  # a model the probe cannot run: assume 32 float32 values per HR cell
        per_px = 32.0 * 4.0 * scale * scale
    return min(float(default_budget(device)), 3.0 * per_px * batch_lr_cells)


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
