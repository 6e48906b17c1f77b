"""Shared pieces of checkpoint import: data types, the format registry, key remapping, safe reading.

Every source module (``official_edsr``, ``basicsr``, ``esrgan``...) describes its layouts with
:class:`CheckpointFormat` entries passed to :func:`register_format`; the helpers below are what
their converters have in common (sequence lengths, pixel-shuffle scales, regex renaming, mean
shifts). Files are read only through :func:`sciSR.models.weights_io.read_state_dict`
(safetensors, or ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..weights_io import flatten_state_dict, read_state_dict

StateDict = dict[str, torch.Tensor]

#: RGB mean of DIV2K used by EDSR, RCAN, CARN, BasicSR (as fractions of the range).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)

#: Key names of mean-shift modules (not network weights).
MEAN_SHIFT = re.compile(r"^(sub_mean|add_mean)\.(shifter\.)?(weight|bias)$|^mean$")


# ----------------------------------------------------------------------------- data types
@dataclass
class Context:
    """What a matcher or converter may use besides the state dict.

    Attributes:
        name: File name (for messages).
        scale: Scale asked by the caller (``None``: the file's own); picks the branch of
            multi-scale checkpoints (MDSR, CARN).
        config: A sidecar ``config.json`` next to the file (super-image writes one), or ``{}``.
        metadata: Safetensors header metadata (sciSR's own files store their spec there).
        arch: sciSR registry name the caller asked for (``arch="edsr"``), or ``None``.
    """

    name: str = "checkpoint"
    scale: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    arch: str | None = None


@dataclass
class Converted:
    """A state dict renamed onto a sciSR architecture, with what is needed to rebuild it.

    Attributes:
        arch: sciSR registry name.
        scale: Upscaling factor.
        in_channels: Input channels of the weights.
        out_channels: Output channels of the weights.
        state_dict: Keys in sciSR's layout.
        kwargs: Hyper-parameters for the builder (inferred; callers may override).
        mean: Per-channel input mean of the source convention (fractions of ``[0, 1]``), or None.
        value_range: Factor the source applies after subtracting the mean (255 for EDSR/RCAN).
    """

    arch: str
    scale: int
    in_channels: int
    out_channels: int
    state_dict: StateDict
    kwargs: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    value_range: float = 1.0


Matcher = Callable[[StateDict, Context], bool]
Converter = Callable[[StateDict, Context], Converted]


@dataclass(frozen=True)
class CheckpointFormat:
    """One known checkpoint layout.

    Attributes:
        name: Short identifier (accepted as ``arch=`` by :func:`~sciSR.load_checkpoint`).
        archs: sciSR registry names the layout converts to (first is the default); ``()`` for
            layouts that fit any architecture (sciSR's own files).
        description: Where such files come from.
        matches: ``matches(state_dict, ctx) -> bool``.
        convert: ``convert(state_dict, ctx) -> Converted``; raises ``ValueError`` on bad input.
        priority: Formats are tried by increasing priority (specific before generic); equal
            priorities keep registration order.
    """

    name: str
    archs: tuple[str, ...]
    description: str
    matches: Matcher
    convert: Converter
    priority: int = 100


# ----------------------------------------------------------------------------- registry
#: Registered layouts, in the order they are tried.
FORMATS: list[CheckpointFormat] = []


def register_format(fmt: CheckpointFormat) -> CheckpointFormat:
    """Add a layout to :data:`FORMATS` (kept sorted by priority).

    Raises:
        ValueError: A format of that name is already registered.
    """
    if any(f.name == fmt.name for f in FORMATS):
        raise ValueError(f"checkpoint format '{fmt.name}' is already registered")
    FORMATS.append(fmt)
    FORMATS.sort(key=lambda f: f.priority)
    return fmt


def known_formats() -> list[str]:
    """Names of the layouts :func:`~sciSR.load_checkpoint` recognises, in detection order."""
    return [f.name for f in FORMATS]


# ----------------------------------------------------------------------------- matchers
def has_keys(*keys: str) -> Matcher:
    """Matcher accepting state dicts that hold every key of ``keys``."""

    def match(sd: StateDict, ctx: Context) -> bool:
        return all(k in sd for k in keys)

    return match


def all_of(*matchers: Matcher) -> Matcher:
    """Matcher accepting what every one of ``matchers`` accepts."""

    def match(sd: StateDict, ctx: Context) -> bool:
        return all(m(sd, ctx) for m in matchers)

    return match


# ----------------------------------------------------------------------------- key helpers
def seq_len(sd: Mapping[str, Any], prefix: str) -> int:
    """Length of the ``nn.Sequential``/``ModuleList`` at ``prefix`` (max index + 1, 0 if absent)."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    idx = [int(m.group(1)) for k in sd if (m := pat.match(k))]
    return max(idx) + 1 if idx else 0


def indexed_keys(
    sd: StateDict, prefix: str, start: int = 0, step: int = 2, suffix: str = "weight"
) -> list[str]:
    """``prefix.{start}.suffix``, ``prefix.{start+step}.suffix``... while present."""
    out = []
    i = start
    while f"{prefix}.{i}.{suffix}" in sd:
        out.append(f"{prefix}.{i}.{suffix}")
        i += step
    return out


def pixel_shuffle_stages(sd: StateDict, keys: list[str]) -> int:
    """Total scale of pixel-shuffle convolutions ``conv(c → c·r²)`` given their weight keys.

    Raises:
        ValueError: A weight's output channels are not ``r²`` times its input channels.
    """
    scale = 1
    for k in keys:
        out_ch, in_ch = sd[k].shape[:2]
        r = math.isqrt(out_ch // in_ch)
        if r * r * in_ch != out_ch:
            raise ValueError(f"'{k}' of shape {tuple(sd[k].shape)} is not a pixel-shuffle convolution")
        scale *= r
    return scale


Replacement = str | Callable[[re.Match[str]], str]


def rename(sd: StateDict, rules: list[tuple[str, Replacement]], what: str) -> StateDict:
    """Rename every key by the first rule ``(regex, replacement)`` whose regex fully matches it.

    A replacement is a :func:`re.sub` template or a function of the match.

    Mean-shift keys (``sub_mean``/``add_mean``/``mean``) are dropped: they become the model's input
    transform.

    Raises:
        ValueError: A key matches no rule (the layout is a variant this converter does not know).
    """
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = {}
    for k, v in sd.items():
        if MEAN_SHIFT.match(k):
            continue
        for pat, repl in compiled:
            if pat.fullmatch(k):
                out[pat.sub(repl, k)] = v
                break
        else:
            raise ValueError(
                f"unexpected key '{k}' for a {what} checkpoint; the file is a variant sciSR does not know"
            )
    return out


def keep_keys(sd: StateDict, modules: str, what: str) -> StateDict:
    """The state dict without its mean shift, refusing keys outside the ``|``-separated ``modules``."""
    return rename(sd, [(rf"({modules})\..*", r"\g<0>")], what)


def mean_shift(sd: StateDict, prefix: str = "sub_mean") -> tuple[tuple[float, ...] | None, float]:
    """Mean and value range of an EDSR-style ``MeanShift`` 1×1 conv (``bias = -range·mean``).

    The range is 255 when the bias exceeds 1 in magnitude (means are fractions of the range),
    else 1. Without the keys there is no input transform: ``(None, 1.0)``. (The official
    releases, torchSR, super-image and the CARN release always save their ``MeanShift`` modules;
    a file without them is in sciSR's own layout.)

    Raises:
        ValueError: The mean shift divides by a standard deviation (not representable).
    """
    w = sd.get(f"{prefix}.weight")
    b = sd.get(f"{prefix}.bias")
    if w is None or b is None:
        return None, 1.0
    eye = torch.eye(w.shape[0], dtype=torch.float32).reshape(w.shape)
    if not torch.allclose(w.float(), eye, atol=1e-6):
        raise ValueError(f"'{prefix}' divides by a per-channel std; only mean shifts (std 1) are supported")
    b = -b.double()
    rng = 255.0 if float(b.abs().max()) > 1.0 else 1.0
    return tuple(float(v) for v in b / rng), rng


def pick_scale(ctx: Context, available: tuple[int, ...], what: str) -> int:
    """The branch of a multi-scale checkpoint: the caller's scale, or the only one.

    Raises:
        ValueError: Several branches and no scale asked, or the asked scale is not among them.
    """
    if ctx.scale is None:
        if len(available) == 1:
            return available[0]
        raise ValueError(f"{ctx.name} is a multi-scale {what} checkpoint (×{available}): pass scale=")
    if int(ctx.scale) not in available:
        raise ValueError(f"{ctx.name} is a {what} checkpoint for scales {list(available)}, not ×{ctx.scale}")
    return int(ctx.scale)


@dataclass(frozen=True)
class Frame:
    """Head/tail facts shared by the EDSR-family layouts (EDSR, RCAN in their official and BasicSR forms).

    Attributes:
        in_channels: Input channels of the first convolution.
        out_channels: Output channels of the last convolution.
        n_feats: Feature width.
        kernel_size: Kernel size of the first convolution.
        scale: Total pixel-shuffle scale of the upsampler.
    """

    in_channels: int
    out_channels: int
    n_feats: int
    kernel_size: int
    scale: int

    @classmethod
    def read(cls, sd: StateDict, first: str, upsampler: str, last: str) -> Frame:
        """Read the frame from the first conv weight key, the upsampler prefix and the last conv key."""
        head = sd[first]
        return cls(
            in_channels=int(head.shape[1]),
            out_channels=int(sd[last].shape[0]),
            n_feats=int(head.shape[0]),
            kernel_size=int(head.shape[-1]),
            scale=pixel_shuffle_stages(sd, indexed_keys(sd, upsampler)),
        )


# ----------------------------------------------------------------------------- reading
def sidecar_config(path: Path) -> dict[str, Any]:
    """The ``config.json`` super-image saves next to ``pytorch_model_{s}x.pt``, if any."""
    cfg = path.with_name("config.json")
    if not cfg.is_file():
        return {}
    try:
        data = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_checkpoint(
    path_or_sd: str | Path | Mapping[str, Any], scale: int | None = None, arch: str | None = None
) -> tuple[StateDict, Context]:
    """A flat state dict and its :class:`Context` from a file (read safely) or an in-memory dict.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Refused pickle, unreadable file, or no tensors.
    """
    if isinstance(path_or_sd, Mapping):
        return flatten_state_dict(dict(path_or_sd)), Context(scale=scale, arch=arch)
    path = Path(path_or_sd)
    sd, meta = read_state_dict(path)
    return sd, Context(name=path.name, scale=scale, config=sidecar_config(path), metadata=meta, arch=arch)
