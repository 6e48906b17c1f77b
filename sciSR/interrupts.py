"""Interrupts and termination signals: end promptly, remove partial outputs, report the signal.

Writes go to temporary paths beside their targets (:mod:`sciSR.io.safety`); each temporary path
is *tracked* here while it exists. The ``scisr`` command installs handlers for SIGINT (Ctrl-C),
SIGTERM and SIGHUP (a batch scheduler's time limit, a closed terminal) with
:func:`install_handlers`: on a signal every tracked path is removed and the process exits at once
with ``128 + signal number`` (130, 143, 129), without waiting for file libraries to return. The
exit does not unwind Python frames, so no library is left half-way through a lock-protected
call (xarray's NetCDF writer deadlocks when a ``KeyboardInterrupt`` lands inside it).

The short step that swaps a finished temporary output onto its target runs in a
:func:`critical` section: a signal arriving then is held until the swap is complete, so the
target is always either the previous output or the new one, never missing.

Library use (no handlers installed) keeps Python's behaviour: Ctrl-C raises ``KeyboardInterrupt``
in the main thread; :func:`sciSR.io.safety.write_atomic` runs writers in a helper thread so the
interrupt is raised promptly and the abandoned temporary output is removed by that thread.

Test hook (for tests only, documented here): ``SCISR_TEST_SLOW_WRITE=<seconds>`` makes every
atomic write wait that long after the writer produced its temporary output and before the swap,
so tests can send signals while a temporary output exists.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "EXIT_CODES",
    "critical",
    "exit_code",
    "install_handlers",
    "remove_tracked",
    "slow_write_hook",
    "track",
    "tracked_paths",
    "untrack",
]

#: Signals the CLI handles; the exit status is 128 + the signal number.
HANDLED = tuple(s for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s))
#: Exit status per signal name (the shell convention ``128 + signum``).
EXIT_CODES = {name: 128 + int(getattr(signal, name)) for name in HANDLED}
#: Environment variable of the test hook (seconds to wait before swapping a finished output).
SLOW_WRITE_ENV = "SCISR_TEST_SLOW_WRITE"

_lock = threading.RLock()
_tracked: dict[int, tuple[Path, Callable[[Path], None], threading.Event | None]] = {}
_next_token = 0
_critical_depth = 0
_pending: int | None = None
_terminating = False
_message_prefix = "scisr"
#: A duplicate of file descriptor 2 taken when the handlers were installed: the message reaches
#: the real stderr even while a library has fd 2 redirected (GDAL/libtiff output is captured
#: during GeoTIFF writes).
_stderr_fd: int | None = None


def exit_code(signum: int) -> int:
    """Exit status for a signal number (``128 + signum``)."""
    return 128 + int(signum)


def track(path: Path, remove: Callable[[Path], None], done: threading.Event | None = None) -> int:
    """Register a temporary ``path`` for removal (with ``remove``) if the process is signalled.

    Args:
        path: The temporary output.
        remove: Removes it (file or directory tree).
        done: Set when the thread writing ``path`` has finished; on a signal the process waits
            for it briefly (see :func:`remove_tracked`).

    Returns:
        A token for :func:`untrack`.
    """
    global _next_token
    with _lock:
        terminating = _terminating
        if not terminating:
            _next_token += 1
            _tracked[_next_token] = (Path(path), remove, done)
            return _next_token
    while True:  # the process is removing its temporary outputs and exiting: start no new one
        time.sleep(1)


def untrack(token: int) -> None:
    """Forget a path registered by :func:`track` (it was renamed into place or removed)."""
    with _lock:
        _tracked.pop(token, None)


def tracked_paths() -> list[Path]:
    """Paths currently registered (temporary outputs in flight)."""
    with _lock:
        return [p for p, _, _ in _tracked.values()]


def remove_tracked(wait: float = 0.0) -> list[Path]:
    """Remove every tracked path; returns those that existed.

    A writer thread may still be adding files to a temporary directory (a Zarr store written by
    dask threads) and would re-create it after a plain removal. Such a directory is therefore
    first renamed aside and replaced by an empty file, on which the writer's next ``mkdir``
    fails, so it stops; the renamed tree is removed; then the writers are given up to ``wait``
    seconds to finish before the placeholders and anything re-created are removed.
    """
    with _lock:
        items = list(_tracked.values())
        _tracked.clear()
    removed, blockers = [], []
    for path, remove, _ in items:
        if path.exists() or path.is_symlink():
            removed.append(path)
        target = path
        if path.is_dir() and not path.is_symlink():
            aside = path.with_name(path.name + "~rm")
            with contextlib.suppress(OSError):
                os.replace(path, aside)
                target = aside
                path.touch(exist_ok=False)
                blockers.append(path)
        with contextlib.suppress(Exception):
            remove(target)
    deadline = time.monotonic() + wait
    for _, _, done in items:
        if done is not None:
            done.wait(max(0.0, deadline - time.monotonic()))
    for path, remove, _ in items:
        with contextlib.suppress(Exception):
            if path in blockers and path.is_file():
                path.unlink()
            if path.exists() or path.is_symlink():
                remove(path)
    return removed


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """Hold handled signals until the block ends (for the rename that publishes an output).

    A signal received inside the block terminates the process right after it. Entering the
    block while the process is already terminating waits for the exit.
    """
    global _critical_depth, _pending
    with _lock:
        terminating = _terminating
        if not terminating:
            _critical_depth += 1
    if terminating:  # another thread is removing temporary outputs and exiting
        while True:
            time.sleep(1)
    pending = None
    try:
        yield
    finally:
        with _lock:
            _critical_depth -= 1
            if _critical_depth == 0 and _pending is not None:
                pending, _pending = _pending, None
        if pending is not None:
            _terminate(pending)


def _terminate(signum: int) -> None:
    """Remove tracked temporary outputs, print one line and exit with ``128 + signum``."""
    global _terminating
    with _lock:
        _terminating = True
    removed = remove_tracked(wait=2.0)
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = str(signum)
    what = "; removed partial output " + ", ".join(str(p) for p in removed) if removed else ""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        os.write(
            2 if _stderr_fd is None else _stderr_fd,
            f"{_message_prefix}: interrupted ({name}){what}\n".encode(),
        )
    os._exit(exit_code(signum))


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending
    with _lock:
        if _critical_depth > 0:
            _pending = signum
            return
    _terminate(signum)


def install_handlers(prefix: str = "scisr") -> Callable[[], None]:
    """Handle SIGINT, SIGTERM and SIGHUP by removing tracked outputs and exiting at once.

    Signals that were ignored when the process started (``nohup``, a background job of a
    non-interactive shell) stay ignored. Only the main thread can install handlers; elsewhere
    this does nothing.

    Args:
        prefix: Program name for the one-line message on stderr.

    Returns:
        A function restoring the previous handlers.
    """
    global _message_prefix, _stderr_fd
    _message_prefix = prefix
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    own_fd = None
    if _stderr_fd is None:
        with contextlib.suppress(OSError):
            own_fd = _stderr_fd = os.dup(2)
    previous: dict[int, Any] = {}
    for name in HANDLED:
        sig = getattr(signal, name)
        old = signal.getsignal(sig)
        if old is signal.SIG_IGN:
            continue
        previous[sig] = old
        signal.signal(sig, _handler)

    def restore() -> None:
        global _stderr_fd
        for sig, old in previous.items():
            signal.signal(sig, old)
        if own_fd is not None and _stderr_fd == own_fd:
            _stderr_fd = None
            with contextlib.suppress(OSError):
                os.close(own_fd)

    return restore


def slow_write_hook() -> None:
    """Wait ``$SCISR_TEST_SLOW_WRITE`` seconds (test hook; no effect when unset)."""
    value = os.environ.get(SLOW_WRITE_ENV)
    if not value:
        return
    try:
        seconds = float(value)
    except ValueError:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
