"""Mixed precision that keeps outputs fp32-grade: bf16 where the work is, fp32 where the values are.

Running a whole SR network under bf16 autocast quantizes its output to bf16's 8-bit mantissa: a
normalized DEM comes back in ~1,000 distinct levels (terraces of tens of metres) and temperature
fields in steps of ~0.35 K. Almost all of the arithmetic, however, sits in feature-space
convolutions whose rounding errors average out. :func:`keep_image_layers_fp32` therefore marks the
layers that touch *image-space* tensors to run in fp32 inside the bf16 autocast region:

* every convolution/linear layer that reads the network input's channels (the entry convolution),
  so residual networks carry their long and short skip streams in fp32 (``fp32 + bf16`` promotes
  to fp32 in PyTorch);
* every one that writes the output's channels, directly or through a pixel shuffle
  (``C_out·r²`` channels for ``r ≤ scale``), and the last one executed;

so the output is a sum of many bf16 features with fp32 weights and accumulation, not a rounded
bf16 value. These layers have few channels on one side and cost a few percent of the FLOPs.
The set is found by tracing one small forward pass with hooks, so it applies to every registered
architecture and to any ``nn.Module`` a user passes. Architectures can override the choice with
an ``fp32_modules()`` method returning the modules to keep in fp32.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

#: Layer types whose autocast variants round their outputs to the reduced precision.
AUTOCAST_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)

_LOCAL = threading.local()
_HOOK_TAG = "_scisr_fp32_hooks"


def _channels(m: nn.Module) -> tuple[int, int]:
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    return m.in_channels, m.out_channels


def _macs(mod: nn.Module, x: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a convolution or linear layer."""
    if isinstance(mod, nn.Linear):
        return out.numel() * mod.in_features
    if isinstance(mod, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
        k = int(torch.tensor(mod.kernel_size).prod())
        return x.numel() * (mod.out_channels // mod.groups) * k
    k = int(torch.tensor(mod.kernel_size).prod())
    return out.numel() * (mod.in_channels // mod.groups) * k


@dataclass(frozen=True)
class ModelProfile:
    """What one traced forward pass tells about a network's structure.

    Attributes:
        fp32_layers: Names (as in ``named_modules``) of the image-space layers kept in fp32
            under reduced precision, in execution order.
        activation_bytes_per_px: Largest single activation per LR input pixel, in bytes at fp32
            (sizes the tiles, see :func:`sciSR.engine.auto_tile_size`).
        out_channels: Channels of the output.
        reduced_fraction: Share of the multiply-accumulates (convolution and linear layers) that
            run in reduced precision once the image-space layers are kept in fp32.
    """

    fp32_layers: tuple[str, ...]
    activation_bytes_per_px: float
    out_channels: int
    reduced_fraction: float = 1.0


_PROFILES: OrderedDict[str, ModelProfile] = OrderedDict()
_PROFILES_LOCK = threading.Lock()
_PROFILES_MAX = 64


def structure_key(model: nn.Module, in_channels: int, scale: int) -> str:
    """Hash of what a forward pass's structure depends on: module tree, parameter shapes, settings.

    Two modules with the same key (e.g. a user's module and sciSR's private copy of it, or the
    same architecture with other weights) share one :class:`ModelProfile`.
    """
    h = hashlib.sha1()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}|{in_channels}|{scale}".encode())
    h.update(repr(sorted(getattr(model, "config", {}).items())).encode())
    h.update(repr((getattr(model, "scale", None), getattr(model, "size_multiple", 1))).encode())
    parts = []
    for name, mod in model.named_modules():
        parts.append(f"{name}:{type(mod).__qualname__}")
        parts.extend(f"{k}{tuple(p.shape)}" for k, p in mod._parameters.items() if p is not None)
    h.update(";".join(parts).encode())
    return h.hexdigest()


@torch.no_grad()
def profile_model(model: nn.Module, in_channels: int, scale: int, probe: int = 16) -> ModelProfile:
    """Trace one forward pass of ``model`` (cached by :func:`structure_key`).

    A ``probe × probe`` zero input (rounded up to the model's size multiple) runs in fp32 with
    hooks on every leaf module. The image-space layers are the convolutions that read at most
    ``C_in`` channels or write ``C_out·r²`` channels (``r ≤ scale``, i.e. the output through a
    pixel shuffle), plus the last convolution executed; calls on pooled ``1×1`` maps (channel
    attention) and linear layers inside attention blocks are not image space.

    Args:
        model: Network mapping ``(N, C_in, H, W)`` to ``(N, C_out, s·H, s·W)``.
        in_channels: ``C_in``.
        scale: ``s``.
        probe: Side of the probe input in LR pixels.

    Returns:
        The :class:`ModelProfile`.

    Shape:
        probe input ``(1, C_in, probe, probe)``.
    """
    key = structure_key(model, in_channels, scale)
    with _PROFILES_LOCK:
        hit = _PROFILES.get(key)
        if hit is not None:
            _PROFILES.move_to_end(key)
            return hit
    mult = int(getattr(model, "size_multiple", 1) or 1)
    probe = -(-probe // mult) * mult
    calls: list[tuple[str, nn.Module, tuple[int, ...], int]] = []
    peak = [0]
    names = {id(m): n for n, m in model.named_modules()}

    def hook(mod: nn.Module, args: tuple, out: object) -> None:
        if isinstance(out, torch.Tensor):
            peak[0] = max(peak[0], out.numel())
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is not None and isinstance(mod, AUTOCAST_LAYERS) and isinstance(out, torch.Tensor):
            calls.append((names[id(mod)], mod, tuple(x.shape), _macs(mod, x, out)))

    leaves = [m for m in model.modules() if not list(m.children()) or isinstance(m, AUTOCAST_LAYERS)]
    handles = [m.register_forward_hook(hook) for m in leaves]
    p = next(iter(model.parameters()), None)
    dev = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    try:
        model.eval()
        y = model(torch.zeros(1, in_channels, probe, probe, device=dev))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    c_out = int(y.shape[1]) if isinstance(y, torch.Tensor) and y.ndim == 4 else in_channels
    shuffled = {c_out * r * r for r in range(1, max(int(scale), 1) + 1)}
    keep: list[str] = []
    convs = []
    for name, mod, xs, _ in calls:
        if isinstance(mod, nn.Linear):
            continue
        convs.append(name)
        if all(d == 1 for d in xs[2:]):  # pooled map (channel attention)
            continue
        cin, cout = _channels(mod)
        if (cin <= in_channels or cout in shuffled) and name not in keep:
            keep.append(name)
    if convs and convs[-1] not in keep:
        keep.append(convs[-1])
    total = sum(c[3] for c in calls)
    reduced = sum(c[3] for c in calls if c[0] not in keep)
    prof = ModelProfile(
        tuple(keep), 4.0 * max(peak[0], 1) / (probe * probe), c_out, reduced / total if total else 0.0
    )
    with _PROFILES_LOCK:
        _PROFILES[key] = prof
        while len(_PROFILES) > _PROFILES_MAX:
            _PROFILES.popitem(last=False)
    return prof


def image_space_layers(model: nn.Module, in_channels: int, scale: int) -> list[nn.Module]:
    """The modules :func:`profile_model` selects to run in fp32, in execution order."""
    mods = dict(model.named_modules())
    return [mods[n] for n in profile_model(model, in_channels, scale).fp32_layers]


def _up(a: object) -> object:
    return a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a


def _enter_fp32(mod: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    vals = (*args, *kwargs.values())
    dev = next((a.device.type for a in vals if isinstance(a, torch.Tensor)), "cpu")
    ctx = torch.autocast(device_type=dev, enabled=False)
    ctx.__enter__()
    stack = getattr(_LOCAL, "stack", None)
    if stack is None:
        stack = _LOCAL.stack = []
    stack.append(ctx)
    return tuple(_up(a) for a in args), {k: _up(v) for k, v in kwargs.items()}


def _leave_fp32(mod: nn.Module, args: tuple, out: object) -> None:
    _LOCAL.stack.pop().__exit__(None, None, None)


def keep_fp32(modules: Iterable[nn.Module]) -> int:
    """Make each module run in fp32 whenever it is called: autocast disabled on the device of its
    inputs, floating-point inputs (positional and keyword) cast up.

    Implemented with forward hooks, so parameter names and the module tree are unchanged; a module
    that already carries the hooks is left alone.

    Returns:
        Number of modules newly marked.
    """
    n = 0
    for m in modules:
        if getattr(m, _HOOK_TAG, None):
            continue
        h1 = m.register_forward_pre_hook(_enter_fp32, with_kwargs=True)
        h2 = m.register_forward_hook(_leave_fp32, always_call=True)
        setattr(m, _HOOK_TAG, (h1, h2))
        n += 1
    return n


def keep_image_layers_fp32(model: nn.Module, in_channels: int, scale: int) -> list[nn.Module]:
    """Mark ``model``'s image-space layers (or its own ``fp32_modules()``) to run in fp32.

    Returns:
        The marked modules.
    """
    custom = getattr(model, "fp32_modules", None)
    mods = list(custom()) if callable(custom) else image_space_layers(model, in_channels, scale)
    keep_fp32(mods)
    return mods


def fp32_marked(model: nn.Module) -> list[nn.Module]:
    """Modules of ``model`` currently marked by :func:`keep_fp32`."""
    return [m for m in model.modules() if getattr(m, _HOOK_TAG, None)]


def release_fp32(model: nn.Module) -> int:
    """Remove the hooks :func:`keep_fp32` put on ``model``'s modules (whole-network autocast again).

    Returns:
        Number of modules released.
    """
    n = 0
    for m in fp32_marked(model):
        for h in getattr(m, _HOOK_TAG):
            h.remove()
        delattr(m, _HOOK_TAG)
        n += 1
    return n
