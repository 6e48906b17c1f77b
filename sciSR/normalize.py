"""Global value normalization with a valid mask (DESIGN §6).

Statistics are computed once per variable/band/volume over valid values only (never per tile),
invalid cells are filled before the model, and the statistics round-trip through attrs so that
outputs record how they were made.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

_NORMALIZERS: dict[str, type[Normalizer]] = {}


def register_normalizer(cls: type[Normalizer]) -> type[Normalizer]:
    """Class decorator: make a :class:`Normalizer` available by its ``kind``."""
    _NORMALIZERS[cls.kind] = cls
    return cls


def list_normalizers() -> list[str]:
    """Names accepted by ``norm=``."""
    return sorted(_NORMALIZERS)


class Normalizer:
    """Maps values to a model-friendly range and back; ``fit`` sees only valid values.

    Subclasses implement :meth:`_fit`, :meth:`forward` and :meth:`inverse` on numpy or torch arrays.
    """

    kind: ClassVar[str] = "none"

    def __init__(self, **params: float) -> None:
        self.params: dict[str, float] = {k: float(v) for k, v in params.items()}
        #: ``(min, max)`` of the valid values seen by :meth:`fit` (or set by the caller); used to
        #: clip outputs to the input's range when asked (``clip=True``).
        self.valid_range: tuple[float, float] | None = None

    @property
    def fitted(self) -> bool:
        """True when every parameter :meth:`forward` needs is set (by :meth:`fit` or by the caller)."""
        return all(k in self.params for k in self._param_names())

    def _param_names(self) -> tuple[str, ...]:
        return ()

    def fit(self, values: np.ndarray, valid: np.ndarray | None = None) -> Normalizer:
        """Compute global statistics from the valid values of ``values``.

        Raises:
            ValueError: No valid (finite, unmasked) value at all.
        """
        v = np.asarray(values)
        ok = np.isfinite(v) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(v))
        sample = v[ok].astype(np.float64)
        if sample.size == 0:
            raise ValueError(
                "no valid values to normalize: the data are all NaN/fill/nodata; check the mask or nodata"
            )
        self._fit(sample)
        self.valid_range = (float(sample.min()), float(sample.max()))
        return self

    def _fit(self, sample: np.ndarray) -> None:
        return None

    def forward(self, x: Any) -> Any:
        """Physical values → normalized values."""
        return x

    def inverse(self, y: Any) -> Any:
        """Normalized values → physical values."""
        return y

    def to_attrs(self) -> dict[str, str]:
        """Attributes recording this normalization (for output files and weight metadata)."""
        return {"scisr_norm": self.kind, "scisr_norm_params": json.dumps(self.params, sort_keys=True)}

    @staticmethod
    def from_attrs(attrs: dict[str, Any]) -> Normalizer:
        """Rebuild a normalizer written by :meth:`to_attrs`."""
        kind = str(attrs.get("scisr_norm", "none"))
        params = attrs.get("scisr_norm_params", "{}")
        params = json.loads(params) if isinstance(params, str) else dict(params)
        return get_normalizer(kind, **params)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.6g}" for k, v in self.params.items())
        return f"{type(self).__name__}({ps})"


@register_normalizer
class Identity(Normalizer):
    """No normalization (``norm=None`` or ``"none"``)."""

    kind = "none"


@register_normalizer
class ZScore(Normalizer):
    """``(x - mean) / std`` over valid values (std floored to avoid division by zero)."""

    kind = "zscore"

    def _param_names(self) -> tuple[str, ...]:
        return ("mean", "std")

    def _fit(self, sample: np.ndarray) -> None:
        std = float(sample.std())
        self.params = {"mean": float(sample.mean()), "std": std if std > 0 else 1.0}

    def forward(self, x: Any) -> Any:
        return (x - self.params["mean"]) / self.params["std"]

    def inverse(self, y: Any) -> Any:
        return y * self.params["std"] + self.params["mean"]


@register_normalizer
class MinMax(Normalizer):
    """``(x - min) / (max - min)`` → ``[0, 1]`` on the fitted data (outputs may leave it)."""

    kind = "minmax"

    def _param_names(self) -> tuple[str, ...]:
        return ("min", "max")

    def _fit(self, sample: np.ndarray) -> None:
        lo, hi = float(sample.min()), float(sample.max())
        self.params = {"min": lo, "max": hi if hi > lo else lo + 1.0}

    def forward(self, x: Any) -> Any:
        return (x - self.params["min"]) / (self.params["max"] - self.params["min"])

    def inverse(self, y: Any) -> Any:
        return y * (self.params["max"] - self.params["min"]) + self.params["min"]


@register_normalizer
class Percentile(Normalizer):
    """Robust min-max: the ``lower``/``upper`` percentiles map to 0/1 (MRI intensities)."""

    kind = "percentile"

    def __init__(self, lower: float = 1.0, upper: float = 99.0, **params: float) -> None:
        super().__init__(**params)
        self.lower, self.upper = float(lower), float(upper)

    def _param_names(self) -> tuple[str, ...]:
        return ("lo", "hi")

    def _fit(self, sample: np.ndarray) -> None:
        lo, hi = np.percentile(sample, [self.lower, self.upper])
        lo, hi = float(lo), float(hi)
        self.params = {"lo": lo, "hi": hi if hi > lo else lo + 1.0}

    def forward(self, x: Any) -> Any:
        return (x - self.params["lo"]) / (self.params["hi"] - self.params["lo"])

    def inverse(self, y: Any) -> Any:
        return y * (self.params["hi"] - self.params["lo"]) + self.params["lo"]


@register_normalizer
class Log1p(Normalizer):
    """``log1p(max(x, 0)) / scale`` for skewed non-negative fields (precipitation)."""

    kind = "log1p"

    def _param_names(self) -> tuple[str, ...]:
        return ("scale",)

    def _fit(self, sample: np.ndarray) -> None:
        if sample.min() < 0:
            raise ValueError(
                f"norm='log1p' needs non-negative data but the minimum is {sample.min():.4g}; "
                f"use norm='zscore' for signed fields"
            )
        s = float(np.log1p(sample).std())
        self.params = {"scale": s if s > 0 else 1.0}

    def forward(self, x: Any) -> Any:
        lib = _lib(x)
        return lib.log1p(lib.clip(x, 0, None)) / self.params["scale"]

    def inverse(self, y: Any) -> Any:
        return _lib(y).expm1(y * self.params["scale"])


def _lib(x: Any) -> Any:
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def get_normalizer(kind: str | Normalizer | None, **params: Any) -> Normalizer:
    """Normalizer for ``kind`` (``None`` → identity), with optional fixed ``params``.

    Raises:
        ValueError: Unknown kind (lists the known ones).
    """
    if isinstance(kind, Normalizer):
        return kind
    key = "none" if kind is None else str(kind).lower()
    if key not in _NORMALIZERS:
        raise ValueError(f"unknown norm '{kind}'; choose one of {list_normalizers()} or None")
    cls = _NORMALIZERS[key]
    if cls is Percentile:
        lower = params.pop("lower", 1.0)
        upper = params.pop("upper", 99.0)
        return Percentile(lower=lower, upper=upper, **params)
    return cls(**params)
