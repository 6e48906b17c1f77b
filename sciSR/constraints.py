"""Consistency constraints: super-resolved fields whose coarsening returns the coarse input.

Harder et al. (2023, "Hard-constrained deep learning for climate downscaling", JMLR 24) append a
constraint layer to an SR network so that the mean of each ``s × s`` block of the output equals the
coarse cell it came from. This module gives those layers for any model, in inference (applied to the
model output in physical units) and in training (:class:`sciSR.train.trainer.TrainConfig`).

Notation for one LR cell with value ``x`` and its HR block ``B`` (``s × s`` cells ``i``): ``y_i`` the
model output, ``w_i ≥ 0`` the area weight of HR cell ``i`` (0 for invalid cells), ``W = Σ_B w_i``,
and the weighted block mean ``m_w(y) = Σ_B w_i y_i / W`` (the ``"area"`` degradation with weights).

* ``"add"``: ``y'_i = y_i + (x − m_w(y))``. The smallest change in the area-weighted L2 norm
  ``Σ w_i (y'_i − y_i)²`` that makes ``m_w(y') = x``.
* ``"mult"``: ``y'_i = y⁺_i · x / m_w(y⁺)`` with ``y⁺ = max(y, 0)``; a block where ``m_w(y⁺) = 0``
  takes ``y'_i = x`` (uniform). Needs ``x ≥ 0``; outputs are ``≥ 0``.
* ``"softmax"``: ``y'_i = x · W · exp(y_i) / Σ_B w_j exp(y_j)``. Then
  ``m_w(y') = x · Σ_B w_i exp(y_i) / Σ_B w_j exp(y_j) = x``. With uniform weights (``w = 1``,
  ``W = s²``) this is the paper's ``exp(y_i) · x / mean_B(exp(y))``. Needs ``x ≥ 0``; outputs are
  ``≥ 0``. The network output is treated as a logit: the layer suits models trained with it; applied to
  a model trained without it, ``exp`` of values in data units sharpens the field (prefer ``"mult"``
  for non-negative fields then). Computed with the block maximum subtracted (no overflow).

Area weights (:func:`area_weights_for_grid`): ``cos φ`` of the HR cell centres on latitude/longitude
grids (rotated-pole grids: ``cos`` of the rotated latitude), ``|sin φ₁ − sin φ₀|`` of the HR cell edges
when the latitude has CF bounds, uniform otherwise (projected grids, rasters, MRI). Cells of one LR
cell split its longitude range equally, so only the latitude factor varies inside a block.

Masks: invalid HR cells (NaN) get weight 0 and keep NaN; the constraint holds over the valid cells of
each block; a block without valid cells (or an LR cell that is NaN) stays NaN.

Other linear degradations (``"gaussian"``, ``"slice"``, ``"bicubic"``, ``"matlab"``, ``"kspace"``
with ``magnitude=False``, see :mod:`sciSR.train.degrade`): only ``"add"`` applies, as the
least-norm consistency projection ``y ← y + Aᵀ(AAᵀ)⁻¹(x − Ay)``. The operators are separable,
``A y = A_r Y A_cᵀ``, so the correction is ``P_r R P_cᵀ`` with ``P = Aᵀ(AAᵀ)⁻¹`` per axis and
``R = X − A_r Y A_cᵀ`` (``"slice"`` reduces one axis only). Unlike the block mean these operators are
not local (each LR value depends on HR cells beyond its block), so the projection needs the whole
field: no invalid cells, and no region-by-region computation.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

#: Names accepted by :func:`get_constraint`.
CONSTRAINTS: tuple[str, ...] = ("add", "mult", "softmax")
#: Linear degradations the ``"add"`` projection supports (besides ``"area"``).
PROJECTABLE: tuple[str, ...] = ("area", "gaussian", "slice", "bicubic", "matlab", "kspace")


# ---------------------------------------------------------------------------------------------------
# area weights


@dataclass(frozen=True)
class AreaWeights:
    """HR cell weights of a whole field: one value per HR row (``rows``) or per HR cell (``cells``).

    Attributes:
        kind: What the weights are (recorded in the output attrs).
        rows: ``(s·H,)`` weights by row, or ``None``.
        cells: ``(s·H, s·W)`` weights by cell, or ``None``.
    """

    kind: str
    rows: np.ndarray | None = None
    cells: np.ndarray | None = None
    _digest: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        arr = self.rows if self.rows is not None else self.cells
        if arr is not None:
            a = np.asarray(arr, dtype=np.float64)
            if not np.all(np.isfinite(a)) or a.min() < 0:
                raise ValueError(f"area weights ({self.kind}) must be finite and >= 0")
            object.__setattr__(self, "rows" if self.rows is not None else "cells", a)
            object.__setattr__(self, "_digest", hashlib.sha1(a.tobytes()).hexdigest()[:16])

    def __repr__(self) -> str:  # short and content-based: pipelines are tokenized by repr
        return f"AreaWeights({self.kind!r}, {self._digest})"

    def block(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray | None:
        """Weights of the HR rows ``r0:r1`` and columns ``c0:c1``, broadcastable to ``(r1-r0, c1-c0)``.

        Shape:
            ``-> (r1-r0, 1)`` (by row) or ``(r1-r0, c1-c0)`` (by cell); ``None`` when uniform.
        """
        if self.rows is not None:
            return self.rows[r0:r1, None]
        if self.cells is not None:
            return self.cells[r0:r1, c0:c1]
        return None


def latitude_weights(lat_hr: np.ndarray) -> np.ndarray:
    """``cos φ`` of HR cell-centre latitudes (degrees), clipped at 0 (a pole centre has weight 0).

    Shape:
        ``(n,) -> (n,)``.
    """
    return np.clip(np.cos(np.deg2rad(np.asarray(lat_hr, dtype=np.float64))), 0.0, None)


def latitude_band_weights(bounds_hr: np.ndarray) -> np.ndarray:
    """Cell areas per unit longitude, ``|sin φ₁ − sin φ₀|``, from HR latitude edges (degrees).

    Shape:
        ``(n, 2) -> (n,)``.
    """
    b = np.deg2rad(np.clip(np.asarray(bounds_hr, dtype=np.float64), -90.0, 90.0))
    return np.abs(np.sin(b[:, 1]) - np.sin(b[:, 0]))


def area_weights_for_grid(grid: Any, scale: int) -> AreaWeights | None:
    """HR area weights of a :class:`sciSR.grid.Grid` refined by ``scale``, ``None`` when uniform.

    Latitude y axis (CF ``latitude``, or ``grid_latitude`` of a rotated-pole grid): cell areas from
    the split CF bounds when present, else ``cos φ`` of the refined centres. Any other grid (projected,
    index): uniform (``None``).
    """
    from .grid import is_latitude, refine_centres, split_bounds

    ax = grid.y
    if ax.values is None:
        return None
    rotated = str(ax.attrs.get("standard_name", "")).lower() == "grid_latitude"
    units = str(ax.attrs.get("units", "")).lower()
    if not (is_latitude(ax.dim, ax.attrs) or (rotated and units.startswith("degree"))):
        return None
    what = "rotated latitude" if rotated else "latitude"
    bnds = grid.cell_bounds(ax)
    if bnds is not None:
        direction = np.sign(ax.values[-1] - ax.values[0]) if ax.size > 1 else 1.0
        hr = split_bounds(bnds, direction, int(scale))
        return AreaWeights(f"cell areas from {what} bounds", rows=latitude_band_weights(hr))
    try:
        centres = refine_centres(ax, int(scale), None)
    except ValueError:
        return None
    return AreaWeights(f"cos({what})", rows=latitude_weights(centres))


# ---------------------------------------------------------------------------------------------------
# block operations (torch; differentiable; float64 in inference)


def _block_sum(t: Any, s: int) -> Any:
    """Sum over each ``s × s`` block. Shape: ``(B, C, s·H, s·W) -> (B, C, H, W)``."""
    import torch.nn.functional as F

    return F.avg_pool2d(t, s) * float(s * s)


def _up(t: Any, s: int) -> Any:
    """Block replication. Shape: ``(B, C, H, W) -> (B, C, s·H, s·W)``."""
    return t.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)


def weighted_block_mean(y: Any, scale: int, weights: Any = None) -> Any:
    """Area-weighted mean of each ``s × s`` block over its valid (finite) cells; NaN where none.

    Args:
        y: ``(B, C, s·H, s·W)`` tensor or array.
        scale: Block side ``s``.
        weights: HR weights broadcastable to ``y`` (``None``: uniform).

    Returns:
        ``m_w(y)``, same kind (tensor or array) as ``y``.

    Shape:
        ``(B, C, s·H, s·W) -> (B, C, H, W)``.
    """
    import torch

    t, back = _as_tensor(y)
    w = _weights_tensor(weights, t)
    valid = torch.isfinite(t)
    wv = torch.where(valid, w, torch.zeros_like(t))
    num = _block_sum(wv * torch.where(valid, t, torch.zeros_like(t)), scale)
    den = _block_sum(wv, scale)
    m = num / torch.where(den > 0, den, torch.ones_like(den))
    return back(torch.where(den > 0, m, torch.full_like(m, math.nan)))


def _as_tensor(a: Any) -> tuple[Any, Any]:
    """``(tensor, back)``: numpy input becomes float64 and ``back`` returns numpy in its dtype."""
    import torch

    if isinstance(a, torch.Tensor):
        return a, lambda t: t
    arr = np.asarray(a)
    dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64)), lambda t: t.numpy().astype(dtype)


def _weights_tensor(weights: Any, like: Any) -> Any:
    import torch

    if weights is None:
        return torch.ones_like(like)
    w = torch.as_tensor(np.asarray(weights) if not isinstance(weights, torch.Tensor) else weights)
    return torch.broadcast_to(w.to(dtype=like.dtype, device=like.device), like.shape)


# ---------------------------------------------------------------------------------------------------
# constraints


@dataclass(frozen=True)
class Constraint:
    """A consistency constraint: ``kind`` (``"add"``, ``"mult"``, ``"softmax"``) for ``degradation``.

    Use :func:`get_constraint`; apply with :meth:`apply` (module notes give the formulas).

    Attributes:
        kind: One of :data:`CONSTRAINTS`.
        degradation: The coarsening the output must reproduce (``"area"``: weighted block mean).
        options: Options of the degradation (``sigma`` of ``"gaussian"``, ``axis``/``thickness`` of
            ``"slice"``...).
        logits: ``softmax`` only: ``"output"`` (the network output ``y`` is the logit, as in a model
            trained with the layer) or ``"log"`` (``ℓ = log max(y, 0)``, for a network whose output
            estimates the field itself; then ``exp(ℓ) = y⁺`` and the layer equals ``mult``).
    """

    kind: str
    degradation: str = "area"
    options: tuple[tuple[str, Any], ...] = ()
    logits: str = "output"

    @property
    def nonnegative(self) -> bool:
        """True when the input must be ``>= 0`` (``mult``, ``softmax``)."""
        return self.kind in ("mult", "softmax")

    @property
    def local(self) -> bool:
        """True when each HR block depends only on its own LR cell (block mean): region-wise exact."""
        return self.degradation == "area"

    def attrs(self, weights: AreaWeights | None = None) -> dict[str, str]:
        """``scisr_constraint`` (e.g. ``"softmax (area; weights: cos(latitude))"``) for output attrs."""
        how = self.degradation + "".join(f", {k}={v}" for k, v in self.options)
        if self.local:
            how += f"; weights: {weights.kind if weights is not None else 'uniform'}"
        if self.kind == "softmax":
            how += "; logits: " + ("log of the output" if self.logits == "log" else "network output")
        return {"scisr_constraint": f"{self.kind} ({how})"}

    def metadata(self) -> dict[str, str]:
        """Strings stored with trained weights (read back by :func:`from_metadata`)."""
        import json

        meta = {"scisr_constraint": self.kind, "scisr_constraint_degradation": self.degradation}
        if self.options:
            meta["scisr_constraint_options"] = json.dumps(dict(self.options), sort_keys=True)
        return meta

    def check_input(self, lo: float | None, what: str = "the field") -> None:
        """Refuse negative input values for ``mult``/``softmax`` (``lo``: smallest valid value).

        Raises:
            ValueError: ``lo < 0`` with a non-negative constraint.
        """
        if self.nonnegative and lo is not None and lo < 0:
            raise ValueError(
                f"constraint='{self.kind}' needs non-negative data but {what} has values down to {lo:.4g}; "
                f"use constraint='add' for signed fields"
            )

    def apply(self, y: Any, x: Any, scale: int, weights: Any = None, logits: Any = None) -> Any:
        """Constrain ``y`` so that its coarsening equals ``x``.

        Args:
            y: HR output ``(B, C, s·H, s·W)`` (tensor, differentiable, or numpy; numpy is computed in
                float64 and returned in its dtype). NaN marks invalid cells.
            x: LR input ``(B, C, H, W)`` in the same units (for ``"slice"``: only its axis shrinks).
            scale: Factor ``s``.
            weights: HR area weights broadcastable to ``y`` (block mean only; ``None``: uniform).
            logits: ``softmax`` only: the logits ``ℓ`` (shape of ``y``), overriding :attr:`logits`.

        Returns:
            The constrained HR field, same kind and dtype as ``y``.

        Raises:
            ValueError: Negative ``x`` for ``mult``/``softmax``; invalid cells with a non-local
                degradation; shapes that do not nest.

        Shape:
            ``(B, C, s·H, s·W), (B, C, H, W) -> (B, C, s·H, s·W)``.
        """
        import torch

        t, back = _as_tensor(y)
        xt = _as_tensor(x)[0].to(device=t.device, dtype=t.dtype)
        if self.nonnegative:
            finite = xt[torch.isfinite(xt)]
            if finite.numel() and bool((finite < 0).any()):
                self.check_input(float(finite.min()), "the coarse input")
        if self.degradation == "area":
            want = (xt.shape[-2] * scale, xt.shape[-1] * scale)
            if tuple(t.shape[-2:]) != want or t.shape[:-2] != xt.shape[:-2]:
                raise ValueError(f"HR shape {tuple(t.shape)} is not the LR shape {tuple(xt.shape)} × {scale}")
            wt = _weights_tensor(weights, t)
            if self.kind != "softmax":
                return back(_LAYERS[self.kind](t, xt, scale, wt))
            if logits is not None:
                lg = _as_tensor(logits)[0].to(device=t.device, dtype=t.dtype)
            elif self.logits == "log":
                lg = torch.log(torch.clamp(t, min=0))
            else:
                lg = None
            return back(_softmax(t, xt, scale, wt, lg))
        return back(_project(t, xt, scale, self.degradation, dict(self.options)))

    def residual(self, y: Any, x: Any, scale: int, weights: Any = None) -> Any:
        """``coarsen(y) − x`` with this constraint's degradation (and weights for the block mean).

        Shape:
            ``(B, C, s·H, s·W), (B, C, H, W) -> (B, C, H, W)``.
        """
        t, back = _as_tensor(y)
        xt = _as_tensor(x)[0].to(device=t.device, dtype=t.dtype)
        if self.degradation == "area":
            return back(weighted_block_mean(t, scale, weights) - xt)
        from .train.degrade import degrade

        return back(degrade(t, scale, self.degradation, **dict(self.options)) - xt)


def _add(y: Any, x: Any, s: int, w: Any) -> Any:
    """``y + (x − m_w(y))`` per block; NaN cells stay NaN."""
    return y + _up(x - weighted_block_mean(y, s, w), s)


def _mult(y: Any, x: Any, s: int, w: Any) -> Any:
    """``max(y, 0) · x / m_w(max(y, 0))``; ``x`` where the block mean is 0; NaN cells stay NaN."""
    import torch

    pos = torch.clamp(y, min=0)
    m = weighted_block_mean(pos, s, w)
    zero = m <= 0
    ratio = x / torch.where(zero, torch.ones_like(m), m)
    out = pos * _up(ratio, s)
    return torch.where(_up(zero, s) & torch.isfinite(y), _up(x, s).expand_as(y), out)


def _softmax(y: Any, x: Any, s: int, w: Any, logits: Any = None) -> Any:
    """``x · W · exp(ℓ_i) / Σ_B w_j exp(ℓ_j)`` with the block maximum subtracted (``ℓ = logits``,
    default ``y``; ``ℓ = −∞`` gives 0); a block whose cells are all ``−∞`` takes ``x`` (uniform);
    NaN cells of ``y`` stay NaN."""
    import torch
    import torch.nn.functional as F

    valid = torch.isfinite(y)
    lg = y if logits is None else logits
    live = valid & torch.isfinite(lg)
    neg = torch.full_like(lg, -math.inf)
    lmax = F.max_pool2d(torch.where(live, lg, neg), s)
    lmax = torch.where(torch.isfinite(lmax), lmax, torch.zeros_like(lmax)).detach()
    e = torch.where(live, torch.exp(torch.where(live, lg, torch.zeros_like(lg)) - _up(lmax, s)), 0.0)
    wv = torch.where(valid, w, torch.zeros_like(w))
    den = _block_sum(wv * e, s)
    big_w = _block_sum(wv, s)
    factor = x * big_w / torch.where(den > 0, den, torch.ones_like(den))
    out = torch.where(_up(den > 0, s), e * _up(factor, s), _up(x, s).expand_as(y))
    return torch.where(valid, out, torch.full_like(y, math.nan))


_LAYERS = {"add": _add, "mult": _mult, "softmax": _softmax}


def axis_matrix(method: str, n: int, scale: int, dim: int, **options: Any) -> np.ndarray | None:
    """The ``(n // s, n)`` matrix of a separable linear degradation along one axis (``None``: the
    axis is not reduced).

    ``"gaussian"`` and ``"slice"`` use :func:`~sciSR.train.degrade.gaussian_matrix` and
    :func:`~sciSR.train.degrade.slice_matrix`; other methods are probed with unit impulses (exact for a
    separable operator that keeps constants constant, which every registered one does).

    Raises:
        ValueError: A method that is not linear (``kspace`` with ``magnitude=True``) or not registered.
    """
    import importlib

    import torch

    dg = importlib.import_module("sciSR.train.degrade")
    if dim not in dg.reduced_axes(method, **options):
        return None
    if method == "gaussian":
        sig = options.get("sigma")
        return dg.gaussian_matrix(
            n, scale, 0.5 * scale if sig is None else float(sig), float(options.get("truncate", 4.0))
        )
    if method == "slice":
        return dg.slice_matrix(
            n, scale, dg._slice_thickness(scale, options.get("thickness"), options.get("gap"))
        )
    if method == "kspace" and options.get("magnitude"):
        raise ValueError(
            "kspace with magnitude=True is not linear: no consistency projection; use magnitude=False"
        )
    eye = torch.eye(n, dtype=torch.float64)
    # impulses along the axis, constant along the other one (2·s wide: torch's antialiased bicubic
    # mishandles an output size of 1)
    if dim == -2:
        probe = eye[:, None, :, None].expand(n, 1, n, 2 * scale).contiguous()
        out = dg.degrade(probe, scale, method, **options)  # (n, 1, n/s, 2)
        return np.ascontiguousarray(out[:, 0, :, 0].T.numpy())
    probe = eye[:, None, None, :].expand(n, 1, 2 * scale, n).contiguous()
    out = dg.degrade(probe, scale, method, **options)  # (n, 1, 2, n/s)
    return np.ascontiguousarray(out[:, 0, 0, :].T.numpy())


def _pinv_rows(a: np.ndarray) -> np.ndarray:
    """``Aᵀ(AAᵀ)⁻¹`` of a full-row-rank ``(m, n)`` matrix. Shape: ``(m, n) -> (n, m)``."""
    return np.linalg.solve(a @ a.T, a).T


@lru_cache(maxsize=32)
def _axis_operator(
    method: str, n: int, s: int, dim: int, options: tuple[tuple[str, Any], ...]
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(A, Aᵀ(AAᵀ)⁻¹)`` of one axis (cached: training applies the same operator every step)."""
    a = axis_matrix(method, n, s, dim, **dict(options))
    return None if a is None else (a, _pinv_rows(a))


