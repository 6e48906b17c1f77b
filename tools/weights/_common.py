"""What every weight converter shares: its error type, file hashes and the reserved held-out photos.

The reserved photos are those of ``recipes/pretrain/evaluate_heldout.py`` (Debian
``libjxl-testdata``), so converted and trained weights are scored on the same images.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(REPO))

from sciSR.models.catalog import file_sha256 as sha256  # noqa: E402  (hex sha256 of a file)

__all__ = ["PHOTOS", "ConversionError", "fetch_heldout", "sha256"]


class ConversionError(RuntimeError):
    """A step of the conversion failed; the message is one line naming the problem and the fix."""


def _heldout_photos() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location(
        "evaluate_heldout", REPO / "recipes" / "pretrain" / "evaluate_heldout.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return tuple(mod.PHOTOS)


#: Reserved photos (paths inside the extracted ``libjxl-testdata`` package).
PHOTOS: tuple[str, ...] = _heldout_photos()


def fetch_heldout(root: Path, hint: str = "pass --heldout DIR") -> Path:
    """The extracted ``libjxl-testdata`` package at ``root`` (``apt-get download`` + ``dpkg-deb -x`` once).

    Args:
        root: Where the package is (or is to be) extracted.
        hint: The converter's own way around a missing package, for the error message.

    Raises:
        ConversionError: No apt-get/dpkg-deb, or the package cannot be downloaded or extracted.
    """
    if all((root / p).is_file() for p in PHOTOS):
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ConversionError(
            f"the held-out photos need apt-get and dpkg-deb (Debian libjxl-testdata); {hint}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            ["apt-get", "download", "-qq", "libjxl-testdata"], cwd=tmp, capture_output=True, text=True
        )
        debs = sorted(Path(tmp).glob("libjxl-testdata_*.deb"))
        if run.returncode != 0 or not debs:
            why = (run.stderr.strip().splitlines() or ["no .deb written"])[-1]
            raise ConversionError(
                f"cannot fetch the held-out photos (apt-get download libjxl-testdata: {why}); {hint}"
            )
        staging = Path(tmp) / "x"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(staging)], check=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.move(str(staging), root)
    return root
