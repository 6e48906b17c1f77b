"""Small helpers shared by the domain recipes (``recipes/dem``, ``recipes/hydrology``): config and data.

Public sciSR API only (``sciSR.open``, ``sciSR.data.sample_path``); the recipes import this file by
adding ``recipes/evaluate`` to ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import sciSR

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def load_config(path: Path) -> dict[str, Any]:
    """The TOML config at ``path``.

    Raises:
        SystemExit: The file is missing.
    """
    if not path.is_file():
        raise SystemExit(f"config {path} not found; pass --config PATH_TO.toml")
    with open(path, "rb") as f:
        return tomllib.load(f)


def resolve(spec: str, base: Path) -> Path:
    """A data path: ``sample:NAME`` (a shipped sample), else ``~``-expanded, relative to ``base``."""
    if spec.startswith("sample:"):
        return Path(sciSR.data.sample_path(spec.split(":", 1)[1]))
    p = Path(os.path.expanduser(spec))
    return p if p.is_absolute() else (base / p)


def open_window(spec: str, base: Path, window: dict[str, list[int]] | None = None) -> Any:
    """The dataset at ``spec`` (``sciSR.open``), cut to index ranges ``{dim: [start, stop]}``.

    Raises:
        SystemExit: Missing file or a window dim the file lacks.
    """
    path = resolve(spec, base)
    if not path.exists():
        raise SystemExit(f"{path} not found; fix the path in the config")
    ds = sciSR.open(path)
    for dim, (a, b) in (window or {}).items():
        if dim not in ds.dims:
            raise SystemExit(f"{path}: window dim {dim!r} is not one of {tuple(ds.dims)}")
        ds = ds.isel({dim: slice(int(a), int(b))})
    return ds.load()


def pick_variable(ds: Any, variable: str | None, path: str) -> str:
    """``variable``, or the only data variable with two or more dims.

    Raises:
        SystemExit: No such variable, or several candidates and none named.
    """
    if variable is not None:
        if variable not in ds.data_vars:
            raise SystemExit(f"{path}: no variable {variable!r}; it has {list(ds.data_vars)}")
        return variable
    names = [v for v in ds.data_vars if ds[v].ndim >= 2]
    if len(names) != 1:
        raise SystemExit(f"{path}: variables {names}; set `variable` in the config")
    return names[0]


def model_spec(spec: str) -> Any:
    """``"rcan"`` or ``"rcan:dem"`` (a model with a shipped weights tag) as ``sciSR.evaluate`` takes it."""
    name, _, tag = spec.partition(":")
    return (name, {"weights": tag}) if tag else name


def relabel(rep: Any, old: str, new: str) -> None:
    """Rename method ``old`` to ``new`` in a ``sciSR.evaluate`` report (table, roles, figure data).

    ``sciSR.evaluate`` labels a ``torch.nn.Module`` by its class name; the recipes name the
    fine-tuned network ``<model>[finetuned]`` instead.
    """
    ren = {old: new}
    rep.table = rep.table.rename(index=ren, level="method")
    rep.roles = {ren.get(k, k): v for k, v in rep.roles.items()}
    rep.config["methods"] = [ren.get(m, m) for m in rep.config["methods"]]
    rep.config["roles"] = rep.roles
    for res in rep.results.values():
        res.outputs = {ren.get(k, k): v for k, v in res.outputs.items()}
        res.spectra = {ren.get(k, k): v for k, v in res.spectra.items()}
        res.quantiles = {ren.get(k, k): v for k, v in res.quantiles.items()}
