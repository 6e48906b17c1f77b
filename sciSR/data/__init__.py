"""Small real sample files shipped with sciSR (see ``samples/PROVENANCE.md`` for sources and licences).

>>> from sciSR.data import sample_path
>>> sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))
"""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).with_name("samples")


def list_samples() -> list[str]:
    """Names of the shipped sample files (provenance notes excluded)."""
    return sorted(p.name for p in SAMPLES.iterdir() if not p.name.startswith(".") and p.suffix != ".md")


def sample_path(name: str) -> Path:
    """Path of a shipped sample file.

    Raises:
        FileNotFoundError: No such sample (lists the available ones).
    """
    p = SAMPLES / name
    if not p.exists() or name.endswith(".md"):
        raise FileNotFoundError(f"no sample named {name!r}; available: {', '.join(list_samples())}")
    return p
