"""Detect a checkpoint's layout, convert it, build the sciSR model and load it strictly.

Every load checks the file against the model it builds: all keys, all shapes, and, for sciSR's
own files, the architecture named in the metadata. Nothing is skipped (no ``strict=False``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..base import SRModel
from ..weights_io import (
    architecture_error,
    check_architecture,
    file_spec,
    load_weights_into,
    state_dict_mismatch,
)
from .channels import adapt_input_channels
from .common import FORMATS, CheckpointFormat, Context, Converted, StateDict, known_formats, read_checkpoint
from .scisr_files import identify_layout


def resolve_arch(arch: str | None) -> tuple[str | None, CheckpointFormat | None]:
    """Split ``arch=`` into a sciSR registry name or a forced checkpoint format.

    Returns:
        ``(registry name, None)``, ``(None, format)`` or ``(None, None)`` when ``arch`` is None.

    Raises:
        ValueError: Unknown architecture (close names suggested, known ones listed), or a
            parameter-free baseline (no weights).
    """
    if arch is None:
        return None, None
    from ..registry import list_models

    key = str(arch).strip().lower()
    learned = list_models(trainable=True)
    if key.replace("-", "_") in learned:
        return key.replace("-", "_"), None
    forced = next((f for f in FORMATS if f.name == key), None)
    if forced is not None:
        return None, forced
    if key in list_models(trainable=False):
        raise ValueError(f"'{arch}' is a parameter-free baseline: it has no weights to load")
    close = difflib.get_close_matches(key, learned + known_formats(), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise ValueError(
        f"unknown architecture '{arch}'{hint}; arch= takes a sciSR model ({', '.join(learned)}) or a "
        f"checkpoint format ({', '.join(known_formats())}); leave it out to detect the layout"
    )


def detect_format(sd: StateDict, ctx: Context | None = None, arch: str | None = None) -> CheckpointFormat:
    """The first format of :data:`FORMATS` that matches ``sd`` (restricted to ``arch`` if given).

    Args:
        sd: Flat state dict.
        ctx: Reading context (file name, scale, sidecar config, metadata).
        arch: A sciSR registry name (``"edsr"``) or a format name (``"super-image-edsr"``, forced).

    Raises:
        ValueError: Unknown architecture, or no format matches (the message lists a sample of the
            keys and the known formats).
    """
    ctx = ctx or Context()
    wanted, forced = resolve_arch(arch)
    if forced is not None:
        return forced  # e.g. super-image EDSR without its config.json
    if wanted is not None:
        ctx.arch = wanted
    for fmt in FORMATS:
        if wanted is not None and fmt.archs and wanted not in fmt.archs:
            continue  # formats with no arch (sciSR's own files) fit any
        if fmt.matches(sd, ctx):
            return fmt
    keys = list(sd)
    sample = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
    restrict = f" for architecture '{wanted}'" if wanted else ""
    raise explain(
        ValueError(
            f"unknown checkpoint layout in {ctx.name}{restrict}: {len(keys)} keys such as [{sample}]; "
            f"known formats: {', '.join(known_formats())}"
        ),
        sd,
        ctx,
        wanted,
    )


def explain(err: ValueError, sd: StateDict, ctx: Context, target: str | None) -> ValueError:
    """``err``, or a clearer error when ``sd`` is another sciSR architecture's default layout.

    Files with sciSR metadata are explained by their metadata; the search (every learned model in
    its default configuration, built without memory) runs only on this error path.
    """
    if file_spec(ctx.metadata) is not None:
        return err
    found = [(n, s) for n, s in identify_layout(sd, ctx.scale) if n != target]
    if not found:
        return err
    name, scales = found[0]
    scale = scales[0] if len(scales) == 1 else "S"
    others = "".join(f" (or '{n}')" for n, _ in found[1:])
    against = f", not '{target}' weights" if target else ""
    return ValueError(
        f"{ctx.name} holds '{name}'{others} weights{against}: every key and shape matches sciSR's "
        f"'{name}' (×{'/'.join(map(str, scales))}, default settings); load it with "
        f"sciSR.load_checkpoint(path, arch='{name}', scale={scale})"
    )


def _convert(sd: StateDict, ctx: Context, arch: str | None) -> tuple[CheckpointFormat, Converted]:
    fmt = detect_format(sd, ctx, arch)
    try:
        conv = fmt.convert(sd, ctx)
    except KeyError as err:
        raise ValueError(f"{ctx.name} looks like a '{fmt.name}' checkpoint but lacks key {err}") from None
    except ValueError as err:
        raise explain(err, sd, ctx, ctx.arch) from None
    if ctx.scale is not None and int(ctx.scale) != conv.scale:
        raise ValueError(
            f"{ctx.name} is a ×{conv.scale} '{fmt.name}' checkpoint (from its upsampler shapes), "
            f"not ×{ctx.scale}"
        )
    return fmt, conv


def convert_checkpoint(
    path_or_sd: str | Path | Mapping[str, Any], arch: str | None = None, scale: int | None = None
) -> tuple[CheckpointFormat, Converted]:
    """Detect the layout of a checkpoint and convert it (without building a model).

    Returns:
        ``(format, converted)``.

    Raises:
        ValueError: Unknown architecture or layout, keys that do not fit the layout, scale mismatch.
    """
    sd, ctx = read_checkpoint(path_or_sd, scale)
    return _convert(sd, ctx, arch)


def _fit(model: SRModel, conv: Converted, fmt: CheckpointFormat, sd: StateDict, ctx: Context) -> None:
    """Load ``conv`` into ``model`` strictly, or raise one line naming what differs."""
    check_architecture(model, ctx.metadata, ctx.name)
    problem = state_dict_mismatch(model.state_dict(), conv.state_dict)
    if problem is not None:
        detected = ", ".join(f"{k}={v}" for k, v in conv.kwargs.items())
        raise explain(
            ValueError(
                f"{ctx.name} ('{fmt.name}': ×{conv.scale}, {conv.in_channels}→{conv.out_channels} "
                f"channels{', ' if detected else ''}{detected}) does not fit {model.registry_name} "
                f"({problem}); build the model with those settings or use sciSR.load_checkpoint(path)"
            ),
            sd,
            ctx,
            model.registry_name,
        )
    model.load_state_dict(conv.state_dict, strict=True)
    if ctx.metadata:
        model._weights_metadata = dict(ctx.metadata)  # type: ignore[attr-defined]


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
        arch: A sciSR architecture (``"edsr"``; the file must hold that architecture's weights) or
            a format name (``"super-image-edsr"``, see :func:`known_formats`); by default the layout
            is detected from the keys.
        scale: Expected scale; required to pick the branch of multi-scale checkpoints and for
            files whose keys do not tell it (VDSR, sciSR state dicts without metadata).
        in_channels: Adapt the weights to this many input (and output) channels with
            :func:`adapt_input_channels` (default: the file's own).
        **kw: Overrides of inferred hyper-parameters that weights cannot tell (``res_scale``), and
            ``mean`` / ``value_range`` for the input transform.

    Returns:
        The model in eval mode. ``model.checkpoint_format`` names the detected layout.

    Raises:
        ValueError: Unknown architecture or layout, a file of another architecture (sciSR metadata,
            or keys and shapes that do not fit), scale not matching the file or unsupported by the
            architecture, refused pickle.
    """
    sd, ctx = read_checkpoint(path, scale)
    fmt, conv = _convert(sd, ctx, arch)
    mean = kw.pop("mean", conv.mean)
    value_range = kw.pop("value_range", conv.value_range)
    name = ctx.arch if ctx.arch and (ctx.arch in fmt.archs or not fmt.archs) else conv.arch
    from ..registry import create_model

    try:
        model = create_model(
            name,
            scale=conv.scale,
            in_channels=conv.in_channels,
            out_channels=conv.out_channels,
            pretrained=False,
            **{**conv.kwargs, **kw},
        )
    except (TypeError, ValueError):
        spec = file_spec(ctx.metadata)
        if spec is not None and spec["name"] != name:  # another architecture's settings
            raise architecture_error(ctx.name, spec, name) from None
        raise
    _fit(model, conv, fmt, sd, ctx)
    model.set_input_transform(mean, value_range)
    model.checkpoint_format = fmt.name  # type: ignore[attr-defined]
    if in_channels is not None and int(in_channels) != conv.in_channels:
        adapt_input_channels(model, int(in_channels))
    return model.eval()


