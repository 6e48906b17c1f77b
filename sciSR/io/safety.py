"""Output safety: what may be written where, atomic writes, and removal of stale temporary files.

Rules (checked before any computation and again right before the write):

* An output never is, contains, or lies inside any input of the same call or job (compared
  both as written and with symlinks resolved, and by inode for existing paths). Writing a
  ``.zarr`` output that contains an input would delete the input; writing into an input store
  would modify it.
* An existing output is replaced only when it is a previous output of the same kind: a regular
  file for a file format, a Zarr store (a directory holding ``zarr.json``, ``.zgroup``,
  ``.zattrs`` or ``.zarray``) for Zarr. Any other directory, or a file where a store is expected
  (or the reverse), is refused with a one-line error naming the fix.
* Writes go to a temporary path beside the target and are renamed onto it when complete; the
  previous output (if any) is replaced only then. A failed or interrupted write leaves the
  target as it was and removes the temporary output.

Temporary names are ``.scisr-tmp-<host>-<pid>-<id>-<target name>`` (and ``.scisr-old-...`` for
the previous Zarr store during the swap): the target's name stays at the end so writers that pick
a format from the extension (``.nii.gz``, ``.tif``) behave as for the target. ``<host>`` is a
short hash of the host name and ``<pid>`` the writing process. Before each write,
:func:`remove_stale_temps` removes such files in the output directory that belong to this user
and host and whose process is gone (a killed job); a stale ``.scisr-old-`` store whose target is
missing is renamed back onto the target (it is the last complete output).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import os
import re
import shutil
import socket
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import interrupts
from .signature import is_zarr_store

__all__ = [
    "OutputError",
    "atomic_path",
    "check_output_path",
    "input_relation",
    "parse_temp_name",
    "remove_stale_temps",
    "temp_path",
    "write_atomic",
]

_TEMP_RE = re.compile(r"^\.scisr-(tmp|old)-([0-9a-f]{8})-(\d+)-([0-9a-f]{8})-(.+)$")
#: RuntimeError messages of file libraries (netCDF-C/HDF5, GDAL, zarr stores) while writing.
_LIBRARY_ERROR = re.compile(r"NetCDF|HDF|GDAL|TIFF|I/O|[Nn]o space|quota|disk", re.IGNORECASE)
#: Longest file name most file systems accept (bytes).
NAME_MAX = 255
HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


class OutputError(ValueError):
    """An output path that must not be written (it would lose data); the message names the fix."""


@dataclass(frozen=True)
class TempName:
    """The parts of a temporary name made by :func:`temp_path`."""

    kind: str
    host: str
    pid: int
    target_name: str


def temp_path(target: Path, kind: str = "tmp") -> Path:
    """A fresh temporary path beside ``target`` (``kind`` is ``"tmp"`` or ``"old"``).

    A target name too long to carry the prefix within :data:`NAME_MAX` bytes is shortened in
    the middle (``~`` marks the cut) and keeps its extension.
    """
    tag = uuid.uuid4().hex[:8]
    prefix = f".scisr-{kind}-{HOST_TAG}-{os.getpid()}-{tag}-"
    name = target.name
    if len((prefix + name).encode()) > NAME_MAX:
        ext = "".join(Path(name).suffixes[-2:])[-16:]
        stem = name[: len(name) - len(ext)]
        while stem and len((prefix + stem + "~" + ext).encode()) > NAME_MAX:
            stem = stem[:-1]
        name = stem + "~" + ext
    return target.with_name(prefix + name)


def _is_shortened(name: str) -> bool:
    return len(name.encode()) >= NAME_MAX - 4 and "~" in name


def parse_temp_name(name: str) -> TempName | None:
    """Parts of a temporary name from :func:`temp_path`, or ``None`` for any other name."""
    m = _TEMP_RE.match(name)
    return TempName(m[1], m[2], int(m[3]), m[5]) if m else None


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may still run (``True`` when it cannot be told)."""
    if pid == os.getpid() or os.name != "posix":  # os.kill(pid, 0) terminates processes on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists (another user's) or cannot tell: leave it alone
        return True
    return True


