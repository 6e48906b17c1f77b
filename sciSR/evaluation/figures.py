"""PNG figures of an evaluation report (matplotlib, Agg canvas; no pyplot state is touched).

Per variable, for the first field of its stack:

* ``<var>_panels.png``: LR, the reference baseline, every model, truth, one shared colour scale
  (the truth's 0.5–99.5 % range over valid cells) labelled with the variable's units;
* ``<var>_errors.png``: method − truth for every method, one symmetric diverging scale;
* ``<var>_spectra.png``: radially averaged power spectra (all fields, scored cells), log–log, with the
  LR Nyquist wavenumber ``1/(2s)`` marked;
* ``<var>_qq.png``: quantiles of each method against the truth's (0.1 % … 99.9 %), with the 1:1 line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _figure(ncols: int, nrows: int = 1, size: float = 3.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * ncols + 0.8, size * nrows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def write_figures(folder: Path, stem: str, var: str, res: Any, config: dict[str, Any]) -> list[Path]:
    """Write the four figures of one variable into ``folder``; returns their paths."""
    s = int(config["scale"])
    ref = str(config["reference"])
    units = res.units or "data units"
    origin = "lower" if res.origin_lower else "upper"
    h, w = res.truth.shape
    extent = (0, w, h, 0) if origin == "upper" else (0, w, 0, h)
    ok = res.valid & np.isfinite(res.truth)
    tv = res.truth[ok] if ok.any() else np.array([0.0, 1.0])
    vmin, vmax = (float(v) for v in np.quantile(tv, [0.005, 0.995]))
    if vmax <= vmin:
        vmax = vmin + 1.0
    paths = []

    models = [k for k in res.outputs if config.get("roles", {}).get(k) == "model"] or []
    if not models:
        models = [k for k in res.outputs if k not in (ref,)]
    shown = [("LR", res.lr), (ref, res.outputs[ref])] + [(m, res.outputs[m]) for m in models if m != ref]
    shown.append(("truth", res.truth))
    fig = _figure(len(shown))
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    im = None
    for ax, (title, arr) in zip(axes, shown, strict=True):
        im = ax.imshow(
            arr, vmin=vmin, vmax=vmax, cmap="viridis", origin=origin, extent=extent, interpolation="nearest"
        )
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes), shrink=0.8, label=f"{var} ({units})")
    fig.suptitle(f"{var}: ×{s}, LR by '{config['degradation']}'")
    paths.append(folder / f"{stem}_panels.png")
    fig.savefig(paths[-1], dpi=90)

    errs = [(k, v - res.truth) for k, v in res.outputs.items()]
    allerr = np.concatenate([e[ok] for _, e in errs]) if ok.any() else np.array([1.0])
    lim = float(np.quantile(np.abs(allerr), 0.99)) or 1.0
    ncol = min(4, len(errs))
    nrow = -(-len(errs) // ncol)
    fig = _figure(ncol, nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False).ravel())
    for ax, (title, e) in zip(axes, errs, strict=False):
        im = ax.imshow(
            np.where(res.valid, e, np.nan),
            vmin=-lim,
            vmax=lim,
            cmap="RdBu_r",
            origin=origin,
            extent=extent,
            interpolation="nearest",
        )
        ax.set_title(f"{title} − truth")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(errs) :]:
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes), shrink=0.8, label=f"error ({units})")
    paths.append(folder / f"{stem}_errors.png")
    fig.savefig(paths[-1], dpi=90)

    fig = _figure(1, size=4.5)
    ax = fig.subplots()
    for lab, (k, p) in res.spectra.items():
        good = p > 0
        style = {"color": "black", "lw": 2.0} if lab == "truth" else {"lw": 1.2}
        ax.loglog(k[good], p[good], label=lab, **style)
    ax.axvline(1.0 / (2 * s), color="grey", ls="--", lw=0.8, label="LR Nyquist")
    ax.set_xlabel("wavenumber (cycles per HR cell)")
    ax.set_ylabel(f"power ({units}²)")
    ax.legend(fontsize="small")
    ax.set_title(f"{var}: radially averaged power spectrum")
    paths.append(folder / f"{stem}_spectra.png")
    fig.savefig(paths[-1], dpi=90)

    fig = _figure(1, size=4.5)
    ax = fig.subplots()
    qt = res.quantiles["truth"]
    for lab, q in res.quantiles.items():
        if lab != "truth":
            ax.plot(qt, q, marker=".", ms=3, lw=0.8, label=lab)
    lo, hi = float(np.min(qt)), float(np.max(qt))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1.0, label="1:1")
    ax.set_xlabel(f"truth quantile ({units})")
    ax.set_ylabel(f"method quantile ({units})")
    ax.legend(fontsize="small")
    ax.set_title(f"{var}: Q–Q (0.1 % … 99.9 %)")
    paths.append(folder / f"{stem}_qq.png")
    fig.savefig(paths[-1], dpi=90)
    return paths
