"""Write failures of file libraries, stated plainly: a full disk, and GDAL's stderr chatter.

netCDF-C reports a full disk as "NetCDF: HDF error" and GDAL as "Write failed. See previous
exception", while libtiff prints its own ``_tiffWriteProc: No space left on device.`` lines
straight to the process's stderr (file descriptor 2, past Python and GDAL's error handlers).
:func:`disk_full_as_oserror` turns such failures into ``OSError(ENOSPC)`` when the output's disk
is (nearly) full, and :func:`quiet_libtiff` keeps the libtiff lines off the terminal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

#: free bytes below which a failed write is reported as a full disk
DISK_FULL_BYTES = 64 << 20
#: lines libtiff prints on I/O errors (dropped while :func:`quiet_libtiff` is active)
_LIBTIFF_LINE = re.compile(rb"^(_tiff\w+Proc|TIFF\w+|\w+\.tif\w*): .*$")
_FD_LOCK = threading.RLock()


@contextlib.contextmanager
def disk_full_as_oserror(path: str | Path) -> Iterator[None]:
    """Restate an ``OSError``/``RuntimeError`` raised inside as ``OSError(ENOSPC)`` when the disk
    beside ``path`` has less than :data:`DISK_FULL_BYTES` free (chained to the original error).

    Raises:
        OSError: ``errno.ENOSPC`` "No space left on device".
    """
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        p = Path(path)
        try:
            free = shutil.disk_usage(p.parent if str(p.parent) else ".").free
        except OSError:
            raise exc from None
        if free < DISK_FULL_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from exc
        raise


@contextlib.contextmanager
def quiet_libtiff() -> Iterator[None]:
    """Drop libtiff's error lines from file descriptor 2 for the duration of the block.

    The descriptor is pointed at a temporary file meanwhile; afterwards every other line written
    there (by any thread) is copied to the real stderr, so nothing else is lost. Nested and
    concurrent uses share one redirection.
    """
    with _FD_LOCK:
        _Redirect.enter()
    try:
        yield
    finally:
        with _FD_LOCK:
            _Redirect.exit()


class _Redirect:
    depth = 0
    saved: int | None = None
    tmp: tempfile._TemporaryFileWrapper | None = None  # type: ignore[type-arg]

    @classmethod
    def enter(cls) -> None:
        cls.depth += 1
        if cls.depth > 1:
            return
        try:
            sys.stderr.flush()
            cls.tmp = tempfile.TemporaryFile()  # noqa: SIM115 (open for the whole redirection)
            cls.saved = os.dup(2)
            os.dup2(cls.tmp.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded interpreters)
            cls._close()

    @classmethod
    def exit(cls) -> None:
        cls.depth -= 1
        if cls.depth > 0 or cls.saved is None or cls.tmp is None:
            if cls.depth == 0:
                cls._close()
            return
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        os.dup2(cls.saved, 2)
        cls.tmp.seek(0)
        kept = [ln for ln in cls.tmp.read().splitlines(keepends=True) if not _LIBTIFF_LINE.match(ln.rstrip())]
        if kept:
            with contextlib.suppress(OSError):
                os.write(2, b"".join(kept))
        cls._close()

    @classmethod
    def _close(cls) -> None:
        if cls.saved is not None:
            with contextlib.suppress(OSError):
                os.close(cls.saved)
        if cls.tmp is not None:
            cls.tmp.close()
        cls.saved, cls.tmp = None, None
