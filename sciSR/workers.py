"""What a dask task needs on a worker process: the call's pipeline once per process, and a torch
thread count that does not oversubscribe the host.

One model per worker process
    The spatially chunked dask path (:mod:`sciSR.io.xarray_core`) puts the call's
    :class:`~sciSR.pipeline.Pipeline` into the task graph once, under one key holding a
    :class:`PipelineHandle`; every block task depends on that key instead of carrying the model.
    ``dask.distributed`` computes the key on one worker and copies the result to each worker that
    runs a block task, once (workers keep dependencies in memory while dependents remain), so a
    model is unpickled once per worker process, not once per task. When a handle with the same
    token is unpickled again in a process that still holds one, the held pipeline is reused.
    :func:`load_count` reports how often a token was unpickled in this process (tests run it on
    every worker with ``client.run``).

Torch threads on a worker (rule)
    ``threads = max(1, host_cores // host_worker_threads)``, where ``host_cores`` are the cores this
    process may use (``os.sched_getaffinity``) and ``host_worker_threads`` is the sum of ``nthreads``
    of the dask workers on this host (the scheduler's view, read once per process; this worker's
    own ``nthreads`` when the scheduler cannot be asked). Each of a worker's task threads then runs
    torch with that many intra-op threads, so the host's cores are shared without oversubscription:
    2 workers × 1 thread on 2 cores → 1 torch thread each; 1 worker × 1 thread on 16 cores → 16.
    ``dask.distributed``'s nanny starts workers with ``OMP_NUM_THREADS=1``, which would otherwise
    leave a single-threaded worker on a many-core host using one core. The setting is applied by
    :func:`limit_torch_threads` at the start of every block task (OpenMP thread counts belong to the
    calling thread); outside a distributed worker it does nothing. ``SCISR_WORKER_THREADS=n`` in the
    workers' environment replaces the rule by ``n``.
"""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from collections import OrderedDict
from dataclasses import fields
from typing import Any

#: Environment variable that fixes the torch threads of each worker task thread (instead of the rule),
#: e.g. ``1`` to give every worker process exactly one core.
WORKER_THREADS_ENV = "SCISR_WORKER_THREADS"
#: tokens whose unpickling count is kept (oldest forgotten first)
MAX_COUNTED_TOKENS = 256

_LOCK = threading.Lock()
_HELD: weakref.WeakValueDictionary[str, PipelineHandle] = weakref.WeakValueDictionary()
_LOADS: OrderedDict[str, int] = OrderedDict()
_HOST_THREADS: list[int] = []  # cached torch thread count of this worker process


class PipelineHandle:
    """A pipeline as one value of a dask graph, identified by ``token`` (see the module docstring).

    Attributes:
        pipe: The :class:`~sciSR.pipeline.Pipeline`.
        token: Identifies the pipeline's model state and settings (:func:`pipeline_token`).
    """

    __slots__ = ("__weakref__", "pipe", "token")

    def __init__(self, pipe: Any, token: str) -> None:
        self.pipe = pipe
        self.token = token

    def __reduce__(self) -> tuple[Any, tuple[str, Any]]:
        return _load_handle, (self.token, self.pipe)

    def __dask_tokenize__(self) -> str:
        return self.token

    def __sizeof__(self) -> int:  # what dask.sizeof reports for the handle: the model's tensors
        model = getattr(self.pipe, "model", None)
        if model is None:
            return 64
        return 64 + sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _load_handle(token: str, pipe: Any) -> PipelineHandle:
    """Unpickling of a :class:`PipelineHandle`: counted, and the held pipeline reused when present."""
    with _LOCK:
        _LOADS[token] = _LOADS.get(token, 0) + 1
        _LOADS.move_to_end(token)
        while len(_LOADS) > MAX_COUNTED_TOKENS:
            _LOADS.popitem(last=False)
        held = _HELD.get(token)
        if held is not None:
            return held
        handle = PipelineHandle(pipe, token)
        _HELD[token] = handle
        return handle


def load_count(token: str) -> int:
    """How many times a :class:`PipelineHandle` with ``token`` was unpickled in this process."""
    with _LOCK:
        return _LOADS.get(token, 0)


def pipeline_token(pipe: Any) -> str:
    """A token of ``pipe``'s model (identity and tensor state) and settings.

    Two pipelines over the same prepared model object (:mod:`sciSR.model_cache` reuses them across
    calls) with equal settings share a token, so dask merges their graph keys; a model changed in
    place (training, ``load_state_dict``) gets a new one.
    """
    from dask.base import tokenize

    from .model_cache import tensor_state

    model = pipe.model
    ident = getattr(model, "_scisr_dask_id", None)
    if ident is None:
        ident = uuid.uuid4().hex
        object.__setattr__(model, "_scisr_dask_id", ident)
    state = repr(tensor_state(model))  # tensor identities too: a deep copy keeps the attribute
    settings = [repr(getattr(pipe, f.name)) for f in fields(pipe) if f.name not in ("model", "_record_attrs")]
    return tokenize(ident, state, settings)


def torch_threads_rule(host_cores: int, host_worker_threads: int) -> int:
    """Torch intra-op threads per task thread: ``max(1, host_cores // host_worker_threads)``."""
    return max(1, int(host_cores) // max(1, int(host_worker_threads)))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _host_worker_threads(worker: Any) -> int:
    """Sum of ``nthreads`` of the dask workers on ``worker``'s host (its own ``nthreads`` as fallback)."""
    own = int(getattr(worker.state, "nthreads", 0) or getattr(worker, "nthreads", 1) or 1)
    try:
        from distributed import get_client

        info = get_client().scheduler_info(n_workers=-1)
        host = worker.address.rsplit(":", 1)[0]
        total = sum(
            int(w.get("nthreads", 1))
            for addr, w in info.get("workers", {}).items()
            if str(addr).rsplit(":", 1)[0] == host
        )
        return max(own, total)
    except Exception:  # any failure to ask the scheduler falls back to this worker
        return own


def worker_torch_threads() -> int | None:
    """The torch thread count for task threads of this process, or ``None`` off a distributed worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    with _LOCK:
        if _HOST_THREADS:
            return _HOST_THREADS[0]
    env = os.environ.get(WORKER_THREADS_ENV, "").strip()
    if env:
        n = int(env)
        if n < 1:
            raise ValueError(f"{WORKER_THREADS_ENV} must be a positive integer, got {env!r}")
    else:
        n = torch_threads_rule(_usable_cores(), _host_worker_threads(worker))
    with _LOCK:
        if not _HOST_THREADS:
            _HOST_THREADS.append(n)
        return _HOST_THREADS[0]


def limit_torch_threads() -> int | None:
    """Set the calling thread's torch intra-op threads by the rule above (distributed workers only).

    Returns:
        The thread count set, or ``None`` when not running inside a ``dask.distributed`` worker.
    """
    n = worker_torch_threads()
    if n is None:
        return None
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
