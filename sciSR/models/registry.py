"""Model registry: names → builders, default weights, entry-point plug-ins.

A new architecture is one module in :mod:`sciSR.models` that decorates its builder::

    @register_model("srcnn", paper="Dong et al. 2014", tiny={"channels": (8, 4)})
    def srcnn(scale=4, in_channels=1, out_channels=None, **kw) -> SRModel: ...

Third-party packages register through the ``sciSR.models`` entry-point group (the entry point
names a module or a builder; importing it runs its ``@register_model`` decorators).
"""

from __future__ import annotations

import difflib
import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import SRModel

Builder = Callable[..., SRModel]

#: Modules of the built-in zoo, imported on first registry access (keeps ``import sciSR`` light).
BUILTIN_MODULES: tuple[str, ...] = (
    "interp",
    "srcnn",
    "vdsr",
    "fsrcnn",
    "espcn",
    "dat",
    "liif",
    "edsr",
    "carn",
    "btsrn",
    "drcn",
    "lapsrn",
    "cmsc",
    "idn",
    "selnet",
    "rcan",
    "srresnet",
    "enhancenet",
    "esrgan",
    "unet",
    "sparse_coding",
    "swinir",
)

WEIGHTS_DIR = Path(__file__).with_name("weights")


@dataclass
class ModelEntry:
    """One registered architecture.

    Attributes:
        name: Registry name.
        builder: ``builder(scale=..., in_channels=..., out_channels=..., **kwargs) -> SRModel``.
        paper: Short citation.
        tiny: Keyword arguments for a small configuration (fast tests).
        trainable: False for parameter-free baselines (no weights needed).
        description: One line for ``scisr models``.
    """

    name: str
    builder: Builder
    paper: str = ""
    tiny: dict[str, Any] = field(default_factory=dict)
    trainable: bool = True
    description: str = ""


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False
_LOAD_LOCK = threading.RLock()


def register_model(
    name: str,
    *,
    paper: str = "",
    tiny: dict[str, Any] | None = None,
    trainable: bool = True,
    description: str = "",
) -> Callable[[Builder], Builder]:
    """Decorator that registers a model builder under ``name``."""

    def deco(fn: Builder) -> Builder:
        key = name.lower()
        if key in _REGISTRY and _REGISTRY[key].builder is not fn:
            raise ValueError(f"model name '{name}' is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelEntry(
            name=key,
            builder=fn,
            paper=paper,
            tiny=dict(tiny or {}),
            trainable=trainable,
            description=description or (doc[0] if doc else ""),
        )
        return fn

    return deco


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    with _LOAD_LOCK:  # threads (dask workers) may build models concurrently: register everything once
        if _loaded:
            return
        _import_builtins()
        _loaded = True


def _import_builtins() -> None:
    for mod in BUILTIN_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as err:  # a module left out of a trimmed install
            if err.name and err.name.startswith(f"{__package__}.{mod}"):
                continue
            raise
    from importlib.metadata import entry_points

    for ep in entry_points(group="sciSR.models"):
        ep.load()


def get_entry(name: str) -> ModelEntry:
    """Registry entry for ``name``.

    Raises:
        ValueError: Unknown name (with close matches suggested).
    """
    _load_builtins()
    key = str(name).lower().replace("-", "_")
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown model '{name}'{hint} (run `scisr models` or sciSR.list_models())")
    return _REGISTRY[key]


def list_models(trainable: bool | None = None) -> list[str]:
    """Sorted names of all registered models (``trainable`` filters learned vs. baselines)."""
    _load_builtins()
    return sorted(n for n, e in _REGISTRY.items() if trainable is None or e.trainable == trainable)


def default_weights_path(name: str, scale: int, in_channels: int, tag: str | None = None) -> Path | None:
    """Path of the shipped weights for ``(name, scale, in_channels, tag)`` with exactly that channel count.

    ``tag=None`` means the natural-photo weights. See :func:`sciSR.models.catalog.find_weights` for
    the lookup that also serves other channel counts from RGB files.
    """
    from .catalog import find_weights

    match = find_weights(name, scale, in_channels, tag)
    return match.entry.path if match is not None and not match.converted else None