def remove_path(p: Path) -> None:
    """Remove a file, symlink or directory tree; missing paths are fine."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
        if p.exists():  # files created while removing (a writer thread still finishing)
            time.sleep(0.05)
            shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Remove temporary outputs in ``directory`` left by dead sciSR processes of this user and host.

    A ``.scisr-old-`` Zarr store whose target is missing (the process died mid-swap) is renamed
    back onto its target instead of being removed.

    Returns:
        The paths removed or restored.
    """
    d = Path(directory)
    done: list[Path] = []
    try:
        entries = list(os.scandir(d))
    except OSError:
        return done
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        parts = parse_temp_name(entry.name)
        if parts is None or parts.host != HOST_TAG or _pid_alive(parts.pid):
            continue
        path = Path(entry.path)
        try:
            if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            target = d / parts.target_name
            if parts.kind == "old" and not (target.exists() or target.is_symlink()):
                if _is_shortened(entry.name):
                    continue  # the previous output of a target whose full name is unknown: keep it
                os.replace(path, target)
            else:
                remove_path(path)
        except OSError:
            continue
        done.append(path)
    return done


def _forms(p: Path) -> set[Path]:
    forms = {Path(os.path.abspath(p))}
    with contextlib.suppress(OSError, RuntimeError):
        forms.add(p.resolve())
    return forms


def input_relation(out: str | Path, src: str | Path) -> str | None:
    """How an output path relates to an input path.

    Returns:
        ``"is"`` (same path or same file), ``"inside"`` (the output lies inside the input
        directory),
        ``"contains"`` (the input lies inside the output) or ``None``.
    """
    o_path, s_path = Path(out), Path(src)
    with contextlib.suppress(OSError):
        if o_path.exists() and s_path.exists() and os.path.samefile(o_path, s_path):
            return "is"
    for o in _forms(o_path):
        for s in _forms(s_path):
            if o == s:
                return "is"
            if o.is_relative_to(s) and s_path.is_dir():
                return "inside"
            if s.is_relative_to(o):
                return "contains"
    return None


def check_inputs(path: Path, sources: Sequence[str | Path]) -> None:
    """Refuse an output that is, contains or lies inside one of ``sources``.

    Raises:
        OutputError: With the input named and the fix.
    """
    for src in sources:
        rel = input_relation(path, src)
        if rel == "is":
            raise OutputError(
                f"output path {path} is the input file {src}; "
                f"choose another name (inputs are never overwritten)"
            )
        if rel == "inside":
            raise OutputError(
                f"output path {path} is inside the input {src}; "
                f"write it elsewhere (inputs are never modified)"
            )
        if rel == "contains":
            raise OutputError(
                f"output path {path} contains the input {src}; replacing it would delete the input: "
                f"choose another name"
            )


def check_existing(path: Path, directory_store: bool) -> None:
    """Refuse to replace anything but a previous output of the same kind.

    A file without any write permission bit (``chmod a-w``) is protected: it is not replaced.

    Raises:
        OutputError: ``path`` exists and is not a file (file formats) or a Zarr store (Zarr),
            or is a read-only file.
    """
    if not (path.exists() or path.is_symlink()):
        return
    if directory_store:
        if path.is_dir():
            if not is_zarr_store(path):
                raise OutputError(
                    f"{path} is an existing directory that is not a Zarr store; sciSR only replaces its own "
                    f"previous outputs: choose a new name or remove it yourself"
                )
            return
        if path.exists():
            raise OutputError(
                f"{path} is an existing file, not a Zarr store; choose a new name or remove it yourself"
            )
        return  # a dangling symlink: the link itself is replaced
    if path.is_dir():
        raise OutputError(
            f"{path} is an existing directory; choose a file name "
            f"(sciSR never replaces a directory with a file)"
        )
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise OutputError(f"{path} exists and is not a regular file; choose another name")
    if path.exists() and not path.stat().st_mode & 0o222:
        raise OutputError(
            f"{path} is read-only; make it writable (chmod u+w) to let sciSR replace it, "
            f"or choose another name"
        )


