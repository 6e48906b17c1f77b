"""What kind of data a call super-resolves, read from its format and metadata (for ``model="auto"``).

The kinds are the tags of domain weights (:data:`sciSR.models.catalog.DOMAIN_TAGS`):

* ``"mri"``: anything read by the NIfTI adapter;
* ``"precip"``: CF ``standard_name`` containing ``precipitation`` or ``rainfall`` or starting with
  ``lwe_``; variable names ``pr``, ``precip``, ``prcp``, ``tp``, ``rain``...; precipitation units
  (``kg m-2 s-1``, ``kg m-2``, ``mm``, ``mm/h``, ``mm day-1``...);
* ``"temperature"``: ``standard_name`` containing ``temperature``; names ``tas``, ``t2m``, ``air``,
  ``temp``...; units ``K`` or degrees Celsius;
* ``"dem"``: ``standard_name`` ``height_above_*``, ``surface_altitude``, ``altitude``; names
  ``elevation``, ``elev``, ``dem``, ``topo``, ``z``, ``height``, ``orog``...; a long name mentioning
  elevation, relief or topography; metres on a single-band GeoTIFF.

Evidence per variable, strongest first: ``standard_name`` (a CF name outside these lists means
none of them: ``northward_wind`` is no DEM whatever its variable is called), then the variable name,
then ``long_name``, then units alone. A name or long name only counts when the units, if any,
agree with the kind (``z`` in ``m2 s-2`` is geopotential, not elevation). All downscaled variables
must agree; variables of different kinds give no domain.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

#: Variable names (lower case) per kind.
NAMES: dict[str, frozenset[str]] = {
    "precip": frozenset({"pr", "precip", "prcp", "tp", "rain", "precipitation", "rainfall", "apcp", "prate"}),
    "temperature": frozenset({"tas", "t2m", "air", "temp", "temperature", "tasmax", "tasmin", "t2"}),
    "dem": frozenset({"elevation", "elev", "dem", "topo", "z", "height", "orog", "orography", "topography"}),
}
#: Long-name keywords per kind.
LONG_NAMES: dict[str, re.Pattern[str]] = {
    "precip": re.compile(r"precipitation|rainfall", re.I),
    "temperature": re.compile(r"temperature", re.I),
    "dem": re.compile(r"elevation|relief|topograph|orograph|altitude|terrain", re.I),
}
#: Units (normalized: lower case, no spaces, ``^``/``**`` removed) that identify a kind on their own.
UNITS: dict[str, frozenset[str]] = {
    "precip": frozenset(
        {
            "kgm-2s-1", "kg/m2/s", "kg/m2s", "kgm-2", "kg/m2", "mm", "mm/h", "mmh-1", "mm/hr", "mmhr-1",
            "mm/day", "mmday-1", "mm/d", "mmd-1",
        }
    ),
    "temperature": frozenset(
        {"k", "kelvin", "degc", "degreec", "degreesc", "degreecelsius", "degreescelsius", "celsius", "°c"}
    ),
}  # fmt: skip
#: Further units a name or long name of the kind may carry.
COMPATIBLE_UNITS: dict[str, frozenset[str]] = {
    "precip": UNITS["precip"] | {"m", "ms-1", "m/s", "in", "inches"},
    "temperature": UNITS["temperature"] | {"degf", "degreesf", "fahrenheit", "°f"},
    "dem": frozenset({"m", "meter", "meters", "metre", "metres", "km", "ft", "feet"}),
}
#: Metres: a DEM only on a single-band GeoTIFF (a NetCDF variable in metres may be anything).
METRES = COMPATIBLE_UNITS["dem"] - {"km", "ft", "feet"}


def _units(value: Any) -> str:
    u = str(value).lower().replace("**", "").replace("^", "").replace("_", "")
    return re.sub(r"\s+", "", u)


def _by_standard_name(sn: str) -> str | None:
    if "precipitation" in sn or "rainfall" in sn or sn.startswith("lwe_"):
        return "precip"
    if "temperature" in sn:
        return "temperature"
    if sn.startswith("height_above_") or sn in ("surface_altitude", "altitude", "bedrock_altitude"):
        return "dem"
    return None


def variable_domain(
    name: Hashable | None, attrs: Mapping[Hashable, Any], single_band_geotiff: bool = False
) -> tuple[str | None, str]:
    """The kind of one variable and the evidence: ``("precip", "standard_name precipitation_flux")``.

    Returns:
        ``(kind or None, evidence)``.
    """
    sn = str(attrs.get("standard_name") or "").strip().lower()
    units = _units(attrs.get("units", "")) if attrs.get("units") is not None else ""
    if sn:
        kind = _by_standard_name(sn)
        return kind, f"standard_name {sn}"
    fits = {k: (not units or units in COMPATIBLE_UNITS[k]) for k in COMPATIBLE_UNITS}
    lname = str(name).lower() if name is not None else ""
    for kind, names in NAMES.items():
        if lname in names and fits[kind]:
            return kind, f"variable {name!r}" + (f" in {attrs.get('units')}" if units else "")
    long_name = str(attrs.get("long_name") or "")
    for kind, pattern in LONG_NAMES.items():
        if long_name and pattern.search(long_name) and fits[kind]:
            return kind, f"long_name {long_name!r}"
    for kind, known in UNITS.items():
        if units in known:
            return kind, f"units {attrs.get('units')}"
    if single_band_geotiff and units in METRES:
        return "dem", f"single-band GeoTIFF in {attrs.get('units')}"
    return None, f"variable {name!r}" if name is not None else "no metadata"


def detect_domain(
    ds: Any,
    adapter: str | None = None,
    variables: str | Iterable[Hashable] | None = None,
    spatial_dims_of: Callable[[Any], Any] | None = None,
) -> tuple[str | None, str]:
    """The kind of data an xarray Dataset holds, from its format and its variables' metadata.

    Args:
        ds: ``xr.Dataset`` as opened by an adapter (or built from a DataArray).
        adapter: Name of the adapter that read it (``"nifti"``, ``"geotiff"``...).
        variables: The variables the call downscales (default: those with spatial dims).
        spatial_dims_of: The adapter's spatial-dims finder (to pick the default variables; default
            :func:`sciSR.grid.find_spatial_dims`).

    Returns:
        ``(kind or None, evidence)``; see the module docstring for the rule.
    """
    if adapter == "nifti":
        return "mri", "NIfTI volume"
    if adapter == "image":
        return None, "image file"
    names = _selected(ds, variables, spatial_dims_of)
    if not names:
        return None, "no data variable"
    found: dict[Hashable, tuple[str | None, str]] = {}
    for n in names:
        var = ds[n]
        single = adapter == "geotiff" and int(var.sizes.get("band", 1)) == 1
        shown = None if str(n).startswith("__scisr") else n
        found[n] = variable_domain(shown, var.attrs, single)
    kinds = {k for k, _ in found.values()}
    if len(kinds) == 1:
        kind = next(iter(kinds))
        return kind, "; ".join(ev for _, ev in found.values())
    listed = ", ".join(f"{n}: {k or 'unknown'}" for n, (k, _) in found.items())
    return None, f"variables of different kinds ({listed})"


def _selected(ds: Any, variables: Any, spatial_dims_of: Callable[[Any], Any] | None) -> list[Hashable]:
    if isinstance(variables, str):
        return [variables] if variables in ds.data_vars else []
    if variables is not None:
        return [v for v in variables if v in ds.data_vars]
    try:
        from ..grid import find_spatial_dims
        from ..io.xarray_core import select_variables

        return list(select_variables(ds, None, spatial_dims_of or find_spatial_dims))
    except (ValueError, TypeError, KeyError):
        pass
    return [n for n, v in ds.data_vars.items() if v.ndim >= 2 and v.dtype.kind in "fiu"]
