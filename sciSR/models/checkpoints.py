"""Import checkpoints of other super-resolution code bases into sciSR models.

:func:`load_checkpoint` reads a weight file safely (safetensors, or ``torch.load(weights_only=True)``
through :mod:`sciSR.models.weights_io`), recognises its layout from the state-dict keys, infers
the hyper-parameters from key counts and tensor shapes (the approach of spandrel), renames the
keys onto the matching sciSR architecture and rebuilds the model. RGB input conventions (EDSR's
DIV2K mean shift and 0..255 range, CARN's mean shift in 0..1) are reproduced with
:meth:`SRModel.set_input_transform`, so the imported model takes data in ``[0, 1]`` like the
source implementation's user-facing API and gives the same output.

Layouts are described by the :data:`FORMATS` registry: an ordered list of
:class:`CheckpointFormat` ``(name, archs, matcher, converter)``; the first matcher that accepts a
state dict wins. Add a layout by appending (or inserting) an entry.

:func:`adapt_input_channels` turns RGB weights into 1- or N-channel weights for fine-tuning on
scientific data (DESIGN §3).
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
from torch import nn

from .base import SRModel
from .weights_io import flatten_state_dict, load_weights_into, read_state_dict

StateDict = dict[str, torch.Tensor]

#: RGB mean of DIV2K used by EDSR, RCAN, CARN, BasicSR (as fractions of the range).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)

#: Key fragments of mean-shift modules (not network weights).
_MEAN_SHIFT = re.compile(r"^(sub_mean|add_mean)\.(shifter\.)?(weight|bias)$|^mean$")


# ----------------------------------------------------------------------------- data types
@dataclass
class Context:
    """What a converter may use besides the state dict.

    Attributes:
        name: File name (for messages).
        scale: Scale asked by the caller (``None``: the file's own); picks the branch of
            multi-scale checkpoints (MDSR, CARN).
        config: A sidecar ``config.json`` next to the file (super-image writes one), or ``{}``.
        metadata: Safetensors header metadata (sciSR's own files store their spec there).
    """

    name: str = "checkpoint"
    scale: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


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
        name: Short identifier (accepted as ``arch=`` by :func:`load_checkpoint`).
        archs: sciSR registry names the layout converts to (first is the default).
        description: Where such files come from.
        matches: ``matches(state_dict, ctx) -> bool``.
        convert: ``convert(state_dict, ctx) -> Converted``; raises ``ValueError`` on bad input.
    """

    name: str
    archs: tuple[str, ...]
    description: str
    matches: Matcher
    convert: Converter


# ----------------------------------------------------------------------------- helpers
def has_keys(*keys: str) -> Matcher:
    """Matcher accepting state dicts that hold every key of ``keys``."""

    def match(sd: StateDict, ctx: Context) -> bool:
        return all(k in sd for k in keys)

    return match


def seq_len(sd: Mapping[str, Any], prefix: str) -> int:
    """Length of the ``nn.Sequential``/``ModuleList`` at ``prefix`` (max index + 1, 0 if absent)."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    idx = [int(m.group(1)) for k in sd if (m := pat.match(k))]
    return max(idx) + 1 if idx else 0


def pixel_shuffle_stages(sd: StateDict, keys: list[str]) -> int:
    """Total scale of pixel-shuffle convolutions ``conv(c → c·r²)`` given their weight keys."""
    scale = 1
    for k in keys:
        out_ch, in_ch = sd[k].shape[:2]
        r = math.isqrt(out_ch // in_ch)
        if r * r * in_ch != out_ch:
            raise ValueError(f"'{k}' of shape {tuple(sd[k].shape)} is not a pixel-shuffle convolution")
        scale *= r
    return scale


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


def rename(sd: StateDict, rules: list[tuple[str, str]], what: str) -> StateDict:
    """Rename every key by the first rule ``(regex, replacement)`` whose regex fully matches it.

    Mean-shift keys (``sub_mean``/``add_mean``/``mean``) are dropped: they become the model's input
    transform.

    Raises:
        ValueError: A key matches no rule (the layout is a variant this converter does not know).
    """
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = {}
    for k, v in sd.items():
        if _MEAN_SHIFT.match(k):
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


def _sidecar_config(path: Path) -> dict[str, Any]:
    """The ``config.json`` super-image saves next to ``pytorch_model_{s}x.pt``, if any."""
    cfg = path.with_name("config.json")
    if not cfg.is_file():
        return {}
    try:
        data = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _super_image(model_type: str) -> Matcher:
    def match(sd: StateDict, ctx: Context) -> bool:
        return str(ctx.config.get("model_type", "")).lower() == model_type

    return match


def _both(*matchers: Matcher) -> Matcher:
    def match(sd: StateDict, ctx: Context) -> bool:
        return all(m(sd, ctx) for m in matchers)

    return match


# ----------------------------------------------------------------------------- EDSR
def _edsr_res_scale(n_feats: int) -> float:
    # not stored in the weights: the published EDSR (256 features) trains with 0.1, the baseline with 1
    return 0.1 if n_feats >= 256 else 1.0


def convert_edsr_official(sd: StateDict, ctx: Context) -> Converted:
    """Official EDSR-PyTorch (and torchSR) EDSR: ``head.0``, ``body.N.body.{0,2}``, ``tail.{0,1}``."""
    head = sd["head.0.weight"]
    n_feats, in_ch, k = head.shape[0], head.shape[1], head.shape[-1]
    n_resblocks = seq_len(sd, "body") - 1
    scale = pixel_shuffle_stages(sd, indexed_keys(sd, "tail.0"))
    out_ch = sd["tail.1.weight"].shape[0]
    mean, rng = mean_shift(sd)
    state = rename(sd, [(r"(head|body|tail)\..*", r"\g<0>")], "EDSR")
    kwargs = {
        "n_resblocks": n_resblocks,
        "n_feats": n_feats,
        "res_scale": _edsr_res_scale(n_feats),
        "kernel_size": k,
    }
    return Converted("edsr", scale, in_ch, out_ch, state, kwargs, mean, rng)


def convert_edsr_super_image(sd: StateDict, ctx: Context) -> Converted:
    """super-image EDSR: official keys, but its forward skips the mean shift and takes [0, 1]."""
    c = convert_edsr_official(sd, ctx)
    c.mean, c.value_range = None, 1.0
    c.kwargs["res_scale"] = float(ctx.config.get("res_scale", 1.0))
    return c


def convert_edsr_basicsr(sd: StateDict, ctx: Context) -> Converted:
    """BasicSR EDSR: ``conv_first``, ``body.N.conv{1,2}``, ``conv_after_body``, ``upsample``..."""
    head = sd["conv_first.weight"]
    n_feats, in_ch = head.shape[0], head.shape[1]
    n = seq_len(sd, "body")
    scale = pixel_shuffle_stages(sd, indexed_keys(sd, "upsample"))
    out_ch = sd["conv_last.weight"].shape[0]
    state = rename(
        sd,
        [
            (r"conv_first\.(\w+)", r"head.0.\1"),
            (r"body\.(\d+)\.conv1\.(\w+)", r"body.\1.body.0.\2"),
            (r"body\.(\d+)\.conv2\.(\w+)", r"body.\1.body.2.\2"),
            (r"conv_after_body\.(\w+)", rf"body.{n}.\1"),
            (r"upsample\.(\d+)\.(\w+)", r"tail.0.\1.\2"),
            (r"conv_last\.(\w+)", r"tail.1.\1"),
        ],
        "BasicSR EDSR",
    )
    mean = _basicsr_mean(sd, in_ch)
    kwargs = {
        "n_resblocks": n,
        "n_feats": n_feats,
        "res_scale": _edsr_res_scale(n_feats),
        "kernel_size": head.shape[-1],
    }
    return Converted("edsr", scale, in_ch, out_ch, state, kwargs, mean, 255.0)


def _basicsr_mean(sd: StateDict, in_ch: int) -> tuple[float, ...] | None:
    # BasicSR keeps ``self.mean`` as a plain attribute (not saved) set to the DIV2K mean, img_range 255
    if "mean" in sd:
        return tuple(float(v) for v in sd["mean"].flatten())
    return DIV2K_RGB_MEAN if in_ch == 3 else None


def _pick_scale(ctx: Context, available: tuple[int, ...], what: str) -> int:
    """The branch of a multi-scale checkpoint: the caller's scale, or the only one."""
    if ctx.scale is None:
        if len(available) == 1:
            return available[0]
        raise ValueError(f"{ctx.name} is a multi-scale {what} checkpoint (×{available}): pass scale=")
    if int(ctx.scale) not in available:
        raise ValueError(f"{ctx.name} is a {what} checkpoint for scales {list(available)}, not ×{ctx.scale}")
    return int(ctx.scale)


def convert_mdsr_official(sd: StateDict, ctx: Context) -> Converted:
    """Official EDSR-PyTorch MDSR: ``pre_process.{i}``, ``upsample.{i}`` per scale, shared body."""
    head = sd["head.0.weight"]
    n_feats, in_ch = head.shape[0], head.shape[1]
    branches = tuple(
        pixel_shuffle_stages(sd, indexed_keys(sd, f"upsample.{i}")) for i in range(seq_len(sd, "upsample"))
    )
    scale = _pick_scale(ctx, branches, "MDSR")
    mean, rng = mean_shift(sd)
    state = rename(sd, [(r"(head|pre_process|body|upsample|tail)\..*", r"\g<0>")], "MDSR")
    kwargs = {
        "n_resblocks": seq_len(sd, "body") - 1,
        "n_feats": n_feats,
        "kernel_size": head.shape[-1],
        "branches": branches,
    }
    return Converted("mdsr", scale, in_ch, sd["tail.0.weight"].shape[0], state, kwargs, mean, rng)


def _super_image_mdsr_match(sd: StateDict, ctx: Context) -> bool:
    return (
        "head.0.0.weight" in sd
        and "tail.0.0.weight" in sd
        and any(re.fullmatch(r"pre_process\.\d\.0\.body\.0\.0\.weight", k) for k in sd)
    )


def convert_mdsr_super_image(sd: StateDict, ctx: Context) -> Converted:
    """super-image MdsrModel: one scale (``pre_process.{s}``, ``upsample.{s}``), 3×3 pre-processing
    blocks, residual scaling 0.1 everywhere, no mean shift in its forward, input in [0, 1].

    sciSR's MDSR has 5×5 pre-processing blocks and no residual scaling; both differences are exact
    reparametrisations: the 3×3 kernels are zero-padded to 5×5 (same output), and the 0.1 is folded
    into the second convolution of every residual block (its output is scaled linearly).
    """
    (s,) = {int(m.group(1)) for k in sd if (m := re.match(r"pre_process\.(\d)\.", k))}
    state = rename(
        sd,
        [
            (r"head\.0\.0\.(\w+)", r"head.0.\1"),
            (rf"pre_process\.{s}\.([01])\.body\.([02])\.0\.(\w+)", r"pre_process.0.\1.body.\2.\3"),
            (r"body\.(\d+)\.body\.([02])\.0\.(\w+)", r"body.\1.body.\2.\3"),
            (r"body\.(\d+)\.0\.(\w+)", r"body.\1.\2"),
            (rf"upsample\.{s}\.(\d+)\.0\.(\w+)", r"upsample.0.\1.\2"),
            (r"tail\.0\.0\.(\w+)", r"tail.0.\1"),
        ],
        "super-image MDSR",
    )
    res_scale = 0.1  # hard-coded in MdsrModel
    for k in list(state):
        if re.fullmatch(r"(pre_process\.0\.[01]|body\.\d+)\.body\.2\.(weight|bias)", k):
            state[k] = state[k] * res_scale
        if k.startswith("pre_process.") and k.endswith("weight") and state[k].shape[-1] == 3:
            state[k] = torch.nn.functional.pad(state[k], (1, 1, 1, 1))
    head = state["head.0.weight"]
    scale = pixel_shuffle_stages(state, indexed_keys(state, "upsample.0"))
    if scale != s:
        raise ValueError(f"{ctx.name}: upsampler of super-image MDSR branch {s} is ×{scale}")
    kwargs = {
        "n_resblocks": seq_len(state, "body") - 1,
        "n_feats": head.shape[0],
        "kernel_size": head.shape[-1],
        "branches": (s,),
    }
    return Converted("mdsr", s, head.shape[1], state["tail.0.weight"].shape[0], state, kwargs)


# ----------------------------------------------------------------------------- RCAN
def convert_rcan_official(sd: StateDict, ctx: Context) -> Converted:
    """Official RCAN (and torchSR): ``head.0``, ``body.G.body.B.body.{0,2,3.conv_du.*}``, ``tail``."""
    head = sd["head.0.weight"]
    n_feats, in_ch = head.shape[0], head.shape[1]
    n_resgroups = seq_len(sd, "body") - 1
    n_resblocks = seq_len(sd, "body.0.body") - 1
    reduction = n_feats // sd["body.0.body.0.body.3.conv_du.0.weight"].shape[0]
    scale = pixel_shuffle_stages(sd, indexed_keys(sd, "tail.0"))
    out_ch = sd["tail.1.weight"].shape[0]
    mean, rng = mean_shift(sd)
    state = rename(sd, [(r"(head|body|tail)\..*", r"\g<0>")], "RCAN")
    kwargs = {
        "n_resgroups": n_resgroups,
        "n_resblocks": n_resblocks,
        "n_feats": n_feats,
        "reduction": reduction,
        "res_scale": 1.0,
        "kernel_size": head.shape[-1],
    }
    return Converted("rcan", scale, in_ch, out_ch, state, kwargs, mean, rng)


def convert_rcan_basicsr(sd: StateDict, ctx: Context) -> Converted:
    """BasicSR RCAN: ``body.G.residual_group.B.rcab.{0,2,3.attention.{1,3}}``, ``body.G.conv``..."""
    head = sd["conv_first.weight"]
    n_feats, in_ch = head.shape[0], head.shape[1]
    n_groups = seq_len(sd, "body")
    n_blocks = seq_len(sd, "body.0.residual_group")
    reduction = n_feats // sd["body.0.residual_group.0.rcab.3.attention.1.weight"].shape[0]
    scale = pixel_shuffle_stages(sd, indexed_keys(sd, "upsample"))
    out_ch = sd["conv_last.weight"].shape[0]
    g, b = r"body\.(\d+)", r"residual_group\.(\d+)\.rcab"
    state = rename(
        sd,
        [
            (r"conv_first\.(\w+)", r"head.0.\1"),
            (rf"{g}\.{b}\.([02])\.(\w+)", r"body.\1.body.\2.body.\3.\4"),
            (rf"{g}\.{b}\.3\.attention\.1\.(\w+)", r"body.\1.body.\2.body.3.conv_du.0.\3"),
            (rf"{g}\.{b}\.3\.attention\.3\.(\w+)", r"body.\1.body.\2.body.3.conv_du.2.\3"),
            (rf"{g}\.conv\.(\w+)", rf"body.\1.body.{n_blocks}.\2"),
            (r"conv_after_body\.(\w+)", rf"body.{n_groups}.\1"),
            (r"upsample\.(\d+)\.(\w+)", r"tail.0.\1.\2"),
            (r"conv_last\.(\w+)", r"tail.1.\1"),
        ],
        "BasicSR RCAN",
    )
    kwargs = {
        "n_resgroups": n_groups,
        "n_resblocks": n_blocks,
        "n_feats": n_feats,
        "reduction": reduction,
        "res_scale": 1.0,
        "kernel_size": head.shape[-1],
    }
    return Converted("rcan", scale, in_ch, out_ch, state, kwargs, _basicsr_mean(sd, in_ch), 255.0)


# ----------------------------------------------------------------------------- CARN
def convert_carn(sd: StateDict, ctx: Context) -> Converted:
    """CARN / CARN-M of the original release, torchSR and super-image (mean shift in 0..1)."""
    entry = sd["entry.weight"]
    n_feats, in_ch = entry.shape[0], entry.shape[1]
    mobile = "b1.b1.body.4.weight" in sd
    groups = n_feats // sd["b1.b1.body.0.weight"].shape[1] if mobile else 4
    multi = "upsample.up2.body.0.weight" in sd
    if multi:
        scale = _pick_scale(ctx, (2, 3, 4), "CARN")
    else:
        scale = 1
        for k in indexed_keys(sd, "upsample.up.body", step=3):
            scale *= math.isqrt(sd[k].shape[0] // n_feats)
    prefix = "sub_mean.shifter" if "sub_mean.shifter.bias" in sd else "sub_mean"
    mean, rng = mean_shift(sd, prefix)
    state = rename(sd, [(r"(entry|exit|b\d+|c\d+|upsample)\..*", r"\g<0>")], "CARN")
    kwargs = {
        "n_feats": n_feats,
        "n_blocks": sum(1 for k in sd if re.fullmatch(r"c\d+\.body\.0\.weight", k)),
        "n_units": sum(1 for k in sd if re.fullmatch(r"b1\.c\d+\.body\.0\.weight", k)),
        "mobile": mobile,
        "groups": groups,
        "multi_scale": multi,
    }
    return Converted(
        "carn_m" if mobile else "carn", scale, in_ch, sd["exit.weight"].shape[0], state, kwargs, mean, rng
    )


# ----------------------------------------------------------------------------- ESRGAN / RRDBNet
#: (upsampling stages, input pixel-unshuffle) → scale, for the variants sciSR's RRDBNet implements
_RRDB_VARIANTS = {(2, 1): 4, (2, 2): 2, (2, 4): 1, (3, 1): 8}


def _rrdb_converted(state: StateDict, ctx: Context, what: str) -> Converted:
    first, last = state["conv_first.weight"], state["conv_last.weight"]
    n_feats, in_raw, out_ch = first.shape[0], first.shape[1], last.shape[0]
    n_up = sum(1 for k in state if re.fullmatch(r"conv_up\d+\.weight", k))
    unshuffle = next((u for u in (4, 2) if in_raw == out_ch * u * u), 1)
    scale = _RRDB_VARIANTS.get((n_up, unshuffle))
    if scale is None:
        raise ValueError(
            f"{ctx.name}: {what} with {n_up} upsampling stage(s) and input unshuffle {unshuffle} is not "
            f"a variant of sciSR's RRDBNet (×4 and ×8 plain, ×2 and ×1 with pixel-unshuffled input "
            f"as in Real-ESRGAN)"
        )
    kwargs = {
        "n_feats": n_feats,
        "n_blocks": seq_len(state, "body"),
        "gc": state["body.0.rdb1.conv1.weight"].shape[0],
        "res_scale": 0.2,
    }
    return Converted("esrgan", scale, in_raw // (unshuffle * unshuffle), out_ch, state, kwargs)


_RRDB_NEW_RULES = [
    (r"conv_first\.(\w+)", r"conv_first.\1"),
    (r"(?:body|RRDB_trunk)\.(\d+)\.(?:rdb|RDB)([123])\.conv([1-5])\.(\w+)", r"body.\1.rdb\2.conv\3.\4"),
    (r"(?:conv_body|trunk_conv)\.(\w+)", r"conv_body.\1"),
    (r"(?:conv_up|upconv)(\d)\.(\w+)", r"conv_up\1.\2"),
    (r"(?:conv_hr|HRconv)\.(\w+)", r"conv_hr.\1"),
    (r"conv_last\.(\w+)", r"conv_last.\1"),
]


def convert_rrdb_new(sd: StateDict, ctx: Context) -> Converted:
    """BasicSR/Real-ESRGAN RRDBNet (``body.N.rdb1.conv1``...) and ESRGAN's ``RRDB_trunk`` naming."""
    return _rrdb_converted(rename(sd, _RRDB_NEW_RULES, "RRDBNet"), ctx, "RRDBNet")


def convert_rrdb_old(sd: StateDict, ctx: Context) -> Converted:
    """Original ESRGAN release: ``model.0``, ``model.1.sub.N.RDB1.conv1.0``, ``model.3``... ``model.10``."""
    n_blocks = seq_len(sd, "model.1.sub") - 1
    idx = sorted({int(k.split(".")[1]) for k in sd if re.fullmatch(r"model\.\d+\.(weight|bias)", k)})
    tail = [i for i in idx if i > 1]  # conv_up stages at 3, 6, 9..., then conv_hr, conv_last
    if len(tail) < 2:
        raise ValueError(f"{ctx.name}: old-layout ESRGAN without its final convolutions")
    rules = [
        (r"model\.0\.(\w+)", r"conv_first.\1"),
        (r"model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(\w+)", r"body.\1.rdb\2.conv\3.\4"),
        (rf"model\.1\.sub\.{n_blocks}\.(\w+)", r"conv_body.\1"),
        *[(rf"model\.{i}\.(\w+)", rf"conv_up{j}.\1") for j, i in enumerate(tail[:-2], start=1)],
        (rf"model\.{tail[-2]}\.(\w+)", r"conv_hr.\1"),
        (rf"model\.{tail[-1]}\.(\w+)", r"conv_last.\1"),
    ]
    if tail[:-2] != [3 * j for j in range(1, len(tail) - 1)]:
        raise ValueError(
            f"{ctx.name}: old-layout ESRGAN with upsampling layers at {tail[:-2]} (pixel-shuffle "
            f"variant?) is not supported"
        )
    return _rrdb_converted(rename(sd, rules, "old-layout ESRGAN"), ctx, "old-layout ESRGAN")


# ----------------------------------------------------------------------------- MSRResNet
def _msrresnet_match(sd: StateDict, ctx: Context) -> bool:
    # EDSR (conv_after_body), RRDBNet (rdb/conv_up) and sciSR's srresnet (bn1, no conv_hr) differ
    return (
        all(k in sd for k in ("conv_first.weight", "body.0.conv1.weight", "upconv1.weight", "conv_hr.weight"))
        and "conv_last.weight" in sd
        and "conv_after_body.weight" not in sd
        and "body.0.bn1.weight" not in sd
    )


#: upsampling stages of BasicSR MSRResNet → scale
_MSRRESNET_STAGES = {(2, 2): 4, (3,): 3, (2,): 2}


def convert_msrresnet_basicsr(sd: StateDict, ctx: Context) -> Converted:
    """BasicSR MSRResNet: ``conv_first``, ``body.N.conv{1,2}``, ``upconv1`` (+ ``upconv2``), ``conv_hr``,
    ``conv_last``; no mean shift, data in [0, 1]. The keys are sciSR's ``msrresnet`` names."""
    first = sd["conv_first.weight"]
    ups = [k for k in ("upconv1.weight", "upconv2.weight") if k in sd]
    stages = tuple(pixel_shuffle_stages(sd, [k]) for k in ups)
    scale = _MSRRESNET_STAGES.get(stages)
    if scale is None:
        raise ValueError(
            f"{ctx.name}: MSRResNet with pixel-shuffle stages {list(stages)} is not a BasicSR variant "
            f"(×2: [2], ×3: [3], ×4: [2, 2])"
        )
    state = rename(
        sd,
        [
            (r"(conv_first|conv_hr|conv_last|upconv[12])\.(weight|bias)", r"\g<0>"),
            (r"body\.\d+\.conv[12]\.(weight|bias)", r"\g<0>"),
        ],
        "BasicSR MSRResNet",
    )
    kwargs = {"n_feats": first.shape[0], "n_blocks": seq_len(sd, "body")}
    return Converted("msrresnet", scale, first.shape[1], sd["conv_last.weight"].shape[0], state, kwargs)


# ----------------------------------------------------------------------------- VDSR
def _vdsr_match(sd: StateDict, ctx: Context) -> bool:
    body = [k for k in sd if not _MEAN_SHIFT.match(k)]
    return (
        "body.0.weight" in sd
        and "body.2.weight" in sd
        and all(re.fullmatch(r"body\.\d+\.(weight|bias)", k) for k in body)
    )


def convert_vdsr(sd: StateDict, ctx: Context) -> Converted:
    """torchSR VDSR: ``body.{0,2,...}`` plain convs, ``sub_mean``/``add_mean`` in the 0..1 range."""
    if ctx.scale is None:
        raise ValueError(f"{ctx.name} is a VDSR checkpoint (pre-upsampling, any scale): pass scale=")
    convs = indexed_keys(sd, "body")
    state = rename(sd, [(r"body\.\d+\.\w+", r"\g<0>")], "VDSR")
    mean, rng = mean_shift(sd)
    kwargs = {"depth": len(convs), "n_feats": sd["body.0.weight"].shape[0]}
    return Converted(
        "vdsr", int(ctx.scale), sd["body.0.weight"].shape[1], sd[convs[-1]].shape[0], state, kwargs, mean, rng
    )


# ----------------------------------------------------------------------------- sciSR's own files
def _scisr_match(sd: StateDict, ctx: Context) -> bool:
    return "spec" in ctx.metadata


def convert_scisr(sd: StateDict, ctx: Context) -> Converted:
    """A file written by :func:`sciSR.models.weights_io.save_weights` (spec in the metadata)."""
    spec = json.loads(ctx.metadata["spec"])
    kwargs = dict(spec.get("extra") or {})
    return Converted(
        spec["name"],
        int(spec["scale"]),
        int(spec["in_channels"]),
        int(spec["out_channels"]),
        dict(sd),
        kwargs,
    )


# ----------------------------------------------------------------------------- registry
#: Known layouts, tried in order (specific before generic).
FORMATS: list[CheckpointFormat] = [
    CheckpointFormat(
        "scisr", (), "sciSR save_weights (spec in the safetensors metadata)", _scisr_match, convert_scisr
    ),
    CheckpointFormat(
        "super-image-edsr",
        ("edsr", "edsr_baseline"),
        "super-image EdsrModel (config.json model_type EDSR next to the weights)",
        _both(_super_image("edsr"), has_keys("head.0.weight", "tail.1.weight")),
        convert_edsr_super_image,
    ),
    CheckpointFormat(
        "edsr-official",
        ("edsr", "edsr_baseline"),
        "official EDSR-PyTorch release, torchSR EDSR",
        has_keys(
            "head.0.weight",
            "body.0.body.0.weight",
            "body.0.body.2.weight",
            "tail.0.0.weight",
            "tail.1.weight",
        ),
        convert_edsr_official,
    ),
    CheckpointFormat(
        "rcan-official",
        ("rcan",),
        "official RCAN release, torchSR RCAN",
        has_keys(
            "head.0.weight",
            "body.0.body.0.body.0.weight",
            "body.0.body.0.body.3.conv_du.0.weight",
            "tail.0.0.weight",
            "tail.1.weight",
        ),
        convert_rcan_official,
    ),
    CheckpointFormat(
        "basicsr-edsr",
        ("edsr", "edsr_baseline"),
        "BasicSR EDSR (params / params_ema)",
        has_keys(
            "conv_first.weight",
            "body.0.conv1.weight",
            "conv_after_body.weight",
            "upsample.0.weight",
            "conv_last.weight",
        ),
        convert_edsr_basicsr,
    ),
    CheckpointFormat(
        "basicsr-rcan",
        ("rcan",),
        "BasicSR RCAN (params / params_ema)",
        has_keys(
            "conv_first.weight",
            "body.0.residual_group.0.rcab.0.weight",
            "conv_after_body.weight",
            "conv_last.weight",
        ),
        convert_rcan_basicsr,
    ),
    CheckpointFormat(
        "basicsr-msrresnet",
        ("msrresnet",),
        "BasicSR MSRResNet, the modified SRResNet of ESRGAN (params / params_ema)",
        _msrresnet_match,
        convert_msrresnet_basicsr,
    ),
    CheckpointFormat(
        "mdsr-official",
        ("mdsr",),
        "official EDSR-PyTorch MDSR release",
        has_keys("head.0.weight", "pre_process.0.0.body.0.weight", "upsample.0.0.weight", "tail.0.weight"),
        convert_mdsr_official,
    ),
    CheckpointFormat(
        "super-image-mdsr",
        ("mdsr",),
        "super-image MdsrModel (one scale, ModuleDict keys)",
        _super_image_mdsr_match,
        convert_mdsr_super_image,
    ),
    CheckpointFormat(
        "carn",
        ("carn", "carn_m"),
        "CARN / CARN-M: original release, torchSR, super-image",
        has_keys("entry.weight", "b1.b1.body.0.weight", "c1.body.0.weight", "exit.weight"),
        convert_carn,
    ),
    CheckpointFormat(
        "esrgan-old",
        ("esrgan",),
        "original ESRGAN release (model.0, model.1.sub.N.RDB1...)",
        has_keys("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"),
        convert_rrdb_old,
    ),
    CheckpointFormat(
        "rrdbnet",
        ("esrgan",),
        "BasicSR / Real-ESRGAN RRDBNet, ESRGAN RRDB_trunk naming",
        lambda sd, ctx: (
            "conv_first.weight" in sd
            and "conv_last.weight" in sd
            and ("body.0.rdb1.conv1.weight" in sd or "RRDB_trunk.0.RDB1.conv1.weight" in sd)
        ),
        convert_rrdb_new,
    ),
    CheckpointFormat(
        "torchsr-vdsr",
        ("vdsr",),
        "torchSR VDSR (body.N convolutions, mean shift in 0..1)",
        _vdsr_match,
        convert_vdsr,
    ),
]


def known_formats() -> list[str]:
    """Names of the layouts :func:`load_checkpoint` recognises."""
    return [f.name for f in FORMATS]


def detect_format(sd: StateDict, ctx: Context | None = None, arch: str | None = None) -> CheckpointFormat:
    """The first format of :data:`FORMATS` that matches ``sd`` (restricted to ``arch`` if given).

    ``arch`` is a sciSR registry name (``"edsr"``) or a format name (``"super-image-edsr"``).

    Raises:
        ValueError: No format matches; the message lists a sample of the keys and the known formats.
    """
    ctx = ctx or Context()
    wanted = arch.lower() if arch else None
    for fmt in FORMATS:
        if wanted is not None and wanted == fmt.name:
            return fmt  # forced layout (e.g. super-image EDSR without its config.json)
        if wanted is not None and fmt.archs and wanted not in fmt.archs:
            continue  # formats with no arch (sciSR's own files) fit any
        if fmt.matches(sd, ctx):
            return fmt
    keys = list(sd)
    sample = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
    restrict = f" for arch '{arch}'" if arch else ""
    raise ValueError(
        f"unknown checkpoint layout in {ctx.name}{restrict}: {len(keys)} keys such as [{sample}]; "
        f"known formats: {', '.join(known_formats())}"
    )


def _read(path_or_sd: str | Path | Mapping[str, Any], scale: int | None) -> tuple[StateDict, Context]:
    if isinstance(path_or_sd, Mapping):
        return flatten_state_dict(dict(path_or_sd)), Context(scale=scale)
    path = Path(path_or_sd)
    sd, meta = read_state_dict(path)
    return sd, Context(name=path.name, scale=scale, config=_sidecar_config(path), metadata=meta)


def convert_checkpoint(
    path_or_sd: str | Path | Mapping[str, Any], arch: str | None = None, scale: int | None = None
) -> tuple[CheckpointFormat, Converted]:
    """Detect the layout of a checkpoint and convert it (without building a model).

    Returns:
        ``(format, converted)``.
    """
    sd, ctx = _read(path_or_sd, scale)
    fmt = detect_format(sd, ctx, arch)
    try:
        conv = fmt.convert(sd, ctx)
    except KeyError as err:
        raise ValueError(f"{ctx.name} looks like a '{fmt.name}' checkpoint but lacks key {err}") from None
    if scale is not None and int(scale) != conv.scale:
        raise ValueError(
            f"{ctx.name} is a ×{conv.scale} '{fmt.name}' checkpoint (from its upsampler shapes), not ×{scale}"
        )
    return fmt, conv


def load_checkpoint(
    path: str | Path | Mapping[str, Any],
    arch: str | None = None,
    scale: int | None = None,
    in_channels: int | None = None,
    **kw: Any,
) -> SRModel:
    """Build a sciSR model from a checkpoint of another code base (or of sciSR).

    Args:
        path: ``.safetensors``/``.pth``/``.pt`` file (or a state dict). Nested ``params_ema``/
            ``params``/``state_dict`` and ``module.`` prefixes are unwrapped. Pickles that need code
            execution are refused.
        arch: Force a sciSR architecture (``"edsr"``) or a format name (``"super-image-edsr"``,
            see :func:`known_formats`); by default the layout is detected from the keys.
        scale: Expected scale; required to pick the branch of multi-scale checkpoints.
        in_channels: Adapt the weights to this many input (and output) channels with
            :func:`adapt_input_channels` (default: the file's own).
        **kw: Overrides of inferred hyper-parameters that weights cannot tell (``res_scale``), and
            ``mean`` / ``value_range`` for the input transform.

    Returns:
        The model in eval mode. ``model.checkpoint_format`` names the detected layout.

    Raises:
        ValueError: Unknown layout, scale not matching the file or unsupported by the architecture,
            refused pickle, keys that do not fit.
    """
    fmt, conv = convert_checkpoint(path, arch, scale)
    mean = kw.pop("mean", conv.mean)
    value_range = kw.pop("value_range", conv.value_range)
    name = arch.lower() if arch and arch.lower() in fmt.archs else conv.arch
    from .registry import create_model

    model = create_model(
        name,
        scale=conv.scale,
        in_channels=conv.in_channels,
        out_channels=conv.out_channels,
        pretrained=False,
        **{**conv.kwargs, **kw},
    )
    _load_converted(model, conv, fmt, "state dict" if isinstance(path, Mapping) else Path(path).name)
    model.set_input_transform(mean, value_range)
    model.checkpoint_format = fmt.name  # type: ignore[attr-defined]
    if in_channels is not None and int(in_channels) != conv.in_channels:
        adapt_input_channels(model, int(in_channels))
    return model.eval()


def _load_converted(model: SRModel, conv: Converted, fmt: CheckpointFormat, what: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(conv.state_dict))
    unexpected = sorted(set(conv.state_dict) - set(own))
    bad = sorted(k for k in set(own) & set(conv.state_dict) if own[k].shape != conv.state_dict[k].shape)
    if missing or unexpected or bad:
        parts = []
        if bad:
            parts.append(
                f"'{bad[0]}' is {tuple(conv.state_dict[bad[0]].shape)} in the file, "
                f"{tuple(own[bad[0]].shape)} in the model"
            )
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. '{missing[0]}'")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) e.g. '{unexpected[0]}'")
        detected = ", ".join(f"{k}={v}" for k, v in conv.kwargs.items())
        raise ValueError(
            f"{Path(what).name} ('{fmt.name}': ×{conv.scale}, "
            f"{conv.in_channels}→{conv.out_channels} channels, {detected}) does not fit "
            f"{model.registry_name} ({'; '.join(parts)}); build the model with those settings "
            f"or use sciSR.load_checkpoint(path)"
        )
    model.load_state_dict(conv.state_dict, strict=True)


def load_pretrained_into(model: SRModel, path: str | Path) -> SRModel:
    """Load a weight file into an already built ``model`` (the ``create_model(pretrained=PATH)`` route).

    A file in the model's own layout loads directly; otherwise a known foreign layout for the
    model's architecture is converted (and its input transform set). The file must fit the model's
    scale, channels and hyper-parameters; nothing is adapted silently.

    Raises:
        ValueError: The file fits neither directly nor through a known layout for this architecture
            (scale, channel or hyper-parameter mismatch; unknown layout; refused pickle).
    """
    try:
        load_weights_into(model, path)
        return model
    except ValueError as direct_error:
        sd, ctx = _read(path, model.scale)
        candidates = [f for f in FORMATS if model.registry_name in f.archs and f.matches(sd, ctx)]
        if not candidates:
            raise direct_error from None
    fmt = candidates[0]
    conv = fmt.convert(sd, ctx)
    if conv.scale != model.scale:
        raise ValueError(
            f"{ctx.name} is a ×{conv.scale} '{fmt.name}' checkpoint; the model is ×{model.scale}"
        )
    if conv.in_channels != model.in_channels or conv.out_channels != model.out_channels:
        raise ValueError(
            f"channel mismatch: {ctx.name} has {conv.in_channels}→{conv.out_channels} channels, the model "
            f"{model.in_channels}→{model.out_channels}; build it with in_channels={conv.in_channels}, "
            f"or adapt the weights: sciSR.load_checkpoint(path, in_channels={model.in_channels})"
        )
    _load_converted(model, conv, fmt, ctx.name)
    model.set_input_transform(conv.mean, conv.value_range)
    model.checkpoint_format = fmt.name  # type: ignore[attr-defined]
    return model


# ----------------------------------------------------------------------------- channel adaptation
def _collapse_in(w: torch.Tensor, n: int) -> torch.Tensor:
    """``(O, C, kh, kw) -> (O, n, kh, kw)``: each new channel gets ``sum_c W_c / n``."""
    return (w.sum(dim=1, keepdim=True) / n).repeat(1, n, 1, 1)


def _collapse_out(w: torch.Tensor, n: int) -> torch.Tensor:
    """``(C, ...) -> (n, ...)``: every new output row is the average of the C rows."""
    return w.mean(dim=0, keepdim=True).repeat(n, *([1] * (w.ndim - 1)))


def _fold_mean(w: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
    """Bias correction ``sum_{c,k} W[:, c, k] * (s_c - mean(s))`` for a collapsed input shift.

    ``shifted`` holds the per-channel shift the network sees (``-value_range * mean``); with it the
    adapted first conv answers an equal-channel input exactly like the original away from the
    zero-padded border.
    """
    d = (shifted - shifted.mean()).to(w.dtype)
    return (w.sum(dim=(2, 3)) * d.reshape(1, -1)).sum(dim=1)


def _conv_call_order(model: SRModel) -> list[nn.Conv2d]:
    """Convolutions in the order a small forward pass calls them."""
    order: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o: order.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, model.in_channels, 8, 8, dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return order


def adapt_input_channels(
    model_or_state_dict: SRModel | Mapping[str, torch.Tensor], n: int, adapt_output: bool = True
) -> Any:
    """Adapt RGB (or any C-channel) weights to ``n`` channels for fine-tuning on scientific data.

    The first convolution gets, for each of the ``n`` new channels, ``sum_c W_c / n``: a 1-channel
    image ``g`` then gives exactly the response the RGB net gave to ``(g, g, g)``, and for ``n`` > 1
    an image with ``n`` equal channels does too (the average replicated × C/n). The last
    convolution's rows (and bias) are averaged over the C outputs and replicated ``n`` times, so
    every new output channel is the average of the RGB outputs. A mean shift collapses to its
    average; the difference is folded into the first bias, which keeps the equal-channel property
    exact except at the one-pixel zero-padded border.

    Args:
        model_or_state_dict: An :class:`SRModel` (modified in place and returned), or a state dict in
            any layout (a new dict is returned): its first and last 4-D weights in file order are taken
            as the input and output convolutions, ``sub_mean``/``add_mean`` shifts and a ``mean``
            buffer are collapsed.
        n: New channel count (≥ 1). Equal to the current count: nothing changes.
        adapt_output: Also adapt the output convolution (needed by nets with a global skip).

    Returns:
        The adapted model or state dict.

    Raises:
        ValueError: ``n`` < 1, grouped input convolution, or no convolution found on the data side.
    """
    if int(n) < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    n = int(n)
    if isinstance(model_or_state_dict, nn.Module):
        return _adapt_model(model_or_state_dict, n, adapt_output)
    return _adapt_state_dict(dict(model_or_state_dict), n, adapt_output)


def _adapt_model(model: SRModel, n: int, adapt_output: bool) -> SRModel:
    c_in, c_out = model.in_channels, model.out_channels
    if n == c_in and (not adapt_output or n == c_out):
        return model
    convs = _conv_call_order(model)
    first = next((m for m in convs if m.in_channels == c_in), None)
    last = next((m for m in reversed(convs) if m.out_channels == c_out), None)
    if first is None or (adapt_output and last is None):
        raise ValueError(f"cannot find the data-side convolutions of {model.registry_name} to adapt")
    if first.groups != 1:
        raise ValueError("cannot adapt a grouped input convolution")
    mean = model.input_mean
    if mean is not None and mean.shape[1] > 1 and (model.out_channels if not adapt_output else n) != n:
        raise ValueError("an RGB mean shift needs the output adapted too (adapt_output=True)")
    with torch.no_grad():
        w = first.weight.detach()
        if mean is not None and mean.shape[1] == c_in and c_in > 1:
            fold = _fold_mean(w, -model.value_range * mean.flatten().to(w))
            if first.bias is None:
                first.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype, device=w.device))
            first.bias.add_(fold)
        first.weight = nn.Parameter(_collapse_in(w, n))
        first.in_channels = n
        if adapt_output and n != c_out:
            last.weight = nn.Parameter(_collapse_out(last.weight.detach(), n))
            if last.bias is not None:
                last.bias = nn.Parameter(_collapse_out(last.bias.detach(), n))
            last.out_channels = n
            model.out_channels = n
    model.in_channels = n
    if mean is not None:
        model.set_input_transform(mean.flatten().mean().repeat(n), model.value_range)
    model.__dict__.pop("_rf_cache", None)
    return model


def _adapt_state_dict(sd: StateDict, n: int, adapt_output: bool) -> StateDict:
    convs = [k for k, v in sd.items() if k.endswith("weight") and v.ndim == 4 and not _MEAN_SHIFT.match(k)]
    if not convs:
        raise ValueError("no convolution weights in the state dict")
    first = convs[0]
    c = sd[first].shape[1]
    if n == c:
        return sd
    last = next((k for k in reversed(convs) if sd[k].shape[0] == c), None)
    out = dict(sd)
    w = sd[first]
    shift = sd.get("sub_mean.bias", sd.get("sub_mean.shifter.bias"))
    bias_key = first[: -len("weight")] + "bias"
    if shift is not None and bias_key in sd:
        out[bias_key] = sd[bias_key] + _fold_mean(w, shift.to(w))
    out[first] = _collapse_in(w, n)
    if adapt_output and last is not None:
        out[last] = _collapse_out(sd[last], n)
        lb = last[: -len("weight")] + "bias"
        if lb in sd:
            out[lb] = _collapse_out(sd[lb], n)
    for k, v in sd.items():
        if not _MEAN_SHIFT.match(k):
            continue
        if k.endswith("weight"):
            eye = torch.eye(c, dtype=v.dtype).reshape(v.shape)
            if not torch.allclose(v, eye, atol=1e-6):
                raise ValueError(f"'{k}' is not a plain mean shift (std 1); cannot collapse it")
            out[k] = torch.eye(n, dtype=v.dtype).reshape(n, n, 1, 1)
        else:
            out[k] = v.flatten().mean().repeat(n).reshape((1, n, 1, 1) if v.ndim == 4 else (n,))
    return out
