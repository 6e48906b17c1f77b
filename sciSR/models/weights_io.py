"""Reading, checking and writing weight files safely (safetensors, or ``torch.load(weights_only=True)``).

Pickles that need code execution are refused; nothing is downloaded. Loading is strict: every key
and shape must match the model, and a file written by :func:`save_weights` must name the model's
architecture in its metadata (``spec``). :func:`read_model_card` reads the scores a shipped weight
file's Markdown card claims.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
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
            msg = "it is damaged or holds pickled objects other than tensors"
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


def state_dict_mismatch(own: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor]) -> str | None:
    """What keeps ``sd`` from loading strictly into a model whose state dict is ``own``.

    Args:
        own: The model's state dict (the target).
        sd: The weights to load.

    Returns:
        ``None`` when every key is present on both sides with equal shapes, else a short description
        (first shape mismatch, missing and unexpected key counts with an example of each).
    """
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    parts = []
    if bad:
        k = bad[0]
        parts.append(f"'{k}' is {tuple(sd[k].shape)} in the file, {tuple(own[k].shape)} in the model")
    if missing:
        parts.append(f"{len(missing)} missing key(s) e.g. '{missing[0]}'")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) e.g. '{unexpected[0]}'")
    return "; ".join(parts) or None


def file_spec(meta: Mapping[str, str]) -> dict[str, Any] | None:
    """The :class:`~sciSR.models.base.ModelSpec` that :func:`save_weights` stored in ``meta``, or None."""
    raw = meta.get("spec")
    if not raw:
        return None
    try:
        spec = json.loads(raw)
    except ValueError:
        return None
    return spec if isinstance(spec, dict) and isinstance(spec.get("name"), str) else None


def architecture_error(what: str, spec: Mapping[str, Any], target: str) -> ValueError:
    """The one-line error for a sciSR file whose metadata names another architecture than ``target``."""
    name = spec["name"]
    return ValueError(
        f"{what} holds sciSR '{name}' weights (×{spec.get('scale', '?')}, per its metadata), not "
        f"'{target}' weights; load it as '{name}': sciSR.load_checkpoint(path) or "
        f"create_model('{name}', pretrained=path)"
    )


def same_architecture(spec: Mapping[str, Any], model: nn.Module) -> bool:
    """True when the registry entry named in ``spec`` builds the network of ``model``.

    Registry aliases of one class (``edsr`` / ``edsr_baseline``) and subclasses that keep the
    forward pass (``srgan``'s generator is an ``srresnet``) share weights; other classes do not,
    even when their parameter names and shapes coincide. The entry is built on the ``meta``
    device where its builder allows (no memory, no initialisation cost).
    """
    from .registry import create_model

    kwargs = {
        "scale": int(spec.get("scale", getattr(model, "scale", 1))),
        "in_channels": int(spec.get("in_channels", 1)),
        "out_channels": spec.get("out_channels"),
        "pretrained": False,
        **dict(spec.get("extra") or {}),
    }
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                other = create_model(str(spec["name"]), **kwargs)
        except Exception:  # any failure to build means "not this architecture"
            continue
        a, b = type(other), type(model)
        related = issubclass(a, b) or issubclass(b, a)
        return related and getattr(a, "forward_sr", a.forward) is getattr(b, "forward_sr", b.forward)
    return False


def check_architecture(model: nn.Module, meta: Mapping[str, str], what: str) -> None:
    """Refuse a sciSR weight file whose metadata names an architecture other than ``model``'s.

    Files without sciSR metadata (foreign checkpoints, plain state dicts) pass: their keys and
    shapes are checked by :func:`state_dict_mismatch`.

    Raises:
        ValueError: The file's ``spec`` names another architecture (message names both).
    """
    spec = file_spec(meta)
    target = getattr(model, "registry_name", None)
    if spec is None or target is None or spec["name"] == target:
        return
    if not same_architecture(spec, model):
        raise architecture_error(what, spec, str(target))


def load_weights_into(model: nn.Module, path: str | Path) -> dict[str, str]:
    """Load a weight file into ``model`` strictly: every key, every shape and the architecture must match.

    Args:
        model: The target network (its registry name is compared with the file's sciSR metadata).
        path: ``.safetensors`` or plain PyTorch state dict (see :func:`read_state_dict`).

    Returns:
        The file's metadata (e.g. normalization statistics stored at training time).

    Raises:
        ValueError: The metadata names another architecture, or keys/shapes do not match (missing
            and unexpected keys are errors, never skipped).
    """
    path = Path(path)
    sd, meta = read_state_dict(path)
    check_architecture(model, meta, path.name)
    spec = file_spec(meta)
    scale = getattr(model, "scale", None)
    other_scale = spec is not None and scale is not None and int(spec.get("scale", scale)) != int(scale)
    problem = state_dict_mismatch(model.state_dict(), sd)
    if problem is not None:
        name = getattr(model, "registry_name", type(model).__name__)
        made = f" (×{spec['scale']} weights per its metadata, the model is ×{scale})" if other_scale else ""
        raise ValueError(
            f"{path.name}{made} does not fit {name} ({problem}); check scale/channels/hyper-parameters, "
            f"or use sciSR.load_checkpoint(path) to detect the architecture"
        )
    if other_scale:
        warnings.warn(
            f"{path.name} was trained for ×{spec['scale']} and is loaded into a ×{scale} "
            f"{getattr(model, 'registry_name', type(model).__name__)} (same shapes: a pre-upsampling net)",
            UserWarning,
            stacklevel=2,
        )
    model.load_state_dict(sd, strict=True)
    model._weights_metadata = meta  # type: ignore[attr-defined]
    return meta


# ----------------------------------------------------------------------------- model cards
@dataclass(frozen=True)
class CardScore:
    """One score a model card claims for its weights, next to the bicubic baseline.

    Attributes:
        data: What was evaluated (e.g. ``"5 photos, Debian libjxl-testdata"``).
        protocol: How (degradation, shave...).
        metric: Metric and unit as printed (``"PSNR dB"``, ``"RMSE m"``).
        model: The weights' score.
        baseline: Bicubic's score on the same data.
    """

    data: str
    protocol: str
    metric: str
    model: float
    baseline: float

    @property
    def higher_is_better(self) -> bool:
        """PSNR/SSIM grow with quality; error metrics (RMSE, MAE) shrink."""
        return self.metric.split()[0].upper() in ("PSNR", "SSIM")

    @property
    def beats_baseline(self) -> bool:
        """Whether the card claims the weights beat bicubic on this row."""
        return self.model > self.baseline if self.higher_is_better else self.model < self.baseline


@dataclass(frozen=True)
class ModelCard:
    """The scores of a shipped weight file's Markdown card.

    Attributes:
        validation: The training-pool validation figure (images held out of training), if stated.
        heldout: Rows of the held-out table (reserved evaluation data).
    """

    validation: CardScore | None
    heldout: tuple[CardScore, ...]


_VALIDATION = re.compile(
    r"\*\*Validation during training\*\*[^:]*:\s*(?P<data>.+?)\s+—\s+final PSNR (?P<model>[\d.]+) dB "
    r"vs bicubic (?P<base>[\d.]+) dB"
)


def read_model_card(path: str | Path) -> ModelCard:
    """Parse the scores of a model card written by ``recipes/pretrain/model_card.py``.

    Table cells reading ``same`` repeat the row above.

    Raises:
        FileNotFoundError: No such card.
        ValueError: A table row has no numeric scores.
    """
    text = Path(path).read_text(encoding="utf-8")
    m = _VALIDATION.search(text)
    validation = (
        CardScore(m["data"], "training validation", "PSNR dB", float(m["model"]), float(m["base"]))
        if m
        else None
    )
    rows: list[CardScore] = []
    section = text.split("## Held-out scores", 1)[1] if "## Held-out scores" in text else ""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        header = cells[0] in ("data", "") or set(cells[0]) <= set("-:")
        if not line.startswith("|") or len(cells) != 5 or header:
            continue
        prev = rows[-1] if rows else None
        data = prev.data if cells[0] == "same" and prev else cells[0]
        protocol = prev.protocol if cells[1] == "same" and prev else cells[1]
        try:
            rows.append(CardScore(data, protocol, cells[2], float(cells[3]), float(cells[4])))
        except ValueError:
            raise ValueError(f"{Path(path).name}: score row without numbers: {line.strip()}") from None
    return ModelCard(validation, tuple(rows))
