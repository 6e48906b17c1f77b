"""BasicSR checkpoints (``params`` / ``params_ema``): EDSR, RCAN and MSRResNet.

BasicSR's EDSR and RCAN share a frame (``conv_first``, ``upsample.N``, ``conv_last``) and keep the
DIV2K mean as a plain attribute (not saved) with ``img_range = 255``; their computation is the
official one, so they map onto sciSR's ``edsr`` / ``rcan`` keys. MSRResNet (the modified SRResNet
of ESRGAN) has no mean shift and takes data in [0, 1]; its keys are sciSR's ``msrresnet`` names.
BasicSR's ESRGAN files (RRDBNet) are handled by :mod:`.esrgan`.
"""

from __future__ import annotations

import re

from . import common
from .common import CheckpointFormat, Context, Converted, StateDict
from .official_edsr import edsr_kwargs
from .official_rcan import rcan_kwargs

#: Renaming of the shared frame onto the official EDSR-family names.
FRAME_RULES = [
    (r"conv_first\.(\w+)", r"head.0.\1"),
    (r"upsample\.(\d+)\.(\w+)", r"tail.0.\1.\2"),
    (r"conv_last\.(\w+)", r"tail.1.\1"),
]


def basicsr_frame(sd: StateDict) -> common.Frame:
    """Head/tail facts of a BasicSR EDSR/RCAN state dict."""
    return common.Frame.read(sd, "conv_first.weight", "upsample", "conv_last.weight")


def basicsr_mean(sd: StateDict, in_ch: int) -> tuple[float, ...] | None:
    """The input mean: a saved ``mean`` buffer, else BasicSR's DIV2K default for RGB, else none."""
    if "mean" in sd:
        return tuple(float(v) for v in sd["mean"].flatten())
    return common.DIV2K_RGB_MEAN if in_ch == 3 else None


def convert_edsr_basicsr(sd: StateDict, ctx: Context) -> Converted:
    """BasicSR EDSR: ``conv_first``, ``body.N.conv{1,2}``, ``conv_after_body``, ``upsample``..."""
    frame = basicsr_frame(sd)
    n = common.seq_len(sd, "body")
    body_rules = [
        (r"body\.(\d+)\.conv1\.(\w+)", r"body.\1.body.0.\2"),
        (r"body\.(\d+)\.conv2\.(\w+)", r"body.\1.body.2.\2"),
        (r"conv_after_body\.(\w+)", rf"body.{n}.\1"),
    ]
    state = common.rename(sd, FRAME_RULES + body_rules, "BasicSR EDSR")
    mean = basicsr_mean(sd, frame.in_channels)
    return Converted(
        "edsr", frame.scale, frame.in_channels, frame.out_channels, state, edsr_kwargs(n, frame), mean, 255.0
    )


def _attention(m: re.Match[str]) -> str:
    # BasicSR's channel attention is Sequential(pool, conv, relu, conv, sigmoid): convs 1 and 3;
    # sciSR's conv_du is Sequential(conv, relu, conv, sigmoid): convs 0 and 2
    return f"body.{m[1]}.body.{m[2]}.body.3.conv_du.{int(m[3]) - 1}.{m[4]}"


def convert_rcan_basicsr(sd: StateDict, ctx: Context) -> Converted:
    """BasicSR RCAN: ``body.G.residual_group.B.rcab.{0,2,3.attention.{1,3}}``, ``body.G.conv``..."""
    frame = basicsr_frame(sd)
    n_groups = common.seq_len(sd, "body")
    n_blocks = common.seq_len(sd, "body.0.residual_group")
    g, b = r"body\.(\d+)", r"residual_group\.(\d+)\.rcab"
    body_rules = [
        (rf"{g}\.{b}\.([02])\.(\w+)", r"body.\1.body.\2.body.\3.\4"),
        (rf"{g}\.{b}\.3\.attention\.([13])\.(\w+)", _attention),
        (rf"{g}\.conv\.(\w+)", rf"body.\1.body.{n_blocks}.\2"),
        (r"conv_after_body\.(\w+)", rf"body.{n_groups}.\1"),
    ]
    state = common.rename(sd, FRAME_RULES + body_rules, "BasicSR RCAN")
    squeezed = sd["body.0.residual_group.0.rcab.3.attention.1.weight"].shape[0]
    kwargs = rcan_kwargs(n_groups, n_blocks, squeezed, frame)
    mean = basicsr_mean(sd, frame.in_channels)
    return Converted("rcan", frame.scale, frame.in_channels, frame.out_channels, state, kwargs, mean, 255.0)


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
    ``conv_last``; no mean shift, data in [0, 1]."""
    first = sd["conv_first.weight"]
    ups = [k for k in ("upconv1.weight", "upconv2.weight") if k in sd]
    stages = tuple(common.pixel_shuffle_stages(sd, [k]) for k in ups)
    scale = _MSRRESNET_STAGES.get(stages)
    if scale is None:
        raise ValueError(
            f"{ctx.name}: MSRResNet with pixel-shuffle stages {list(stages)} is not a BasicSR variant "
            f"(×2: [2], ×3: [3], ×4: [2, 2])"
        )
    modules = r"conv_first|conv_hr|conv_last|upconv[12]|body\.\d+\.conv[12]"
    state = common.keep_keys(sd, modules, "BasicSR MSRResNet")
    kwargs = {"n_feats": first.shape[0], "n_blocks": common.seq_len(sd, "body")}
    return Converted("msrresnet", scale, first.shape[1], sd["conv_last.weight"].shape[0], state, kwargs)


common.register_format(
    CheckpointFormat(
        "basicsr-edsr",
        ("edsr", "edsr_baseline"),
        "BasicSR EDSR (params / params_ema)",
        common.has_keys(
            "conv_first.weight",
            "body.0.conv1.weight",
            "conv_after_body.weight",
            "upsample.0.weight",
            "conv_last.weight",
        ),
        convert_edsr_basicsr,
    )
)
common.register_format(
    CheckpointFormat(
        "basicsr-rcan",
        ("rcan",),
        "BasicSR RCAN (params / params_ema)",
        common.has_keys(
            "conv_first.weight",
            "body.0.residual_group.0.rcab.0.weight",
            "conv_after_body.weight",
            "conv_last.weight",
        ),
        convert_rcan_basicsr,
    )
)
common.register_format(
    CheckpointFormat(
        "basicsr-msrresnet",
        ("msrresnet",),
        "BasicSR MSRResNet, the modified SRResNet of ESRGAN (params / params_ema)",
        _msrresnet_match,
        convert_msrresnet_basicsr,
    )
)
