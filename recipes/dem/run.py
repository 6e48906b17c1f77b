"""GeoTIFF DEM ×4: fine-tune a shipped network on a DEM, score it against the baselines, write a GeoTIFF.

Steps (public API only):

1. ``sciSR.finetune`` the configured model (``rcan`` by default, ``espcn`` for speed) from its
   shipped weights (the natural-photo file unless ``[model] weights`` names a tag or file) on the
   training window of the ``[data] train`` DEM, with block-mean (``area``) LR, flips and rotations,
   each field scaled by its own range (``norm = "per_field"``, so the weights work on relief of any
   height range). The weights are written to ``OUT/<model>_x<scale>_dem.safetensors``.
2. ``sciSR.evaluate`` on the evaluation window (by default cells the fine-tuning never saw): the
   baseline ladder, the starting weights and the fine-tuned weights, ``area`` degradation; the
   report folder is ``OUT/report`` (``metrics.csv``, ``report.md``, figures).
3. ``sciSR.downscale`` of the ``[data] downscale`` DEM (optionally a ``downscale_window`` of it)
   ×``scale`` with the fine-tuned weights and ``sciSR.write`` to ``OUT/<stem>_x<scale>.tif``
   (``.nc`` for a NetCDF source): for a whole GeoTIFF, same CRS and bounds and the pixel size
   divided by the scale (checked and recorded in ``OUT/summary.json``).

The defaults run on the shipped ETOPO5 Alps sample (training pool: 96×128 cells of 5′; columns 0–95
fine-tune, columns 96–127 evaluate) in about two minutes on 2 CPU cores. For real data, point the
paths at your GeoTIFF (or any file ``sciSR.open`` reads, e.g. ETOPO's ``etopo5.cdf`` with
``variable = "ROSE"`` and windows on ``ETOPO05_Y``/``ETOPO05_X``) and raise ``steps``.

Usage:
    python recipes/dem/run.py --config recipes/dem/config.toml --out runs/dem
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))

from recipe_tools import load_config, model_spec, open_window, pick_variable, relabel, resolve

import sciSR


def read_field(spec: str, base: Path, variable: str | None, window: dict[str, list[int]] | None) -> Any:
    """One 2-D field (``xr.DataArray``, first band/time) of the file ``spec`` cut to ``window``.

    GeoTIFF georeferencing (``spatial_ref``, coordinates) is kept; ``units`` defaults to metres.
    """
    ds = open_window(spec, base, window)
    da = ds[pick_variable(ds, variable, spec)]
    for d in list(da.dims[:-2]):
        da = da.isel({d: 0})
    da.attrs.setdefault("units", "m")
    return da


def georef_check(src: Path, out: Path, scale: int) -> dict[str, Any]:
    """Compare the CRS, bounds and pixel size of the input and output GeoTIFFs."""
    import rasterio

    with rasterio.open(src) as a, rasterio.open(out) as b:
        res_ok = np.allclose(np.asarray(a.res) / scale, b.res, rtol=1e-9)
        bounds_ok = np.allclose(tuple(a.bounds), tuple(b.bounds), rtol=0, atol=1e-9 * max(map(abs, a.bounds)))
        return {
            "crs_equal": a.crs == b.crs,
            "bounds_equal": bool(bounds_ok),
            "pixel_size_divided_by_scale": bool(res_ok),
            "input_shape": [a.height, a.width],
            "output_shape": [b.height, b.width],
            "crs": str(b.crs),
        }


def main(argv: list[str] | None = None) -> Path:
    """Run the recipe; returns the output folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path(__file__).with_name("config.toml"))
    ap.add_argument("--out", type=Path, required=True, help="output folder (created)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    base = args.config.resolve().parent
    data, mcfg, ecfg = cfg["data"], cfg["model"], cfg.get("evaluate", {})
    ft = dict(cfg.get("finetune", {}))
    scale = int(mcfg.get("scale", 4))
    name = mcfg["name"]
    start = mcfg.get("weights") or None
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    train = read_field(data["train"], base, data.get("variable"), data.get("train_window"))
    weights_path = out / f"{name}_x{scale}_dem.safetensors"
    net = sciSR.finetune(
        name, train, scale=scale, weights=start, out=weights_path, progress=False,
        metadata={"scisr_recipe": "recipes/dem/run.py", "scisr_tag": "dem",
                  "training_data": f"{data['train']} window {data.get('train_window')}"},
        **ft,
    )

    truth = read_field(data["evaluate"], base, data.get("variable"), data.get("evaluate_window"))
    models = [model_spec(m) for m in ecfg.get("models", [f"{name}:{start}" if start else name])]
    rep = sciSR.evaluate(truth.rename("elevation").to_dataset(), scale=scale, models=[*models, net],
                         degradation=ft.get("degradation", "area"), precision="fp32", progress=False)
    relabel(rep, type(net).__name__, f"{name}[finetuned]")
    report = rep.save(out / "report")

    src = resolve(data["downscale"], base)
    window = data.get("downscale_window")
    lr = open_window(data["downscale"], base, window) if window else src
    hr = sciSR.downscale(lr, model=net, scale=scale, precision="fp32", progress=False)
    geotiff = src.suffix.lower() in (".tif", ".tiff")
    dst = sciSR.write(hr, out / f"{src.stem}_x{scale}{'.tif' if geotiff else '.nc'}")
    summary = {
        "config": str(args.config),
        "weights": str(weights_path),
        "report": str(report),
        "downscaled": str(dst),
        "georeferencing": georef_check(src, dst, scale) if geotiff and not window else "not compared",
        "rmse": {str(k): float(v) for k, v in rep.table["rmse"].droplevel(0).items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return out


if __name__ == "__main__":
    main()
