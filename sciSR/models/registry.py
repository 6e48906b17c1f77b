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


def default_weights_path(name: str, scale: int, in_channels: int) -> Path | None:
    """Path of the shipped weights for ``(name, scale, in_channels)``, if sciSR ships them."""
    p = WEIGHTS_DIR / f"{name}_x{scale}_c{in_channels}.safetensors"
    return p if p.is_file() else None


def create_model(
    name: str,
    scale: int = 4,
    in_channels: int = 1,
    out_channels: int | None = None,
    pretrained: bool | str | Path | None = None,
    **kwargs: Any,
) -> SRModel:
    """Build a registered model.

    Args:
        name: Registry name (see :func:`list_models`).
        scale: Upscaling factor.
        in_channels: Input channels (1 for a grid or an MRI slice, N for multi-band rasters).
        out_channels: Output channels (default ``in_channels``).
        pretrained: ``None`` loads shipped weights when there are any for this name, scale and
            channel count in the default configuration (no ``kwargs``), else returns a random
            model; ``True`` requires shipped weights; ``False`` always builds a random model; a
            path loads that checkpoint (safetensors or a ``weights_only`` state dict). Weights load
            strictly: the architecture in sciSR metadata, every key and every shape must match.
        **kwargs: Architecture hyper-parameters.

    Returns:
        The model in eval mode, ``model.spec`` filled.

    Raises:
        ValueError: Unknown name, unsupported scale, ``pretrained=True`` without shipped weights
            (or with ``kwargs`` the shipped weights were not trained with), or weights that do
            not fit.
    """
    entry = get_entry(name)
    model = _build(entry, scale, in_channels, out_channels, kwargs)
    model.registry_name = entry.name
    if isinstance(pretrained, (str, Path)):
        from .checkpoints import load_pretrained_into

        load_pretrained_into(model, pretrained)
    elif entry.trainable and pretrained is not False:
        path = default_weights_path(entry.name, model.scale, in_channels) if not kwargs else None
        if path is not None:
            from .weights_io import load_weights_into

            load_weights_into(model, path)
        elif pretrained is True and default_weights_path(entry.name, model.scale, in_channels):
            raise ValueError(
                f"the shipped weights of '{entry.name}' ×{model.scale} are for its default configuration; "
                f"leave out {', '.join(f'{k}=' for k in kwargs)} or pass pretrained=False for a random model"
            )
        elif pretrained is True:
            raise ValueError(missing_weights_message(entry.name, model.scale, in_channels))
    return model.eval()


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


def missing_weights_message(name: str, scale: int, in_channels: int) -> str:
    """The error text shown when a learned model is asked for without weights."""
    return (
        f"no weights for '{name}' ×{scale} with {in_channels} channel(s): pass weights=PATH "
        f"(a .safetensors or .pth checkpoint; sciSR.load_checkpoint reads EDSR/RCAN/BasicSR/ESRGAN/"
        f"super-image/torchSR files) or pretrained=False for a random model on purpose; "
        f"shipped weights: "
        f"{', '.join(shipped_weights()) or 'none'}"
    )


def shipped_weights() -> list[str]:
    """Names of the weight files shipped with sciSR (``name_xS_cC``)."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))
