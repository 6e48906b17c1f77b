"""sciSR: super-resolution ("downscaling") of climate grids, rasters and MRI volumes.

>>> import sciSR
>>> hr = sciSR.downscale(lr_array, model="bicubic", scale=4)

Heavy dependencies (torch, xarray, rasterio...) load on first use, so ``import sciSR`` is fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name → "module:attribute"
_EXPORTS = {
    "downscale": "api:downscale",
    "create_model": "models.registry:create_model",
    "list_models": "models.registry:list_models",
    "list_weights": "models.catalog:list_weights",
    "register_model": "models.registry:register_model",
    "ModelSpec": "models.base:ModelSpec",
    "SRModel": "models.base:SRModel",
    "load_checkpoint": "models.checkpoints:load_checkpoint",
    "open": "io:open_dataset",
    "write": "io:write",
    "metrics": "metrics",
    "train": "train",
    "finetune": "train.api:finetune",
    "evaluate": "evaluation.core:evaluate",
    "data": "data",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'sciSR' has no attribute {name!r}")
    mod, _, attr = target.partition(":")
    obj = importlib.import_module(f"{__name__}.{mod}")
    value = getattr(obj, attr) if attr else obj
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
