"""Super-resolution architectures behind one contract (:class:`SRModel`) and one registry."""

from .base import ModelSpec, SRModel, measure_receptive_field, upsample_bicubic
from .registry import ModelEntry, create_model, get_entry, list_models, register_model

__all__ = [
    "ModelEntry",
    "ModelSpec",
    "SRModel",
    "create_model",
    "get_entry",
    "list_models",
    "measure_receptive_field",
    "register_model",
    "upsample_bicubic",
]
