"""ESRGAN / Real-ESRGAN RRDBNet checkpoints (Wang et al. 2018, 2021).

Two layouts: the original ESRGAN release (``model.0``, ``model.1.sub.N.RDB1.conv1.0``,
``model.3``...) and the BasicSR / Real-ESRGAN one (``conv_first``, ``body.N.rdb1.conv1``,
``conv_body``, ``conv_up1``...), which also covers ESRGAN's later ``RRDB_trunk`` naming.
Real-ESRGAN's ×2 and ×1 models pixel-unshuffle their input (4× or 16× the input channels); sciSR's
RRDBNet implements those variants. No mean shift: data in [0, 1].
"""

from __future__ import annotations

import re

from . import common
from .common import CheckpointFormat, Context, Converted, StateDict

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
        "n_blocks": common.seq_len(state, "body"),
        "gc": state["body.0.rdb1.conv1.weight"].shape[0],
        "res_scale": 0.2,
    }
    return Converted("esrgan", scale, in_raw // (unshuffle * unshuffle), out_ch, state, kwargs)


_RRDB_NEW_RULES = [
    (r"(?:conv_first|conv_last)\.\w+", r"\g<0>"),
    (r"(?:body|RRDB_trunk)\.(\d+)\.(?:rdb|RDB)([123])\.conv([1-5])\.(\w+)", r"body.\1.rdb\2.conv\3.\4"),
    (r"(?:conv_body|trunk_conv)\.(\w+)", r"conv_body.\1"),
    (r"(?:conv_up|upconv)(\d)\.(\w+)", r"conv_up\1.\2"),
    (r"(?:conv_hr|HRconv)\.(\w+)", r"conv_hr.\1"),
]


def convert_rrdb_new(sd: StateDict, ctx: Context) -> Converted:
    """BasicSR/Real-ESRGAN RRDBNet (``body.N.rdb1.conv1``...) and ESRGAN's ``RRDB_trunk`` naming."""
    return _rrdb_converted(common.rename(sd, _RRDB_NEW_RULES, "RRDBNet"), ctx, "RRDBNet")


def convert_rrdb_old(sd: StateDict, ctx: Context) -> Converted:
    """Original ESRGAN release: ``model.0``, ``model.1.sub.N.RDB1.conv1.0``, ``model.3``... ``model.10``."""
    n_blocks = common.seq_len(sd, "model.1.sub") - 1
    idx = sorted({int(k.split(".")[1]) for k in sd if re.fullmatch(r"model\.\d+\.(weight|bias)", k)})
    tail = [i for i in idx if i > 1]  # conv_up stages at 3, 6, 9..., then conv_hr, conv_last
    if len(tail) < 2:
        raise ValueError(f"{ctx.name}: old-layout ESRGAN without its final convolutions")
    if tail[:-2] != [3 * j for j in range(1, len(tail) - 1)]:
        raise ValueError(
            f"{ctx.name}: old-layout ESRGAN with upsampling layers at {tail[:-2]} (pixel-shuffle "
            f"variant?) is not supported"
        )
    convs = {0: "conv_first", tail[-2]: "conv_hr", tail[-1]: "conv_last"}
    convs.update({i: f"conv_up{j}" for j, i in enumerate(tail[:-2], start=1)})
    rules = [
        (r"model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(\w+)", r"body.\1.rdb\2.conv\3.\4"),
        (rf"model\.1\.sub\.{n_blocks}\.(\w+)", r"conv_body.\1"),
        *[(rf"model\.{i}\.(\w+)", rf"{name}.\1") for i, name in convs.items()],
    ]
    return _rrdb_converted(common.rename(sd, rules, "old-layout ESRGAN"), ctx, "old-layout ESRGAN")


def _rrdb_new_match(sd: StateDict, ctx: Context) -> bool:
    return (
        "conv_first.weight" in sd
        and "conv_last.weight" in sd
        and ("body.0.rdb1.conv1.weight" in sd or "RRDB_trunk.0.RDB1.conv1.weight" in sd)
    )


common.register_format(
    CheckpointFormat(
        "esrgan-old",
        ("esrgan",),
        "original ESRGAN release (model.0, model.1.sub.N.RDB1...)",
        common.has_keys("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"),
        convert_rrdb_old,
    )
)
common.register_format(
    CheckpointFormat(
        "rrdbnet",
        ("esrgan",),
        "BasicSR / Real-ESRGAN RRDBNet, ESRGAN RRDB_trunk naming",
        _rrdb_new_match,
        convert_rrdb_new,
    )
)