def _project(y: Any, x: Any, s: int, method: str, options: dict[str, Any]) -> Any:
    """Least-norm projection ``y + Aᵀ(AAᵀ)⁻¹(x − Ay)`` for a separable linear degradation."""
    import torch

    if not bool(torch.isfinite(y).all()):
        raise ValueError(
            f"the consistency projection for degradation '{method}' needs a field without invalid (NaN) "
            f"cells; use constraint_degradation='area' for masked fields"
        )
    h, w = y.shape[-2:]
    key = tuple(sorted(options.items()))
    pairs = [_axis_operator(method, n, s, ax, key) for n, ax in ((h, -2), (w, -1))]
    ay = y
    for pair, dim in zip(pairs, (-2, -1)):
        if pair is not None:
            m = torch.as_tensor(pair[0], dtype=y.dtype, device=y.device)
            ay = m @ ay if dim == -2 else ay @ m.T
    if tuple(ay.shape) != tuple(x.shape):
        raise ValueError(f"coarsened HR shape {tuple(ay.shape)} differs from the LR shape {tuple(x.shape)}")
    r = x - ay
    for pair, dim in zip(pairs, (-2, -1)):
        if pair is not None:
            p = torch.as_tensor(pair[1], dtype=y.dtype, device=y.device)
            r = p @ r if dim == -2 else r @ p.T
    return y + r