def create_model(
    name: str,
    scale: int = 4,
    in_channels: int = 1,
    out_channels: int | None = None,
    pretrained: bool | str | Path | None = None,
    **kwargs: Any,
) -> SRModel:
    """Build a registry model, with shipped weights where sciSR has them.

    Args:
        name: Registry name (see :func:`list_models`).
        scale: Upscaling factor.
        in_channels: Input channels (1 for a grid or an MRI slice, N for multi-band rasters).
        out_channels: Output channels (default ``in_channels``).
        pretrained: ``None`` loads the shipped natural-photo weights when there are any for this
            name, scale and channel count (see :func:`sciSR.list_weights`), else returns a random
            model; ``True`` requires shipped weights; ``False`` always builds a random model; a
            tag (``"dem"``, ``"realesrgan"``: a lower-case word that is not an existing file)
            requires the shipped weights with that tag; a path loads that checkpoint
            (safetensors or a ``weights_only`` state dict). Shipped weights are built with the
            configuration stored in the file (which may differ from the builder's defaults);
            RGB files serve 1- and N-channel models through
            :func:`~sciSR.models.checkpoints.adapt_input_channels`. Weights load strictly: the
            architecture in sciSR metadata, every key and every shape must match.
        **kwargs: Architecture hyper-parameters. With shipped weights, only values equal to the
            file's own configuration are accepted.

    Returns:
        The model in eval mode, ``model.spec`` filled.

    Raises:
        ValueError: Unknown name, unsupported scale, ``pretrained=True`` or a tag without fitting
            shipped weights (the message lists what is shipped for the model), ``kwargs`` the
            shipped weights were not trained with, or weights that do not fit.
    """
    from . import catalog

    entry = get_entry(name)
    tag = pretrained if catalog.is_tag(pretrained) else None
    if isinstance(pretrained, (str, Path)) and tag is None:
        model = _build(entry, scale, in_channels, out_channels, _file_options(entry, pretrained, kwargs))
        model.registry_name = entry.name
        from .checkpoints import load_pretrained_into

        load_pretrained_into(model, pretrained)
        _record(model, catalog.WeightsRecord.for_file(pretrained))
        return model.eval()
    if tag is not None and not entry.trainable:
        raise ValueError(f"'{entry.name}' is a parameter-free baseline: it has no '{tag}' weights")
    if not entry.trainable or pretrained is False:
        model = _build(entry, scale, in_channels, out_channels, kwargs)
        model.registry_name = entry.name
        rec = catalog.RANDOM if entry.trainable else catalog.PARAMETER_FREE
        _record(model, catalog.WeightsRecord(rec))
        return model.eval()
    match = catalog.find_weights(entry.name, int(scale), int(in_channels), tag)
    if match is not None and catalog.compatible_kwargs(match.entry, kwargs):
        model = catalog.build_from_weights(match, int(scale), out_channels, **kwargs)
        model.registry_name = entry.name
        _record(model, catalog.WeightsRecord.for_file(match.entry.path, match.entry.tag))
        return model.eval()
    model = _build(entry, scale, in_channels, out_channels, kwargs)  # checks the scale first
    model.registry_name = entry.name
    if match is not None and pretrained is not None:
        own = _non_default_options(entry, int(scale), match.entry.arch_kwargs)
        listed = ", ".join(f"{k}={v!r}" for k, v in own.items())
        which = f"the configuration stored in {match.entry.name} ({listed})" if own else ""
        which = which or "its default configuration"
        raise ValueError(
            f"the shipped weights of '{entry.name}' ×{model.scale} are for {which}; leave out "
            f"{', '.join(f'{k}=' for k in kwargs)} or pass pretrained=False for a random model"
        )
    if pretrained is not None:
        raise ValueError(missing_weights_message(entry.name, model.scale, in_channels, tag))
    _record(model, catalog.WeightsRecord(catalog.RANDOM))
    return model.eval()


def _non_default_options(entry: ModelEntry, scale: int, stored: dict[str, Any]) -> dict[str, Any]:
    """The options of ``stored`` that differ from the builder's defaults (for error messages)."""
    try:
        import torch

        with torch.device("meta"):
            ref = getattr(entry.builder(scale=scale, in_channels=1), "config", {}) or {}
    except Exception:  # a builder that cannot run on the meta device: show every stored option
        ref = {}
    return {k: v for k, v in stored.items() if _jsonable(ref.get(k)) != _jsonable(v)}


def _jsonable(v: Any) -> Any:
    import json

    return json.loads(json.dumps(v, default=str))


def _file_options(entry: ModelEntry, path: str | Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Architecture options for loading ``path``: the caller's, else the configuration a sciSR file
    of this very model stores in its metadata (so a reduced-depth RCAN file loads by name)."""
    if kwargs or Path(path).suffix != ".safetensors" or not Path(path).is_file():
        return kwargs
    from .catalog import read_metadata

    try:
        meta = read_metadata(path)
    except ValueError:
        return kwargs
    from .weights_io import file_spec

    spec = file_spec(meta)
    if spec is None or spec["name"] != entry.name or not isinstance(spec.get("extra"), dict):
        return kwargs
    return dict(spec["extra"])


def _record(model: SRModel, record: Any) -> None:
    """Attach what the weights are (``catalog.WeightsRecord``) with the tensors' state at this point,
    so that a later change of the weights (training) turns the record stale."""
    from ..model_cache import tensor_state

    model._scisr_weights = (record, tensor_state(model))  # type: ignore[attr-defined]


def weights_record(model: Any) -> Any:
    """The ``catalog.WeightsRecord`` attached by :func:`create_model`, if the weights are unchanged since.

    Returns:
        The record, or ``None`` (not built by :func:`create_model`, or trained/modified since).
    """
    attached = getattr(model, "_scisr_weights", None)
    if attached is None:
        return None
    from ..model_cache import tensor_state

    record, state = attached
    return record if tensor_state(model) == state else None


def _build(
    entry: ModelEntry, scale: int, in_channels: int, out_channels: int | None, kwargs: dict[str, Any]
) -> SRModel:
    """Call the builder; errors name the registry entry, and unknown options get a clear message."""
    try:
        return entry.builder(scale=scale, in_channels=in_channels, out_channels=out_channels, **kwargs)
    except TypeError as err:
        m = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if m is None:
            raise
        raise TypeError(
            f"model '{entry.name}' has no option '{m.group(1)}' (and it is not an option of sciSR.downscale "
            f"either); see help(sciSR.downscale) and the model's docstring"
        ) from None
    except ValueError as err:
        # family classes share one check (edsr_baseline is an EDSR): report the name the user gave
        msg = re.sub(r"^model '\w+'", f"model '{entry.name}'", str(err))
        if msg == str(err):
            raise
        raise ValueError(msg) from None


def missing_weights_message(name: str, scale: int, in_channels: int, tag: str | None = None) -> str:
    """The error text shown when a learned model is asked for without fitting weights (lists what is
    shipped for the model: scales, channels, tags)."""
    from .catalog import missing_weights_message as message

    return message(name, scale, in_channels, tag)


def shipped_weights() -> list[str]:
    """Names (file stems) of the weight files shipped with sciSR (``name_xS_cC`` or ``name_xS_cC_tag``)."""
    from .catalog import discover

    return sorted(e.name for e in discover())
