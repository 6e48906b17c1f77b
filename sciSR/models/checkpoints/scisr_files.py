"""sciSR's own weight files.

Files written by :func:`sciSR.models.weights_io.save_weights` carry the model's spec (registry
name, scale, channels, hyper-parameters) in their safetensors metadata: the ``scisr`` format
rebuilds that model, and loading refuses another architecture. A plain state dict in sciSR's
layout (``torch.save(model.state_dict())``, no metadata) loads when the caller names the
architecture (``scisr-layout``); :func:`identify_layout` recognises such files by their keys and
shapes alone (every key and shape of a default-configuration model) for error messages.
"""

from __future__ import annotations

import json
from functools import lru_cache

import torch

from .common import CheckpointFormat, Context, Converted, StateDict, register_format

Layout = tuple[tuple[str, tuple[int, ...]], ...]

#: Scales tried when identifying a file whose scale the caller did not give.
_SCALES = (2, 3, 4, 8)


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


def first_in_channels(sd: StateDict) -> int:
    """Input channels of the first convolution weight in file order (1 when there is none)."""
    return next((int(v.shape[1]) for v in sd.values() if v.ndim == 4), 1)


@lru_cache(maxsize=512)
def default_layout(name: str, scale: int, in_channels: int, cpu: bool = False) -> Layout | None:
    """Keys and shapes of the registry model ``name`` in its default configuration (None: not buildable).

    Built on the ``meta`` device (no memory, no initialisation); ``cpu=True`` falls back to a real
    build for builders that compute on their weights while constructing.
    """
    from ..registry import create_model

    for device in ("meta", "cpu") if cpu else ("meta",):
        try:
            with torch.device(device):
                model = create_model(name, scale=scale, in_channels=in_channels, pretrained=False)
        except Exception:  # unsupported scale, or a builder that computes on data: not this layout
            continue
        return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return None


def layout_of(sd: StateDict) -> Layout:
    """Keys and shapes of a state dict, in the order :func:`default_layout` uses."""
    return tuple((k, tuple(v.shape)) for k, v in sd.items())


def top_modules(keys: object) -> frozenset[str]:
    """First components of state-dict keys (``{"body"}`` for ``body.0.weight``...)."""
    return frozenset(str(k).split(".", 1)[0] for k in keys)  # type: ignore[attr-defined]


@lru_cache(maxsize=256)
def tiny_top_modules(name: str, scale: int, in_channels: int) -> frozenset[str] | None:
    """:func:`top_modules` of the registry model ``name`` in its small test configuration.

    A cheap pre-filter for :func:`identify_layout`: the depth of a network changes its keys, not
    its top-level module names.
    """
    from ..registry import create_model, get_entry

    try:
        with torch.device("meta"):
            model = create_model(
                name, scale=scale, in_channels=in_channels, pretrained=False, **get_entry(name).tiny
            )
    except Exception:  # unsupported scale, or a builder that computes on data
        return None
    return top_modules(model.state_dict())


def identify_layout(sd: StateDict, scale: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """sciSR architectures whose default configuration has exactly ``sd``'s keys and shapes.

    Only architectures that build on the ``meta`` device are searched, and only those whose
    top-level module names are the file's are built in full (no memory; milliseconds each).

    Args:
        sd: A state dict without sciSR metadata.
        scale: The caller's scale; ``None`` tries ×2, ×3, ×4 and ×8.

    Returns:
        ``[(registry name, scales that match)]``; empty when the file is in no default sciSR layout.
    """
    from ..registry import list_models

    want = sorted(layout_of(sd))
    top = top_modules(sd)
    in_ch = first_in_channels(sd)
    found = []
    for name in list_models(trainable=True):
        scales = tuple(
            s
            for s in ((int(scale),) if scale else _SCALES)
            if tiny_top_modules(name, s, in_ch) == top
            and (lay := default_layout(name, s, in_ch)) is not None
            and sorted(lay) == want
        )
        if scales:
            found.append((name, scales))
    return found


def _layout_match(sd: StateDict, ctx: Context) -> bool:
    """The caller named a sciSR architecture and most of the file's keys are that model's keys."""
    if ctx.arch is None:
        return False
    c = first_in_channels(sd)
    lay = next(
        (lay for s in (ctx.scale, 4, 2) if s and (lay := default_layout(ctx.arch, int(s), c, True))), None
    )
    if lay is None:
        return False
    own = {k for k, _ in lay}
    return 2 * sum(k in own for k in sd) >= len(sd)


def convert_scisr_layout(sd: StateDict, ctx: Context) -> Converted:
    """A plain state dict in sciSR's layout for the architecture the caller named (default settings)."""
    if ctx.scale is None or ctx.arch is None:
        raise ValueError(f"{ctx.name} has no sciSR metadata: pass arch= and scale= to load it")
    c = first_in_channels(sd)
    return Converted(ctx.arch, int(ctx.scale), c, c, dict(sd))


register_format(
    CheckpointFormat(
        "scisr",
        (),
        "sciSR save_weights (spec in the safetensors metadata)",
        lambda sd, ctx: "spec" in ctx.metadata,
        convert_scisr,
        priority=0,
    )
)
register_format(
    CheckpointFormat(
        "scisr-layout",
        (),
        "sciSR state dict without metadata, for the architecture given as arch=",
        _layout_match,
        convert_scisr_layout,
        priority=1000,
    )
)
