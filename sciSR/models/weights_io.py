"""Reading and writing weight files safely (safetensors, or ``torch.load(weights_only=True)``).

Pickles that need code execution are refused; nothing is downloaded.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Keys under which training frameworks nest the state dict (BasicSR, Lightning, generic).
NESTED_KEYS = ("params_ema", "params", "state_dict", "model", "generator", "net_g", "weights")


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a flat ``{name: tensor}`` state dict and its string metadata from a weight file.

    Args:
        path: ``.safetensors`` file, or a PyTorch file (``.pth``/``.pt``/``.ckpt``/``.bin``) holding
            tensors only (loaded with ``weights_only=True``).

    Returns:
        ``(state_dict, metadata)``; metadata is the safetensors header metadata (empty otherwise).

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is a pickle that needs code execution, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        sd: dict[str, torch.Tensor] = {}
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                for k in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    sd[k] = f.get_tensor(k)
        except Exception as err:  # safetensors raises its own error types on bad headers
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"cannot read {path.name} as safetensors ({msg}); the file is truncated or not a "
                f"safetensors file: download or save it again"
            ) from None
        return sd, meta
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError and friends
        blocked = re.search(r"GLOBAL ([\w.]+)", str(err))
        if blocked:  # torch's own text suggests weights_only=False, which sciSR never does
            msg = f"loading it would import and run {blocked.group(1)}"
        elif isinstance(err, pickle.UnpicklingError):
            msg = "it holds pickled objects other than tensors"
        else:
            msg = f"unreadable: {type(err).__name__}, truncated or not a PyTorch file"
        raise ValueError(
            f"refusing to load {path.name}: it is not a plain tensor checkpoint ({msg}); sciSR never "
            f"unpickles code. Re-save it as safetensors or as a plain state dict "
            f"(torch.save(model.state_dict(), ...))"
        ) from None
    return flatten_state_dict(obj, path.name), {}


def flatten_state_dict(obj: Any, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap nested checkpoints (``params_ema``, ``state_dict``, ...) and ``module.`` prefixes."""
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            for k in NESTED_KEYS:
                if isinstance(obj.get(k), dict):
                    obj = obj[k]
                    break
            else:
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{what} holds no tensors; expected a state dict")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model``'s state dict as safetensors with JSON-encoded metadata (atomic write)."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    spec = getattr(model, "spec", None)
    if spec is not None:
        meta.setdefault("spec", json.dumps(spec.as_dict(), default=str))
    tmp = path.with_name(f".{path.name}.tmp")
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(sd, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_weights_into(model: nn.Module, path: str | Path, strict: bool = True) -> dict[str, str]:
    """Load a weight file into ``model``; keys or shapes that do not match give a clear error.

    Returns:
        The file's metadata (e.g. normalization statistics stored at training time).
    """
    sd, meta = read_state_dict(path)
    own = model.state_dict()
    if strict:
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        shape_bad = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
        if missing or unexpected or shape_bad:
            name = getattr(model, "registry_name", type(model).__name__)
            parts = []
            if shape_bad:
                k = shape_bad[0]
                parts.append(
                    f"shape of '{k}' is {tuple(sd[k].shape)} in the file, {tuple(own[k].shape)} in the model"
                )
            if missing:
                parts.append(f"{len(missing)} missing key(s) e.g. '{missing[0]}'")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected key(s) e.g. '{unexpected[0]}'")
            raise ValueError(
                f"{Path(path).name} does not fit {name} ({'; '.join(parts)}); check scale/channels/"
                f"hyper-parameters, or use sciSR.load_checkpoint(path) to detect the architecture"
            )
    model.load_state_dict(sd, strict=strict)
    model._weights_metadata = meta  # type: ignore[attr-defined]
    return meta
