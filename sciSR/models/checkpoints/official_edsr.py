"""Official EDSR-PyTorch releases (Lim et al. 2017): EDSR, EDSR-baseline and MDSR.

torchSR's EDSR uses the same module names. The files hold ``sub_mean``/``add_mean`` (DIV2K mean,
0..255 range), which become the model's input transform.
"""

from __future__ import annotations

from typing import Any

from . import common
from .common import CheckpointFormat, Context, Converted, StateDict


def edsr_kwargs(n_resblocks: int, frame: common.Frame) -> dict[str, Any]:
    """Builder arguments of sciSR's EDSR for ``n_resblocks`` blocks and the file's ``frame``.

    The residual scaling is not stored in the weights: the published EDSR (256 features) trains
    with 0.1, the baseline (64) with 1 (EDSR paper, §3.2); callers override with ``res_scale=``.
    """
    return {
        "n_resblocks": n_resblocks,
        "n_feats": frame.n_feats,
        "res_scale": 0.1 if frame.n_feats >= 256 else 1.0,
        "kernel_size": frame.kernel_size,
    }


def convert_edsr_official(sd: StateDict, ctx: Context) -> Converted:
    """Official EDSR (and torchSR): ``head.0``, ``body.N.body.{0,2}``, ``tail.{0,1}``."""
    frame = common.Frame.read(sd, "head.0.weight", "tail.0", "tail.1.weight")
    mean, rng = common.mean_shift(sd)
    state = common.keep_keys(sd, "head|body|tail", "EDSR")
    kwargs = edsr_kwargs(common.seq_len(sd, "body") - 1, frame)
    return Converted("edsr", frame.scale, frame.in_channels, frame.out_channels, state, kwargs, mean, rng)


def convert_mdsr_official(sd: StateDict, ctx: Context) -> Converted:
    """Official MDSR: ``pre_process.{i}``, ``upsample.{i}`` per scale, shared body."""
    head = sd["head.0.weight"]
    n_branches = common.seq_len(sd, "upsample")
    branches = tuple(
        common.pixel_shuffle_stages(sd, common.indexed_keys(sd, f"upsample.{i}")) for i in range(n_branches)
    )
    scale = common.pick_scale(ctx, branches, "MDSR")
    mean, rng = common.mean_shift(sd)
    state = common.keep_keys(sd, "head|pre_process|body|upsample|tail", "MDSR")
    kwargs = {
        "n_resblocks": common.seq_len(sd, "body") - 1,
        "n_feats": head.shape[0],
        "kernel_size": head.shape[-1],
        "branches": branches,
    }
    return Converted("mdsr", scale, head.shape[1], sd["tail.0.weight"].shape[0], state, kwargs, mean, rng)


common.register_format(
    CheckpointFormat(
        "edsr-official",
        ("edsr", "edsr_baseline"),
        "official EDSR-PyTorch release, torchSR EDSR",
        common.has_keys(
            "head.0.weight",
            "body.0.body.0.weight",
            "body.0.body.2.weight",
            "tail.0.0.weight",
            "tail.1.weight",
        ),
        convert_edsr_official,
    )
)
common.register_format(
    CheckpointFormat(
        "mdsr-official",
        ("mdsr",),
        "official EDSR-PyTorch MDSR release",
        common.has_keys(
            "head.0.weight", "pre_process.0.0.body.0.weight", "upsample.0.0.weight", "tail.0.weight"
        ),
        convert_mdsr_official,
    )
)
