"""CARN / CARN-M checkpoints (Ahn et al. 2018): the original release, torchSR and super-image.

All three use the original module names (``entry``, ``b1.b1.body``, ``c1``, ``upsample``,
``exit``) and a mean shift in the 0..1 range (``sub_mean`` or ``sub_mean.shifter``). Multi-scale
files hold ``upsample.up2/up3/up4`` branches; the caller's ``scale`` picks one.
"""

from __future__ import annotations

import math
import re

from . import common
from .common import CheckpointFormat, Context, Converted, StateDict


def convert_carn(sd: StateDict, ctx: Context) -> Converted:
    """CARN / CARN-M → sciSR ``carn`` / ``carn_m`` (same key names)."""
    entry = sd["entry.weight"]
    n_feats, in_ch = entry.shape[0], entry.shape[1]
    mobile = "b1.b1.body.4.weight" in sd
    groups = n_feats // sd["b1.b1.body.0.weight"].shape[1] if mobile else 4
    multi = "upsample.up2.body.0.weight" in sd
    if multi:
        scale = common.pick_scale(ctx, (2, 3, 4), "CARN")
    else:
        scale = 1
        for k in common.indexed_keys(sd, "upsample.up.body", step=3):
            scale *= math.isqrt(sd[k].shape[0] // n_feats)
    prefix = "sub_mean.shifter" if "sub_mean.shifter.bias" in sd else "sub_mean"
    mean, rng = common.mean_shift(sd, prefix)
    state = common.keep_keys(sd, r"entry|exit|b\d+|c\d+|upsample", "CARN")
    kwargs = {
        "n_feats": n_feats,
        "n_blocks": sum(1 for k in sd if re.fullmatch(r"c\d+\.body\.0\.weight", k)),
        "n_units": sum(1 for k in sd if re.fullmatch(r"b1\.c\d+\.body\.0\.weight", k)),
        "mobile": mobile,
        "groups": groups,
        "multi_scale": multi,
    }
    arch = "carn_m" if mobile else "carn"
    return Converted(arch, scale, in_ch, sd["exit.weight"].shape[0], state, kwargs, mean, rng)


common.register_format(
    CheckpointFormat(
        "carn",
        ("carn", "carn_m"),
        "CARN / CARN-M: original release, torchSR, super-image",
        common.has_keys("entry.weight", "b1.b1.body.0.weight", "c1.body.0.weight", "exit.weight"),
        convert_carn,
    )
)