def check_output_path(
    path: str | Path,
    *,
    sources: Sequence[str | Path] = (),
    overwrite: bool = True,
    directory_store: bool = False,
) -> None:
    """Fail early, with one clear line, when ``path`` cannot or must not be written.

    Args:
        path: The output (file, or ``.zarr`` directory when ``directory_store``).
        sources: Inputs of the call or job; the output may not be, contain or lie inside any.
        overwrite: Allow replacing a previous output.
        directory_store: The format is a directory store (Zarr).

    Raises:
        OutputError: ``path`` is, contains or lies inside an input, or exists as something that
            is not a previous output of the same kind.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        FileNotFoundError: The output directory does not exist.
        PermissionError: The output directory is not writable.
    """
    path = Path(path)
    check_inputs(path, sources)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    check_existing(path, directory_store)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise FileNotFoundError(f"cannot write {path}: the output directory {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: the output directory {parent} is not writable")


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; a previous directory store is swapped out, then removed."""
    if target.is_dir() and not target.is_symlink():
        backup = temp_path(target, "old")
        with interrupts.critical():
            os.replace(target, backup)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(backup, target)
                raise
            token = interrupts.track(backup, remove_path)
        try:
            remove_path(backup)
        finally:
            _CURRENT.state = None
            interrupts.untrack(token)
        return
    with interrupts.critical():
        if tmp.is_dir() and (target.exists() or target.is_symlink()):
            target.unlink()  # a dangling symlink or a checked previous output
        os.replace(tmp, target)


@contextlib.contextmanager
def atomic_path(target: str | Path, *, directory_store: bool | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary path is removed on any error (and on SIGINT/SIGTERM/SIGHUP under the ``scisr``
    command). Stale temporary outputs of dead processes in the same directory are removed first.

    Args:
        target: Output file or store.
        directory_store: The output is a directory store; ``None``: a ``.zarr`` name.

    Raises:
        OutputError, FileNotFoundError, PermissionError: See :func:`check_output_path`.
        RuntimeError: The body produced nothing at the temporary path.
    """
    target = Path(target)
    store = target.name.lower().endswith(".zarr") if directory_store is None else directory_store
    check_output_path(target, directory_store=store)
    remove_stale_temps(target.parent if str(target.parent) else Path("."))
    tmp = temp_path(target)
    token = interrupts.track(tmp, remove_path)
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise RuntimeError(f"the writer produced no output for {target}")
        interrupts.slow_write_hook()
        _swap_into_place(tmp, target)
    except BaseException:
        remove_path(tmp)
        raise
    finally:
        interrupts.untrack(token)


def _finish_thread_dask_pools(cancel: bool) -> None:
    """Shut down the dask thread pools owned by the calling thread, waiting for their tasks.

    dask's threaded scheduler gives every thread other than the main one its own pool
    (``dask.threaded.pools``). When a chunked write fails, dask raises at the first error while
    other chunks are still being written by that pool; joining it before the temporary output
    is removed makes the removal final. Writers run in threads other than the main one (see
    :func:`write_atomic`), so the pool joined here is the write's own. Nothing happens when dask
    is not loaded or keeps its pools elsewhere.
    """
    threaded = sys.modules.get("dask.threaded")
    pools = getattr(threaded, "pools", None)
    lock = getattr(threaded, "pools_lock", None)
    if not isinstance(pools, dict) or lock is None:
        return
    with lock:
        mine = pools.pop(threading.current_thread(), {})
    for pool in mine.values():
        with contextlib.suppress(Exception):
            pool.shutdown(wait=True, cancel_futures=cancel)


class _WriteState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.committing = False
        self.error: BaseException | None = None
        self.done = threading.Event()


_CURRENT = threading.local()


def abandoned_check() -> Callable[[], bool]:
    """For a writer running inside :func:`write_atomic`: a callable telling whether the caller
    abandoned the write (Ctrl-C), so that long block-by-block writes can stop early.

    Returns ``lambda: False`` outside :func:`write_atomic`. Call it in the writer's own thread
    (the callable itself may be passed to other threads).
    """
    state = getattr(_CURRENT, "state", None)
    if state is None:
        return lambda: False
    return lambda: bool(state.abandoned)


