"""Reuse of prepared models across ``downscale`` calls.

Preparing a model for a call (copying a user's module so it is never modified, loading a weight
file, moving it to the device, channels_last, marking the fp32 layers) costs about half a second
for RCAN on a CPU, as much as super-resolving a small field. Calls in a loop (one per time step or
file) therefore reuse the prepared model of an earlier call when nothing it was made from changed:

* a user's module: kept per module (weakly: the entry goes when the module does) and per engine
  setting; reused only while the module's parameters and buffers are the same tensors, unmodified
  (version counters) and equal in value to the copy, and its structure is unchanged;
* a registry model with weights from a file: kept per (name, options, file, file size and
  modification time, engine setting), at most :data:`MAX_FILE_ENTRIES` at once;

and in both cases only while the prepared copy itself is unmodified (someone may have changed
``Pipeline.model``). Randomly initialised models (``pretrained=False``) are never reused.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Registry models with file weights kept at once (least recently used dropped first).
MAX_FILE_ENTRIES = 4

_LOCK = threading.Lock()
_BY_MODULE: weakref.WeakKeyDictionary[nn.Module, dict[Hashable, _Entry]] = weakref.WeakKeyDictionary()
_BY_FILE: OrderedDict[Hashable, _Entry] = OrderedDict()


@dataclass
class _Entry:
    net: nn.Module
    net_state: tuple
    source_state: tuple | None = None


def module_tensors(m: nn.Module) -> list[torch.Tensor]:
    """Every parameter and buffer of ``m`` once, in module order (one walk of the module tree)."""
    seen: set[int] = set()
    out = []
    for mod in m.modules():
        for t in chain(mod._parameters.values(), mod._buffers.values()):
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
    return out


def tensor_state(m: nn.Module) -> tuple:
    """Identity, storage and version counter of every parameter and buffer of ``m``.

    Changes when a tensor is replaced, moved, or modified in place through autograd-visible
    operations (optimizer steps, ``load_state_dict``, ``with torch.no_grad(): p.mul_(2)``).
    """
    return tuple((id(t), t.data_ptr(), t._version, t.dtype, t.device) for t in module_tensors(m))


def _same_values(a: nn.Module, b: nn.Module) -> bool:
    """Parameters and buffers of ``a`` and ``b`` equal in value (catches edits through ``.data``)."""
    ta, tb = module_tensors(a), module_tensors(b)
    if len(ta) != len(tb):
        return False
    with torch.no_grad():
        for x, y in zip(ta, tb):
            if x.shape != y.shape:
                return False
            y = y.to(x.device) if y.device != x.device else y
            if not torch.equal(x, y.to(x.dtype) if y.dtype != x.dtype else y):
                return False
    return True


def prepared_copy(
    module: nn.Module, setting: Hashable, prepare: Callable[[nn.Module], nn.Module]
) -> nn.Module:
    """A prepared private copy of a user's ``module`` for one engine ``setting``, reused when valid.

    Args:
        module: The caller's module (never modified).
        setting: What the preparation depends on (device, precision, channels, scale).
        prepare: Turns a fresh deep copy into the ready model.

    Returns:
        The prepared copy.
    """
    from .precision import structure_key

    source = (structure_key(module, 0, 0), tensor_state(module))
    with _LOCK:
        entry = _BY_MODULE.get(module, {}).get(setting)
    if (
        entry is not None
        and entry.source_state == source
        and tensor_state(entry.net) == entry.net_state
        and _same_values(module, entry.net)
    ):
        return entry.net
    import copy

    net = prepare(copy.deepcopy(module))
    with _LOCK:
        _BY_MODULE.setdefault(module, {})[setting] = _Entry(net, tensor_state(net), source)
    return net


def prepared_from_file(key: Hashable, weights: Path, build: Callable[[], nn.Module]) -> nn.Module:
    """A prepared registry model whose weights come from ``weights``, reused while the file and
    the prepared model are unchanged.

    Args:
        key: Name, options and engine setting of the model.
        weights: The weight file (its size and modification time are part of the key).
        build: Builds, loads and prepares the model.

    Returns:
        The prepared model.
    """
    st = Path(weights).stat()
    full = (key, str(Path(weights).resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        entry = _BY_FILE.get(full)
        if entry is not None:
            _BY_FILE.move_to_end(full)
    if entry is not None and tensor_state(entry.net) == entry.net_state:
        return entry.net
    net = build()
    with _LOCK:
        _BY_FILE[full] = _Entry(net, tensor_state(net))
        while len(_BY_FILE) > MAX_FILE_ENTRIES:
            _BY_FILE.popitem(last=False)
    return net


def clear() -> None:
    """Forget every prepared model (frees their memory)."""
    with _LOCK:
        _BY_MODULE.clear()
        _BY_FILE.clear()


def cached_count() -> dict[str, Any]:
    """How many prepared models are held (for tests and diagnostics)."""
    with _LOCK:
        return {"modules": sum(len(v) for v in _BY_MODULE.values()), "files": len(_BY_FILE)}
