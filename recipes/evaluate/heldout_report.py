"""Every shipped model against the baseline ladder on the reserved evaluation data (docs/heldout-report.md).

Data (reserved for evaluation by the project's data rules; never trained or tuned on), read from the
extracted Debian packages under ``--heldout`` (default ``~/.cache/scisr-heldout``; each package is
``apt-get download PKG && dpkg-deb -x PKG_*.deb ROOT/PKG``):

* ``olinda``: Olinda DEM (``r-cran-stars`` ``tif/olinda_dem_utm25s.tif``, 111×111, 90 m, metres),
  first 108×108 cells, ×4 by block mean;
* ``stageiv``: Stage IV hourly precipitation (``r-cran-stars`` ``nc/test_stageiv_xyt.nc``),
  **hours 16–22 only** (0–15 are the training part), first 116×84 cells, ×4 by block mean;
* ``eur11``: EURO-CORDEX EUR-11 ``tas`` (``libncarg-data`` ``nug/tas_rotated_grid_EUR11.nc``,
  412×424 rotated-pole grid), ×4 by block mean;
* ``elev``: terra's ``ex/elev.tif`` (``r-cran-terra``, 90×95, 30″, Luxembourg, nodata outside the
  country), first 88×92 cells, ×4 by block mean; cells whose LR block touches nodata are not scored;
* ``mri``: Colin27 T1 (``mricron-data`` ``templates/ch2.nii.gz``), every 16th axial slice with more
  than 5 % brain (``--mri-step``; the model cards' ``recipes/pretrain/evaluate_heldout.py`` takes
  every 4th, four times the CPU time), ×2 by k-space truncation, scored inside the brain mask of
  ``ch2bet.nii.gz``.

Methods: the baseline ladder of ``sciSR.evaluate`` (nearest, bilinear, bicubic, block) and every
shipped weight file that applies: 1-channel natural-photo weights at the dataset's scale, domain
weights (``rcan[dem]``, ``rcan[precip]``, ``rcan[temperature]``, ``rcan[mri]``) on their own domain,
and RGB weights where ``sciSR.downscale`` can collapse them to one channel (others are listed as
skipped). All models run in fp32 on the CPU with ``sciSR.downscale``'s default normalization.

Photos are not recomputed here: their rows are in ``docs/results.md``.

Usage:
    python recipes/evaluate/heldout_report.py [--heldout DIR] [--only olinda,mri] \
        [--md docs/heldout-report.md] [--figures docs/figures/heldout]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import sciSR

HELDOUT = Path.home() / ".cache" / "scisr-heldout"
STARS = "r-cran-stars/usr/lib/R/site-library/stars"
#: Columns of the Markdown tables (every dataset), then extra columns per domain.
COLUMNS: tuple[str, ...] = ("rmse", "mae", "bias", "correlation", "lsd", "q99_error", "consistency")
FIGURE_KINDS: tuple[str, ...] = ("panels", "spectra")
FIGURE_MAX_WIDTH = 1600


@dataclass
class Case:
    """One reserved dataset: the HR truth and how to score it."""

    key: str
    title: str
    source: str
    protocol: str
    data: Any
    scale: int
    domain: str | None
    degradation: str = "area"
    mask: Any = None
    extra_columns: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


def _crop(da: Any, s: int) -> Any:
    """``da`` cut to a multiple of ``s`` on its last two dims (the far edge is dropped)."""
    ydim, xdim = da.dims[-2:]
    return da.isel({ydim: slice(0, da.sizes[ydim] // s * s), xdim: slice(0, da.sizes[xdim] // s * s)})


def _geotiff_dem(path: Path, name: str) -> Any:
    ds = sciSR.open(path)
    da = ds["band_data"].isel(band=0, drop=True).rename(name)
    da.attrs["units"] = "m"
    return _crop(da, 4).to_dataset()


def case_olinda(root: Path) -> Case | None:
    p = root / STARS / "tif" / "olinda_dem_utm25s.tif"
    if not p.is_file():
        return None
    return Case("olinda", "Olinda DEM ×4", f"r-cran-stars `{p.relative_to(root / STARS)}` (UTM 25S, 90 m)",
                "first 108×108 cells; LR = 4×4 block mean", _geotiff_dem(p, "elevation"), 4, "dem")


def case_elev(root: Path) -> Case | None:
    p = root / "r-cran-terra/usr/lib/R/site-library/terra/ex/elev.tif"
    if not p.is_file():
        return None
    return Case("elev", "terra elev.tif ×4", "r-cran-terra `ex/elev.tif` (Luxembourg, 30″, nodata outside)",
                "first 88×92 cells; LR = 4×4 block mean; LR cells touching nodata (and their HR cells) "
                "unscored",
                _geotiff_dem(p, "elevation"), 4, "dem")


def case_stageiv(root: Path) -> Case | None:
    import xarray as xr

    p = root / STARS / "nc" / "test_stageiv_xyt.nc"
    if not p.is_file():
        return None
    with xr.open_dataset(p) as ds:
        da = ds["Total_precipitation_surface_1_Hour_Accumulation"].isel(time=slice(16, 23)).load()
    da = _crop(da.rename("precipitation"), 4)
    da.attrs["units"] = "mm/h"
    return Case("stageiv", "Stage IV precipitation ×4, hours 16–22",
                f"r-cran-stars `{p.relative_to(root / STARS)}` (hurricane Florence, 4 km)",
                "hours 16–22 (7 fields), first 116×84 cells; LR = 4×4 block mean",
                da.drop_vars([c for c in ("lat", "lon") if c in da.coords]).to_dataset(), 4, "precip")


def case_eur11(root: Path) -> Case | None:
    import xarray as xr

    p = root / "libncarg-data/usr/share/ncarg/data/nug/tas_rotated_grid_EUR11.nc"
    if not p.is_file():
        return None
    with xr.open_dataset(p) as ds:
        da = ds["tas"].isel(height=0, drop=True).load()
    for d in ("rlat", "rlon"):  # stored with float32 rounding (4e-7° off the grid): nominal 0.11° axis
        v = da[d].values.astype(np.float64)
        da = da.assign_coords({d: (d, v[0] + np.arange(v.size) * (v[-1] - v[0]) / (v.size - 1), da[d].attrs)})
    return Case("eur11", "EURO-CORDEX EUR-11 tas ×4", "libncarg-data `nug/tas_rotated_grid_EUR11.nc` (0.11°)",
                "all 412×424 cells (rotated pole, uniform weights; `rlat`/`rlon` set to their nominal "
                "regular 0.11° axes, the file stores them with float32 rounding); LR = 4×4 block mean",
                _crop(da, 4).to_dataset(), 4, "temperature")


def case_mri(root: Path, step: int = 16) -> Case | None:
    import nibabel as nib
    import xarray as xr

    t = root / "mricron-data/usr/share/mricron/templates"
    if not (t / "ch2.nii.gz").is_file():
        return None
    vol = np.asarray(nib.load(t / "ch2.nii.gz").dataobj, dtype=np.float32)
    brain = np.asarray(nib.load(t / "ch2bet.nii.gz").dataobj) > 0
    keep = [k for k in range(0, vol.shape[2], step) if brain[:, :, k].mean() > 0.05]
    h, w = vol.shape[0] // 2 * 2, vol.shape[1] // 2 * 2
    hr = np.stack([vol[:h, :w, k] for k in keep])
    mask = np.stack([brain[:h, :w, k] for k in keep])
    da = xr.DataArray(hr, dims=("slice", "y", "x"), name="t1", attrs={"units": "a.u."})
    return Case("mri", "Colin27 T1 ×2 (in-plane)",
                "mricron-data `templates/ch2.nii.gz`, brain mask `ch2bet.nii.gz`",
                f"{len(keep)} axial slices (every {step}th with > 5 % brain: {keep[0]}…{keep[-1]}), {h}×{w}; "
                "LR = central 1/2 of the "
                "2-D spectrum (k-space truncation); scored inside the brain mask",
                da.to_dataset(), 2, "mri", degradation="kspace", mask=mask, extra_columns=("psnr", "ssim"))


#: Reserved datasets in report order.
CASES: dict[str, Callable[[Path], Case | None]] = {
    "olinda": case_olinda,
    "stageiv": case_stageiv,
    "eur11": case_eur11,
    "elev": case_elev,
    "mri": case_mri,
}
MISSING = {
    "olinda": "r-cran-stars", "stageiv": "r-cran-stars", "eur11": "libncarg-data",
    "elev": "r-cran-terra", "mri": "mricron-data",
}


def models_for(scale: int, domain: str | None) -> tuple[list[Any], list[str]]:
    """Shipped weights that apply at ``scale`` to 1-channel data of ``domain``, and skip notes.

    Returns:
        ``(models, notes)``: ``models`` as ``sciSR.evaluate`` takes them (``"rcan"`` for the
        natural-photo file, ``("rcan", {"weights": tag})`` for domain weights).
    """
    models: list[Any] = []
    notes: list[str] = []
    seen: set[str] = set()
    for w in sciSR.list_weights():
        if w.scale != scale and w.model != "liif":
            continue
        if w.tag is not None:
            if w.tag == domain and w.channels == 1:
                models.append((w.model, {"weights": w.tag}))
            continue
        if w.model in seen:
            continue
        if w.channels != 1:
            try:  # RGB weights: usable when sciSR.downscale can collapse them to one channel
                sciSR.downscale(np.zeros((12, 12), np.float32), model=w.model, scale=scale, progress=False)
            except ValueError:
                notes.append(f"`{w.name}` skipped: its RGB weights do not collapse to one channel "
                             "(photo scores in results.md)")
                seen.add(w.model)
                continue
        seen.add(w.model)
        models.append(w.model)
    return models, notes


def best_rows(values: list[float], metric: str) -> set[int]:
    """Indices of the best value(s) of ``metric`` in ``values``.

    Values within ``1e-6 ×`` the column's largest magnitude of the best tie (float-precision zeros).
    """
    from sciSR.metrics import METRICS

    e = METRICS[metric]
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).any():
        return set()
    if e.higher_is_better is True:
        score = -v
    elif e.higher_is_better is False:
        score = v
    else:
        score = np.abs(v - e.target)
    score = np.where(np.isfinite(score), score, np.inf)
    best = score.min()
    tol = 1e-6 * float(np.nanmax(np.abs(v[np.isfinite(v)])))  # float-precision ties (bias 1e-9 vs 0)
    return {i for i, s in enumerate(score) if s - best <= tol}


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3e}"
    return f"{x:.4g}"


def table_markdown(rep: Any, var: str, columns: tuple[str, ...], units: str) -> list[str]:
    """One Markdown table (method × metric) of ``rep`` for ``var``, the best value per column in bold."""
    from sciSR.metrics import METRICS

    sub = rep.table.loc[var]
    head = ["method", "role"]
    for m in columns:
        u = METRICS[m].units
        head.append(f"{m} ({units or 'data units'})" if u == "data" else (f"{m} ({u})" if u != "1" else m))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    bold = {m: best_rows([float(v) for v in sub[m]], m) for m in columns}
    for i, (method, row) in enumerate(sub.iterrows()):
        cells = [f"`{method}`", rep.roles.get(str(method), "")]
        for m in columns:
            s = _fmt(float(row[m]))
            cells.append(f"**{s}**" if i in bold[m] else s)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def shrink_png(src: Path, dst: Path, max_width: int = FIGURE_MAX_WIDTH) -> None:
    """Copy a PNG figure, downsampled to ``max_width`` and quantized to 128 colours (small docs figures)."""
    from PIL import Image

    with Image.open(src) as im:
        im = im.convert("RGB")
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
        im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def run_case(case: Case, fig_dir: Path, work: Path) -> tuple[list[str], Any]:
    """Evaluate one case, copy its figures to ``fig_dir`` and return its Markdown section and report."""
    models, skip_notes = models_for(case.scale, case.domain)
    t0 = time.perf_counter()
    rep = sciSR.evaluate(case.data, scale=case.scale, models=models, degradation=case.degradation,
                         mask=case.mask, precision="fp32", device="cpu", progress=False)
    took = time.perf_counter() - t0
    folder = rep.save(work / case.key)
    var = str(rep.table.index.get_level_values(0)[0])
    units = rep.results[var].units
    lines = [f"## {case.title}", "", f"- data: {case.source}", f"- protocol: {case.protocol}",
             f"- score weights: {rep.config['weights']}; {len(models)} models, {len(rep.config['methods'])} "
             f"methods in {took:.0f} s (2 shared CPU cores, fp32)", ""]
    lines += table_markdown(rep, var, COLUMNS + case.extra_columns, units)
    lines.append("")
    for n in skip_notes + case.notes + rep.notes:
        lines.append(f"- {n}")
    if skip_notes or case.notes or rep.notes:
        lines.append("")
    for kind in FIGURE_KINDS:
        src = folder / "figures" / f"{var}_{kind}.png"
        if src.is_file():
            name = f"{case.key}_{kind}.png"
            shrink_png(src, fig_dir / name)
            lines.append(f"![{case.title}: {kind}](figures/heldout/{name})")
    lines.append("")
    return lines, rep


def headline(rep: Any, var: str) -> str:
    """Best baseline and best model by RMSE, one line."""
    sub = rep.table.loc[var]["rmse"]
    base = {k: float(v) for k, v in sub.items() if rep.roles.get(str(k)) == "baseline"}
    mod = {k: float(v) for k, v in sub.items() if rep.roles.get(str(k)) == "model"}
    b = min(base, key=base.get)
    if not mod:
        return f"best baseline `{b}` RMSE {_fmt(base[b])}"
    m = min(mod, key=mod.get)
    change = 100 * (mod[m] / base[b] - 1)
    return (
        f"best model `{m}` RMSE {_fmt(mod[m])} ({change:+.1f} % against the best baseline, `{b}`: "
        f"{_fmt(base[b])})"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heldout", type=Path, default=HELDOUT, help="root of the extracted reserved packages")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--md", type=Path, default=Path("docs/heldout-report.md"))
    ap.add_argument("--figures", type=Path, default=Path("docs/figures/heldout"))
    ap.add_argument("--mri-step", type=int, default=16, help="axial slice step of the MRI case")
    args = ap.parse_args(argv)
    os.environ.setdefault("SCISR_NO_PROGRESS", "1")
    keys = [k.strip() for k in args.only.split(",") if k.strip()] or list(CASES)
    unknown = [k for k in keys if k not in CASES]
    if unknown:
        raise SystemExit(f"unknown dataset(s) {unknown}; choose from {', '.join(CASES)}")
    args.figures.mkdir(parents=True, exist_ok=True)
    body: list[str] = []
    heads: list[str] = []
    missing: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scisr-heldout-report-") as tmp:
        for k in keys:
            case = CASES[k](args.heldout, args.mri_step) if k == "mri" else CASES[k](args.heldout)
            if case is None:
                missing.append(f"`{k}`: package {MISSING[k]} not found under the held-out root; not reported")
                continue
            print(f"[heldout] {k} ...", flush=True)
            lines, rep = run_case(case, args.figures, Path(tmp))
            body += lines
            var = str(rep.table.index.get_level_values(0)[0])
            heads.append(f"- {case.title}: {headline(rep, var)}")
            print(heads[-1], flush=True)
            rep.table.to_csv(args.figures / f"{k}_metrics.csv")
    intro = [
        "# Held-out report: shipped models against the baseline ladder",
        "",
        "Every shipped weight file that applies, against the baselines of `sciSR.evaluate` (nearest, "
        "bilinear, bicubic and the conservative block replicate), on the data reserved for evaluation "
        "(never trained or tuned on). Regenerate with "
        "`python recipes/evaluate/heldout_report.py` (a few minutes on 2 CPU cores; the script's "
        "docstring says how to fetch the reserved Debian packages).",
        "",
        "Natural-photo weights (no tag) run everywhere; domain weights (`rcan[dem]`, `rcan[precip]`, "
        "`rcan[temperature]`, `rcan[mri]`) on their own domain; LIIF's RGB weights run collapsed to one "
        "channel (as `sciSR.downscale` does), DAT-light's do not collapse and are skipped. "
        "All models run in fp32 with "
        "`sciSR.downscale`'s default normalization. Metrics are defined in "
        "[evaluation.md](evaluation.md); the best value of each column is bold (`bias` and `q99_error` "
        "best at 0, `correlation` highest, the others lowest). `consistency` is the mean "
        "|D(SR) − LR| through the operator that made the LR (0 for `block` by construction). "
        "Photo results (PSNR/SSIM on the reserved libjxl photos) are in [results.md](results.md) and "
        "are not repeated here. Per-dataset CSVs are beside the figures in `figures/heldout/`.",
        "",
        "## Headline (RMSE)",
        "",
        *heads,
        *[f"- {m}" for m in missing],
        "",
    ]
    args.md.parent.mkdir(parents=True, exist_ok=True)
    tmp_md = args.md.with_suffix(".md.tmp")
    tmp_md.write_text("\n".join(intro + body).rstrip() + "\n", encoding="utf-8")
    os.replace(tmp_md, args.md)
    total = sum(p.stat().st_size for p in args.figures.iterdir() if p.is_file())
    print(f"[heldout] wrote {args.md} and {args.figures} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