def _disk_hint(target: Path) -> str:
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(target.parent if str(target.parent) else ".").free
        if free < 64 << 20:
            return f" (the disk holding {target.parent} has {free / 2**20:.1f} MiB free)"
    return ""


def _blame_output(exc: BaseException, target: Path) -> BaseException:
    """Errors of file libraries while writing (``OSError``, ``RuntimeError`` such as "NetCDF: HDF
    error"), restated with the output path and, when the disk is nearly full, its free space."""
    if isinstance(exc, (PermissionError, FileNotFoundError, FileExistsError)):
        return exc
    if not isinstance(exc, (OSError, RuntimeError)):
        return exc
    if not isinstance(exc, OSError) and not _LIBRARY_ERROR.search(str(exc)):
        return exc  # a model or computation error raised while lazy data were written
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if str(target) in msg:
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on the device"
        err = OSError(f"cannot write {target}: {what}{_disk_hint(target)}; nothing was written")
        err.errno = exc.errno
        return err
    cls = OSError if isinstance(exc, OSError) else RuntimeError
    return cls(f"cannot write {target}: {msg}{_disk_hint(target)}; nothing was written")


def write_atomic(
    target: str | Path,
    writer: Callable[[Path], None],
    *,
    sources: Sequence[str | Path] = (),
    overwrite: bool = True,
    directory_store: bool = False,
) -> Path:
    """Write ``target`` through ``writer(tmp)`` with every safety rule of this module.

    From the main thread the writer runs in a helper thread and the main thread waits for it,
    so Ctrl-C is raised at once even while a file library is busy; the helper thread then
    finishes (or fails) on its own and removes the abandoned temporary output. The swap onto
    ``target`` happens only for a complete, non-abandoned write. The helper thread runs in a
    copy of the caller's ``contextvars`` context; thread-local settings (``rasterio.Env``) do
    not follow it, so GDAL options belong in the environment or the writer's arguments.

    Args:
        target: Output path.
        writer: Writes the complete output at the path it is given.
        sources: Inputs that the output may not be, contain or lie inside.
        overwrite: Allow replacing a previous output.
        directory_store: The format is a directory store (Zarr).

    Returns:
        ``target``.

    Raises:
        OutputError, FileExistsError, FileNotFoundError, PermissionError: See
            :func:`check_output_path`.
        OSError: The writer failed for a reason of the file system or library (the message
            names ``target``; nothing is left behind).
    """
    target = Path(target)
    check_output_path(target, sources=sources, overwrite=overwrite, directory_store=directory_store)
    remove_stale_temps(target.parent if str(target.parent) else Path("."))
    tmp = temp_path(target)
    state = _WriteState()
    token = interrupts.track(tmp, remove_path, state.done)
    own_thread = threading.current_thread() is threading.main_thread()  # the writer gets a thread

    def job() -> None:
        _CURRENT.state = state
        try:
            try:
                writer(tmp)
            except BaseException:
                _finish_thread_dask_pools(cancel=True)
                raise
            if not (tmp.exists() or tmp.is_symlink()):
                raise RuntimeError(f"the writer produced no output for {target}")
            interrupts.slow_write_hook()
            with state.lock:
                if state.abandoned:
                    raise KeyboardInterrupt
                state.committing = True
            _swap_into_place(tmp, target)
        except BaseException as exc:
            state.error = exc
            remove_path(tmp)
        finally:
            _CURRENT.state = None
            interrupts.untrack(token)
            if own_thread:  # this thread ends now: release its dask pool at once
                _finish_thread_dask_pools(cancel=False)
            state.done.set()

    if own_thread:
        context = contextvars.copy_context()  # the writer sees the caller's context variables
        thread = threading.Thread(
            target=context.run, args=(job,), name=f"scisr-write-{target.name}", daemon=True
        )
        thread.start()
        try:
            while not state.done.wait(0.1):
                pass
        except BaseException:
            with state.lock:
                if not state.committing:
                    state.abandoned = True
            if not state.abandoned:
                state.done.wait()
            raise
    else:
        job()
    if state.error is not None:
        err = _blame_output(state.error, target)
        if err is state.error:
            raise err
        raise err from state.error
    return target
