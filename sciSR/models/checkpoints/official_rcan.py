"""Official RCAN release (Zhang et al. 2018), built on EDSR-PyTorch; torchSR's RCAN has the same keys.

``head.0``, ``body.G.body.B.body.{0, 2, 3.conv_du.{0, 2}}`` (residual channel attention blocks),
``body.G.body.B`` (group conv), ``body.G`` (trunk conv), ``tail.{0, 1}``; DIV2K mean shift, 0..255.
"""

from __future__ import annotations

from typing import Any

from . import common
from .common import CheckpointFormat, Context, Converted, StateDict


def rcan_kwargs(n_resgroups: int, n_resblocks: int, squeezed: int, frame: common.Frame) -> dict[str, Any]:
    """Builder arguments of sciSR's RCAN; ``squeezed`` is the channel-attention bottleneck width."""
    return {
        "n_resgroups": n_resgroups,
        "n_resblocks": n_resblocks,
        "n_feats": frame.n_feats,
        "reduction": frame.n_feats // squeezed,
        "res_scale": 1.0,
        "kernel_size": frame.kernel_size,
    }


def convert_rcan_official(sd: StateDict, ctx: Context) -> Converted:
    """Official RCAN (and torchSR) → sciSR ``rcan`` (same key names)."""
    frame = common.Frame.read(sd, "head.0.weight", "tail.0", "tail.1.weight")
    mean, rng = common.mean_shift(sd)
    squeezed = sd["body.0.body.0.body.3.conv_du.0.weight"].shape[0]
    n_groups, n_blocks = common.seq_len(sd, "body") - 1, common.seq_len(sd, "body.0.body") - 1
    kwargs = rcan_kwargs(n_groups, n_blocks, squeezed, frame)
    state = common.keep_keys(sd, "head|body|tail", "RCAN")
    return Converted("rcan", frame.scale, frame.in_channels, frame.out_channels, state, kwargs, mean, rng)


common.register_format(
    CheckpointFormat(
        "rcan-official",
        ("rcan",),
        "official RCAN release, torchSR RCAN",
        common.has_keys(
            "head.0.weight",
            "body.0.body.0.body.0.weight",
            "body.0.body.0.body.3.conv_du.0.weight",
            "tail.0.0.weight",
            "tail.1.weight",
        ),
        convert_rcan_official,
    )
)
