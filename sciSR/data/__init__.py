"""Small real sample files shipped with sciSR (sources and licences in ``samples/PROVENANCE.md``).

>>> import sciSR
>>> "etopo5_alps.tif" in sciSR.data.list_samples()
True
>>> ds = sciSR.open(sciSR.data.sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))

=================================  ===================================================================
sample                             what
=================================  ===================================================================
``cmip5_tas_mpi-esm-lr_2005.nc``   CMIP5 MPI-ESM-LR monthly near-surface air temperature ``tas`` (K),
                                   3 months × 96 × 192, global T63 Gaussian grid with bounds, NetCDF3
``coads_sst_climatology.nc``       COADS sea-surface temperature climatology ``SST`` (°C), 3 months ×
                                   90 × 180, 2° global, land missing (``_FillValue``), undecodable times
``etopo5_alps.tif``                ETOPO5 relief (m), 96 × 128 cells of 5′, western Alps, EPSG:4326,
                                   int16 GeoTIFF
``ladybird_crop.png``              256 × 256 RGB photo crop (8 bit)
``mni152_t1_slab.nii.gz``          MNI152 2009a T1 template, 197 × 233 × 10 axial slab, 1 mm, RAS+
=================================  ===================================================================

The paths point inside the installed package: read them, never write next to them.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).with_name("samples")


def list_samples() -> list[str]:
    """Names of the shipped sample files, sorted (provenance notes excluded)."""
    return sorted(p.name for p in SAMPLES.iterdir() if not p.name.startswith(".") and p.suffix != ".md")


def sample_path(name: str) -> Path:
    """Absolute path of a shipped sample file.

    Args:
        name: File name, one of :func:`list_samples`.

    Returns:
        The path inside the installed package (read-only use).

    Raises:
        FileNotFoundError: No such sample (the message lists the available ones).
    """
    p = SAMPLES / name
    if not name or "/" in name or "\\" in name or not p.is_file() or name.endswith(".md"):
        raise FileNotFoundError(f"no sample named {name!r}; available: {', '.join(list_samples())}")
    return p
