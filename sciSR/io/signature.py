"""What a file really is, from its first bytes (its signature), independent of its name.

Adapters are chosen by extension first (:func:`sciSR.io.base.adapter_for_path`); the signature
then confirms the choice or overrides it. A NetCDF file named ``.tif`` would otherwise be read
through GDAL, which loses its CF coordinates, calendar and CRS without a word.

Recognised signatures (one registry entry each, tried in order):

========== ================================================ ===========
adapter    signature                                         what
========== ================================================ ===========
netcdf     ``CDF\\x01`` / ``CDF\\x02`` / ``CDF\\x05``          NetCDF-3 classic / 64-bit offset / CDF-5
netcdf     ``\\x89HDF\\r\\n\\x1a\\n`` at offset 0, 512, 1024...  HDF5 (NetCDF-4)
geotiff    ``II*\\0`` / ``MM\\0*`` / ``II+\\0`` / ``MM\\0+``       TIFF / BigTIFF
nifti      ``sizeof_hdr`` 348 + magic ``n+1``/``ni1``        NIfTI-1 (also gzip-compressed)
nifti      ``sizeof_hdr`` 540 + magic ``n+2``/``ni2``        NIfTI-2 (also gzip-compressed)
image      ``\\x89PNG``, ``\\xff\\xd8\\xff``, ``BM``, ``RIFF....WEBP`` PNG, JPEG, BMP, WebP
zarr       a directory holding ``zarr.json``/``.zgroup``/``.zattrs``/``.zarray`` Zarr v3 / v2 store
========== ================================================ ===========

Anything else (text, random bytes, a truncated header, an empty file) is "unknown": the adapter
picked by the extension then reports the read error.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ZARR_MARKERS", "FormatMismatchWarning", "Signature", "is_zarr_store", "sniff"]

#: Files whose presence makes a directory a Zarr store (v3 and v2 layouts).
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zarray")
#: Bytes read from the start of a file (enough for a NIfTI-2 header).
HEAD_BYTES = 4096
#: HDF5 superblocks may follow a user block of 512·2^k bytes.
_HDF5_OFFSETS = (0, 512, 1024, 2048)
_HDF5 = b"\x89HDF\r\n\x1a\n"


class FormatMismatchWarning(UserWarning):
    """A file's content is in another format than its extension says; it is read by its content."""


@dataclass(frozen=True)
class Signature:
    """A recognised file content.

    Attributes:
        adapter: Registry name of the adapter that reads it (``"netcdf"``, ``"geotiff"``...).
        what: Human-readable name of the content (``"NetCDF-3 classic"``).
    """

    adapter: str
    what: str


def is_zarr_store(path: str | Path) -> bool:
    """True when ``path`` is a directory carrying Zarr metadata (v3 ``zarr.json`` or v2 ``.zgroup``...)."""
    p = Path(path)
    return p.is_dir() and any((p / m).is_file() for m in ZARR_MARKERS)


def _netcdf3(head: bytes) -> str | None:
    kinds = {1: "NetCDF-3 classic", 2: "NetCDF-3 64-bit offset", 5: "NetCDF-3 CDF-5"}
    return kinds.get(head[3]) if head[:3] == b"CDF" and len(head) >= 4 else None


def _hdf5(head: bytes) -> str | None:
    return "HDF5/NetCDF-4" if any(head[o : o + 8] == _HDF5 for o in _HDF5_OFFSETS) else None


def _tiff(head: bytes) -> str | None:
    return {b"II*\0": "TIFF", b"MM\0*": "TIFF", b"II+\0": "BigTIFF", b"MM\0+": "BigTIFF"}.get(head[:4])


def _nifti_header(head: bytes) -> str | None:
    if len(head) < 12:
        return None
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348 and head[344:347] in (b"n+1", b"ni1") and head[347:348] == b"\0":
            return "NIfTI-1"
        if size == 540 and head[4:7] in (b"n+2", b"ni2") and head[7:8] == b"\0":
            return "NIfTI-2"
    return None


def _nifti(head: bytes, path: Path) -> str | None:
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as f:
                inner = f.read(544)
        except (OSError, EOFError, zlib.error):
            return None
        what = _nifti_header(inner)
        return f"gzip-compressed {what}" if what else None
    return _nifti_header(head)


def _image(head: bytes) -> str | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    bmp_headers = (12, 40, 52, 56, 108, 124)  # BITMAPCOREHEADER ... BITMAPV5HEADER sizes
    if head[:2] == b"BM" and len(head) >= 26 and struct.unpack("<I", head[14:18])[0] in bmp_headers:
        return "BMP"
    return None


#: (adapter name, test of the first bytes) in the order they are tried.
_FILE_SIGNATURES: list[tuple[str, Callable[[bytes, Path], str | None]]] = [
    ("netcdf", lambda head, _p: _netcdf3(head)),
    ("netcdf", lambda head, _p: _hdf5(head)),
    ("geotiff", lambda head, _p: _tiff(head)),
    ("nifti", _nifti),
    ("image", lambda head, _p: _image(head)),
]


def sniff(path: str | Path) -> Signature | None:
    """The format of ``path`` from its content, or ``None`` when it is not recognised.

    Args:
        path: A file, or a directory (recognised when it is a Zarr store).

    Returns:
        The matching :class:`Signature`; ``None`` for unknown, empty or unreadable content.
    """
    p = Path(path)
    if p.is_dir():
        if not is_zarr_store(p):
            return None
        return Signature("zarr", "Zarr v3 store" if (p / "zarr.json").is_file() else "Zarr v2 store")
    try:
        with open(p, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return None
    for adapter, test in _FILE_SIGNATURES:
        what = test(head, p)
        if what:
            return Signature(adapter, what)
    return None
