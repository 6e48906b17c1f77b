"""torchSR checkpoints (Coulon's ``torchsr``): VDSR.

torchSR's EDSR, RCAN and CARN files use the official layouts (:mod:`.official_edsr`,
:mod:`.official_rcan`, :mod:`.carn`). Its VDSR is a plain ``body.{0, 2, ...}`` stack with a mean
shift in the 0..1 range; the keys say nothing about the scale (a pre-upsampling net), so the
caller passes it.
"""

from __future__ import annotations

import re

from . import common
from .common import CheckpointFormat, Context, Converted, StateDict


def _vdsr_match(sd: StateDict, ctx: Context) -> bool:
    body = [k for k in sd if not common.MEAN_SHIFT.match(k)]
    return (
        "body.0.weight" in sd
        and "body.2.weight" in sd
        and all(re.fullmatch(r"body\.\d+\.(weight|bias)", k) for k in body)
    )


def convert_vdsr(sd: StateDict, ctx: Context) -> Converted:
    """torchSR VDSR: ``body.{0,2,...}`` plain convs, ``sub_mean``/``add_mean`` in the 0..1 range."""
    if ctx.scale is None:
        raise ValueError(f"{ctx.name} is a VDSR checkpoint (pre-upsampling, any scale): pass scale=")
    convs = common.indexed_keys(sd, "body")
    mean, rng = common.mean_shift(sd)
    first = sd["body.0.weight"]
    kwargs = {"depth": len(convs), "n_feats": first.shape[0]}
    state = common.keep_keys(sd, "body", "VDSR")
    return Converted("vdsr", int(ctx.scale), first.shape[1], sd[convs[-1]].shape[0], state, kwargs, mean, rng)


common.register_format(
    CheckpointFormat(
        "torchsr-vdsr",
        ("vdsr",),
        "torchSR VDSR (body.N convolutions, mean shift in 0..1)",
        _vdsr_match,
        convert_vdsr,
        priority=200,  # plain body.N keys: tried after the layouts with distinctive names
    )
)
