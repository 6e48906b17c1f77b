"""Precipitation ×4: orography covariate, softmax constraint, fine-tune, score against baselines, CF NetCDF.

Steps (public API only, plus scipy for the orography regridding):

1. Read NCEP Stage IV hourly precipitation (``[data] path``; training pool: hurricane Florence,
   23 h × 118 × 87 on a 4 km polar-stereographic grid with 2-D ``lat``/``lon``), crop the grid to
   multiples of the scale, and split the hours: ``train_hours`` (0–15) for fine-tuning,
   ``evaluate_hours`` (16–22, reserved evaluation data) for scoring only.
2. Orography covariate: ETOPO5 (``[orography] path``, 5′ global relief, ascending latitude,
   longitude 0…360) interpolated **bilinearly** onto the 2-D ``lat``/``lon`` of every HR Stage IV
   cell (``scipy.interpolate.RegularGridInterpolator`` on the ETOPO5 lat/lon axes, Stage IV
   longitudes taken modulo 360), sea floor set to 0 m (``clip_below``): a 5′ (≈ 9 km) source on a
   4 km grid, so the covariate is smoother than the HR grid but far finer than the 16 km LR grid.
3. ``sciSR.finetune`` of each configured experiment (``[[experiments]]``: with/without the
   ``orog`` covariate, with/without ``constraint="softmax"``) from the configured start weights
   (``rcan`` ``weights="precip"`` by default; ``""`` = natural-photo ``rcan``) on the training
   hours, block-mean (``area``) coarsening, weights written to ``OUT/<experiment>.safetensors``.
4. ``sciSR.evaluate`` on the evaluation hours: the baseline ladder, the shipped model(s) of
   ``[evaluate] models`` and every experiment (covariate passed where the weights were trained
   with it), report in ``OUT/report``; with ``[evaluate] inference_constraint`` a second report
   (``OUT/report_<constraint>_at_inference``) scores the shipped model and the experiments trained
   without a constraint with the layer applied at inference only (``softmax`` on weights trained
   without it uses the log of the output as logits, which equals ``mult``).
5. ``sciSR.downscale`` of the block-mean LR of the evaluation hours with the ``[output] experiment``
   (and ``[output] constraint`` at inference, if set) and ``sciSR.write`` to
   ``OUT/stageiv_precip_x4.nc`` (CF NetCDF).

``OUT/summary.json`` lists the RMSE (mm/h) of every method on the evaluation hours and the
consistency error of the constrained outputs. The defaults finish in about five minutes on 2 CPU
cores; ``precipitation_smoke.toml`` runs in seconds (tests).

Usage:
    python recipes/hydrology/precipitation.py --config recipes/hydrology/precipitation.toml --out runs/pr
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))

from recipe_tools import load_config, relabel, resolve

import sciSR


def open_stageiv(path: Path, variable: str, scale: int) -> Any:
    """The Stage IV variable as a Dataset, its ``y``/``x`` cropped to multiples of ``scale``.

    Raises:
        SystemExit: A missing file or variable.
    """
    import xarray as xr

    if not path.is_file():
        raise SystemExit(f"{path} not found; run shared/tools/fetch-training-pool.sh or fix [data] path")
    ds = xr.open_dataset(path)
    if variable not in ds.data_vars:
        raise SystemExit(f"{path}: no variable {variable!r}; it has {list(ds.data_vars)}")
    da = ds[variable]
    ydim, xdim = da.dims[-2:]
    h, w = (da.sizes[ydim] // scale) * scale, (da.sizes[xdim] // scale) * scale
    return ds[[variable]].isel({ydim: slice(0, h), xdim: slice(0, w)}).load()


def orography_on(ds: Any, variable: str, cfg: dict[str, Any], base: Path) -> Any:
    """ETOPO5 relief interpolated bilinearly onto the 2-D ``lat``/``lon`` of the HR grid of ``ds``.

    Returns:
        ``xr.DataArray`` (metres) with the spatial dims of ``ds[variable]``.
    """
    import xarray as xr
    from scipy.interpolate import RegularGridInterpolator

    path = resolve(cfg["path"], base)
    if not path.is_file():
        raise SystemExit(f"{path} not found; run shared/tools/fetch-training-pool.sh or fix [orography] path")
    lat2, lon2 = np.asarray(ds["lat"].values, np.float64), np.asarray(ds["lon"].values, np.float64) % 360.0
    with xr.open_dataset(path) as e:
        z = e[cfg.get("variable", "ROSE")]
        ydim, xdim = z.dims
        ey, ex = np.asarray(e[ydim].values), np.asarray(e[xdim].values)
        pad = 0.5  # degrees around the domain
        iy = np.where((ey >= lat2.min() - pad) & (ey <= lat2.max() + pad))[0]
        ix = np.where((ex >= lon2.min() - pad) & (ex <= lon2.max() + pad))[0]
        box = np.asarray(z.isel({ydim: slice(iy[0], iy[-1] + 1), xdim: slice(ix[0], ix[-1] + 1)}).values)
    interp = RegularGridInterpolator((ey[iy[0] : iy[-1] + 1], ex[ix[0] : ix[-1] + 1]), box.astype(np.float64))
    orog = interp(np.stack([lat2.ravel(), lon2.ravel()], axis=-1)).reshape(lat2.shape)
    if cfg.get("clip_below") is not None:
        orog = np.maximum(orog, float(cfg["clip_below"]))
    dims = ds[variable].dims[-2:]
    attrs = {"long_name": "surface elevation (ETOPO5, bilinear onto the HR grid)", "units": "m"}
    return xr.DataArray(orog.astype(np.float32), dims=dims, attrs=attrs)


def consistency(hr: np.ndarray, lr: np.ndarray, scale: int) -> float:
    """Max |block mean(hr) − lr| / max |lr| over valid cells.

    Shape:
        ``(T, s·h, s·w), (T, h, w) -> scalar``.
    """
    t, hh, ww = hr.shape
    back = hr.reshape(t, hh // scale, scale, ww // scale, scale).mean(axis=(2, 4))
    ok = np.isfinite(back) & np.isfinite(lr)
    return float(np.abs(back - lr)[ok].max() / max(np.abs(lr[ok]).max(), 1e-12))


def main(argv: list[str] | None = None) -> Path:
    """Run the recipe; returns the output folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path(__file__).with_name("precipitation.toml"))
    ap.add_argument("--out", type=Path, required=True, help="output folder (created)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    base = args.config.resolve().parent
    data, mcfg, ecfg = cfg["data"], cfg["model"], cfg.get("evaluate", {})
    ft = dict(cfg.get("finetune", {}))
    scale = int(mcfg.get("scale", 4))
    name, start = mcfg["name"], (mcfg.get("weights") or None)
    var = data["variable"]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    ds = open_stageiv(resolve(data["path"], base), var, scale)
    tdim = ds[var].dims[0]
    ds[var].attrs.setdefault("units", "mm/h")  # kg m-2 over one hour
    tr, ev = data["train_hours"], data["evaluate_hours"]
    if int(tr[1]) > int(ev[0]):
        raise SystemExit(f"train_hours {tr} overlap evaluate_hours {ev}; evaluation hours are held out")
    window = data.get("window")  # optional {dim: [start, stop]} spatial cut (smoke runs)
    if window:
        ds = ds.isel({d: slice(int(a), int(b)) for d, (a, b) in window.items()})
    train = ds.isel({tdim: slice(int(tr[0]), int(tr[1]))})
    truth = ds.isel({tdim: slice(int(ev[0]), int(ev[1]))})
    orog = orography_on(ds, var, cfg["orography"], base)
    covs = {"orog": orog}

    trained: dict[str, dict[str, Any]] = {}
    for exp in cfg["experiments"]:
        label = exp["name"]
        kw = dict(ft)
        if exp.get("constraint"):
            kw["constraint"] = exp["constraint"]
        if exp.get("covariate"):
            kw["covariates"] = covs
        path = out / f"{label}.safetensors"
        t1 = time.perf_counter()
        sciSR.finetune(
            name,
            train[var],
            scale=scale,
            weights=start,
            out=path,
            progress=False,
            metadata={
                "scisr_recipe": "recipes/hydrology/precipitation.py",
                "training_data": f"{data['path']} {var} hours {tr[0]}-{tr[1] - 1}",
            },
            **kw,
        )
        trained[label] = {
            "weights": path,
            "covariate": bool(exp.get("covariate")),
            "constraint": exp.get("constraint") or "",
            "seconds": round(time.perf_counter() - t1, 1),
        }

    shipped = list(ecfg.get("models", []))
    runs = {"report": ("", list(trained))}
    cons = ecfg.get("inference_constraint")
    if cons:  # the same networks with the layer applied at inference only (weights trained without it)
        runs[f"report_{cons}_at_inference"] = (cons, [k for k, t in trained.items() if not t["constraint"]])
    rmse: dict[str, float] = {}
    reports = {}
    for folder, (constraint, labels) in runs.items():
        models: list[Any] = []
        rename: dict[str, str] = {}
        suffix = f"+{constraint}@inference" if constraint else ""
        for m in shipped:
            spec = {"weights": m["weights"]} if m.get("weights") else {}
            if constraint:
                spec["constraint"] = constraint
            models.append((m["name"], spec))
            rename[f"{m['name']}[{m['weights']}]" if m.get("weights") else m["name"]] = (
                m["name"] + (f"[{m['weights']}]" if m.get("weights") else "") + suffix
            )
        for label in labels:
            t = trained[label]
            spec = {"weights": str(t["weights"])}
            if t["covariate"]:
                spec["covariates"] = covs
            if constraint:
                spec["constraint"] = constraint
            models.append((name, spec))
            rename[f"{name}[{t['weights']}]"] = label + suffix
        rep = sciSR.evaluate(
            truth,
            scale=scale,
            models=models,
            variables=[var],
            degradation="area",
            weights=ecfg.get("weights", "none"),
            precision="fp32",
            progress=False,
        )
        for old, new in rename.items():
            if old != new:
                relabel(rep, old, new)
        reports[folder] = str(rep.save(out / folder))
        for k, v in rep.table["rmse"].droplevel(0).items():
            rmse.setdefault(str(k), float(v))  # baselines: identical in every report

    lr = truth.coarsen({d: scale for d in truth[var].dims[-2:]}).mean()
    lr[var].attrs = dict(truth[var].attrs)
    ocfg = cfg.get("output", {})
    pick = ocfg.get("experiment") or next(iter(trained))
    t = trained[pick]
    extra: dict[str, Any] = {"covariates": covs} if t["covariate"] else {}
    if ocfg.get("constraint"):
        extra["constraint"] = ocfg["constraint"]
    hr = sciSR.downscale(lr, model=name, weights=str(t["weights"]), scale=scale, precision="fp32", **extra)
    dst = sciSR.write(hr, out / f"stageiv_precip_x{scale}.nc")
    summary = {
        "config": str(args.config),
        "variable": var,
        "train_hours": tr,
        "evaluate_hours": ev,
        "experiments": {k: {**v, "weights": str(v["weights"])} for k, v in trained.items()},
        "reports": reports,
        "downscaled": str(dst),
        "downscaled_experiment": pick,
        "downscaled_constraint_at_inference": extra.get("constraint", ""),
        "downscaled_consistency": consistency(np.asarray(hr[var].values), np.asarray(lr[var].values), scale),
        "rmse_mm_per_h": rmse,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return out


if __name__ == "__main__":
    main()
