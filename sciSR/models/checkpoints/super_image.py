"""super-image checkpoints (``pytorch_model_{s}x.pt``, Hugging Face model hub layout): EDSR, MDSR.

super-image writes a ``config.json`` (``model_type``) next to the weights. Its EDSR keeps the
official keys but its forward skips the mean shift and takes [0, 1]; its MDSR holds one scale in
``ModuleDict``-style keys. CARN files are handled by :mod:`.carn`.
"""

from __future__ import annotations

import re

import torch

from . import common
from .common import CheckpointFormat, Context, Converted, StateDict
from .official_edsr import convert_edsr_official


def model_type(name: str) -> common.Matcher:
    """common.Matcher accepting files whose ``config.json`` says ``model_type`` is ``name``."""

    def match(sd: StateDict, ctx: Context) -> bool:
        return str(ctx.config.get("model_type", "")).lower() == name

    return match


def convert_edsr_super_image(sd: StateDict, ctx: Context) -> Converted:
    """super-image EDSR: official keys, no mean shift in its forward, ``res_scale`` from config.json."""
    c = convert_edsr_official(sd, ctx)
    c.mean, c.value_range = None, 1.0
    c.kwargs["res_scale"] = float(ctx.config.get("res_scale", 1.0))
    return c


def _mdsr_match(sd: StateDict, ctx: Context) -> bool:
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
    state = common.rename(
        sd,
        [
            (r"(head|tail)\.0\.0\.(\w+)", r"\1.0.\2"),
            (rf"pre_process\.{s}\.([01])\.body\.([02])\.0\.(\w+)", r"pre_process.0.\1.body.\2.\3"),
            (r"body\.(\d+)\.body\.([02])\.0\.(\w+)", r"body.\1.body.\2.\3"),
            (r"body\.(\d+)\.0\.(\w+)", r"body.\1.\2"),
            (rf"upsample\.{s}\.(\d+)\.0\.(\w+)", r"upsample.0.\1.\2"),
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
    scale = common.pixel_shuffle_stages(state, common.indexed_keys(state, "upsample.0"))
    if scale != s:
        raise ValueError(f"{ctx.name}: upsampler of super-image MDSR branch {s} is ×{scale}")
    kwargs = {
        "n_resblocks": common.seq_len(state, "body") - 1,
        "n_feats": head.shape[0],
        "kernel_size": head.shape[-1],
        "branches": (s,),
    }
    return Converted("mdsr", s, head.shape[1], state["tail.0.weight"].shape[0], state, kwargs)


common.register_format(
    CheckpointFormat(
        "super-image-edsr",
        ("edsr", "edsr_baseline"),
        "super-image EdsrModel (config.json model_type EDSR next to the weights)",
        common.all_of(model_type("edsr"), common.has_keys("head.0.weight", "tail.1.weight")),
        convert_edsr_super_image,
        priority=10,  # its keys are the official ones: only the sidecar config tells it apart
    )
)
common.register_format(
    CheckpointFormat(
        "super-image-mdsr",
        ("mdsr",),
        "super-image MdsrModel (one scale, ModuleDict keys)",
        _mdsr_match,
        convert_mdsr_super_image,
    )
)