def get_constraint(
    spec: str | Constraint | None, degradation: str | None = None, **options: Any
) -> Constraint | None:
    """A :class:`Constraint` from a name (``"add"``, ``"mult"``, ``"softmax"``), an object, or ``None``.

    Args:
        spec: Name, object (returned as is unless ``degradation`` is given), or ``None``/``"none"``/
            ``False`` for no constraint.
        degradation: Coarsening operator (default ``"area"``); see :data:`PROJECTABLE`.
        **options: Options of the degradation.

    Raises:
        ValueError: Unknown name or degradation, or ``mult``/``softmax`` with another degradation
            than ``"area"`` (the message names the fix).
    """
    if spec is None or spec is False or (isinstance(spec, str) and spec.strip().lower() == "none"):
        return None
    if isinstance(spec, Constraint):
        if degradation is None:
            return spec
        kind = spec.kind
    elif isinstance(spec, str):
        kind = spec.strip().lower()
    else:
        raise TypeError(
            f"constraint must be a name {CONSTRAINTS}, a Constraint or None, got {type(spec).__name__}"
        )
    if kind not in CONSTRAINTS:
        raise ValueError(f"unknown constraint '{spec}'; choose one of {', '.join(CONSTRAINTS)} (or None)")
    deg = (degradation or "area").strip().lower()
    if deg not in PROJECTABLE:
        from .train.degrade import DEGRADATIONS

        if deg in DEGRADATIONS:
            raise ValueError(f"degradation '{deg}' has no consistency projection; use one of {PROJECTABLE}")
        raise ValueError(f"unknown degradation '{deg}'; choose one of {PROJECTABLE}")
    if kind != "add" and deg != "area":
        raise ValueError(
            f"constraint='{kind}' is exact only for the block mean (degradation 'area'); use "
            f"constraint='add' (the least-norm projection) with degradation '{deg}'"
        )
    if options and deg == "area":
        raise ValueError(f"degradation 'area' takes no options, got {', '.join(sorted(options))}")
    return Constraint(kind, deg, tuple(sorted(options.items())))


def from_metadata(meta: dict[str, Any]) -> Constraint | None:
    """The constraint recorded in weight metadata (:meth:`Constraint.metadata`), or ``None``."""
    import json

    kind = meta.get("scisr_constraint")
    if not kind:
        return None
    opts = json.loads(meta["scisr_constraint_options"]) if meta.get("scisr_constraint_options") else {}
    return get_constraint(str(kind), str(meta.get("scisr_constraint_degradation") or "area"), **opts)