def load_pretrained_into(model: SRModel, path: str | Path) -> SRModel:
    """Load a weight file into an already built ``model`` (the ``create_model(pretrained=PATH)`` route).

    A file in the model's own layout loads directly; otherwise a known foreign layout for the
    model's architecture is converted (and its input transform set). The file must fit the model's
    architecture, scale, channels and hyper-parameters; nothing is adapted or skipped silently.

    Raises:
        ValueError: The file fits neither directly nor through a known layout for this architecture
            (another architecture, scale, channel or hyper-parameter mismatch; unknown layout;
            refused pickle).
    """
    try:
        load_weights_into(model, path)
        return model
    except ValueError as err:
        direct_error = err
    target = model.registry_name
    sd, ctx = read_checkpoint(path, model.scale, target)
    fmt = next((f for f in FORMATS if target in f.archs and f.matches(sd, ctx)), None)
    if fmt is None or file_spec(ctx.metadata) is not None:
        raise explain(direct_error, sd, ctx, target) from None
    try:
        conv = fmt.convert(sd, ctx)
        if conv.scale != model.scale:
            raise ValueError(
                f"{ctx.name} is a ×{conv.scale} '{fmt.name}' checkpoint; the model is ×{model.scale}"
            )
        if conv.in_channels != model.in_channels or conv.out_channels != model.out_channels:
            raise ValueError(
                f"channel mismatch: {ctx.name} has {conv.in_channels}→{conv.out_channels} channels, the "
                f"model {model.in_channels}→{model.out_channels}; build it with "
                f"in_channels={conv.in_channels}, or adapt the weights: "
                f"sciSR.load_checkpoint(path, in_channels={model.in_channels})"
            )
    except ValueError as err:
        raise explain(err, sd, ctx, target) from None
    _fit(model, conv, fmt, sd, ctx)
    model.set_input_transform(conv.mean, conv.value_range)
    model.checkpoint_format = fmt.name  # type: ignore[attr-defined]
    return model
