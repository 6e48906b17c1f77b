"""Process-wide locks for libraries that are not thread-safe (netCDF-C / HDF5).

The netCDF-C and HDF5 libraries keep global state: two threads inside them at once (one opening
a file while another reads or writes) crash the process. Every netCDF access by sciSR — opening
(metadata and the truncation check), lazy reads of variables opened by :mod:`sciSR.io.netcdf`,
and writing — holds :data:`NETCDF_LOCK`. The lock is reentrant, so xarray can take it again
inside a section sciSR already holds (it is passed to ``xr.open_dataset(lock=...)``), and it
pickles by name, so dask-distributed workers use their own process's lock.

Datasets opened with plain ``xarray.open_dataset`` use xarray's own lock instead; open files
with :func:`sciSR.open` to share them safely with concurrent sciSR jobs.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCKS: dict[str, threading.RLock] = {}
_REGISTRY_LOCK = threading.Lock()


def get_lock(name: str) -> ProcessLock:
    """The process-wide reentrant lock called ``name`` (created on first use)."""
    return ProcessLock(name)


class ProcessLock:
    """A named, reentrant, process-wide lock that survives pickling (by name).

    Args:
        name: Lock name; every instance with the same name shares one ``threading.RLock``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        with _REGISTRY_LOCK:
            self._lock = _LOCKS.setdefault(name, threading.RLock())

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        """True while another thread holds the lock (a holder's own thread sees ``False``)."""
        if self._lock.acquire(blocking=False):
            self._lock.release()
            return False
        return True

    def __enter__(self) -> ProcessLock:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return get_lock, (self.name,)

    def __repr__(self) -> str:
        return f"<ProcessLock {self.name!r}>"


#: Held by every sciSR access to the netCDF-C/HDF5 libraries.
NETCDF_LOCK = get_lock("sciSR-netcdf-hdf5")
