"""Every held-out figure of a shipped weight card, recomputed on the reserved evaluation data.

The data (DATA.md, "Reserved for evaluation") are the Debian packages ``libjxl-testdata`` (photos)
and ``r-cran-stars`` (Olinda DEM, Stage IV hours 16–22), fetched with ``apt-get download`` and
only the needed files extracted, cached in ``$SCISR_HELDOUT_DIR`` (default
``~/.cache/scisr-heldout``). Without apt-get/dpkg-deb, or when the download fails, the test skips
with the reason. The protocol is the card's own script, ``recipes/pretrain/evaluate_heldout.py``,
run at fp32 as the cards state.

Tolerances (cards print PSNR with 2 decimals, SSIM with 4, RMSE with 3; fp32 convolutions differ
across CPUs by ~1e-6 relative): PSNR ±0.01 dB, SSIM ±0.0002, RMSE ±0.001 (absolute, in the card's
unit). The card's direction (better or worse than bicubic) must hold as well.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import tarfile
import tempfile
import types
from pathlib import Path

import pytest

import sciSR
from sciSR.models.registry import WEIGHTS_DIR, shipped_weights
from sciSR.models.weights_io import read_model_card

SCRIPT = Path(__file__).resolve().parents[2] / "recipes" / "pretrain" / "evaluate_heldout.py"
CACHE = Path(os.environ.get("SCISR_HELDOUT_DIR", Path.home() / ".cache" / "scisr-heldout"))
TOLERANCE = {"PSNR": 0.01, "SSIM": 0.0002, "RMSE": 0.001}


def protocol() -> types.ModuleType:
    """``evaluate_heldout.py`` with ``sciSR.downscale`` pinned to fp32 (for this module object only)."""
    if not SCRIPT.is_file():
        pytest.skip("recipes/pretrain/evaluate_heldout.py (source checkout) not available")
    spec = importlib.util.spec_from_file_location("evaluate_heldout", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    mod.sciSR = types.SimpleNamespace(downscale=functools.partial(sciSR.downscale, precision="fp32"))
    return mod


def fetch(package: str, members: tuple[str, ...]) -> Path:
    """Root of the extracted ``members`` of a Debian package (downloaded once, then cached).

    Skips the test when the package cannot be downloaded or unpacked here.
    """
    root = CACHE / package
    if all((root / m).is_file() for m in members):
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip(f"reserved evaluation data: no apt-get/dpkg-deb to fetch Debian package {package}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run = subprocess.run(
                ["apt-get", "download", "-qq", package], cwd=tmp, capture_output=True, text=True, timeout=120
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"reserved evaluation data: apt-get download {package} timed out")
        debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if run.returncode != 0 or not debs:
            why = (run.stderr.strip().splitlines() or ["no .deb written"])[-1]
            pytest.skip(f"reserved evaluation data: apt-get download {package} failed ({why})")
        staging = Path(tmp) / "x"
        unpack = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
        wanted = set(members)
        with tarfile.open(fileobj=unpack.stdout, mode="r|") as tar:
            for info in tar:
                name = info.name.removeprefix("./")
                if name in wanted and info.isfile():
                    info.name = name
                    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                    tar.extract(info, staging, **safe)
        unpack.wait()
        if not all((staging / m).is_file() for m in members):
            pytest.skip(f"reserved evaluation data: {package} lacks {sorted(wanted)}")
        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.move(str(staging), root)
    return root


#: Photo rows are recomputed for networks up to this size (larger ones take minutes per card on a CPU:
#: their field rows are recomputed, and the photo rows are the same protocol).
PHOTO_ROWS_MAX_PARAMS = 200_000


def _by_protocol(stem: str) -> bool:
    """Cards whose table ``evaluate_heldout.py`` produced (imported weights carry their converter's own)."""
    text = (WEIGHTS_DIR / f"{stem}.md").read_text(encoding="utf-8")
    return "Produced by `recipes/pretrain/evaluate_heldout.py`" in text


def _resolved(rows: list[tuple]) -> dict[tuple[str, str, str], tuple[float, float]]:
    out, prev = {}, ("", "")
    for data, proto, metric, model, base, _dec in rows:
        data = prev[0] if data == "same" else data
        proto = prev[1] if proto == "same" else proto
        out[(data, proto, metric)] = (model, base)
        prev = (data, proto)
    return out


@pytest.mark.parametrize("stem", [s for s in shipped_weights() if _by_protocol(s)])
def test_heldout_scores_match_the_card(stem: str) -> None:
    from sciSR.models.catalog import parse_weight_name

    card = read_model_card(WEIGHTS_DIR / f"{stem}.md")
    eh = protocol()
    name, scale, _c, _tag = parse_weight_name(f"{stem}.safetensors")
    weights = str(WEIGHTS_DIR / f"{stem}.safetensors")
    labels = " ".join(r.data for r in card.heldout)
    stars = fetch("r-cran-stars", (eh.DEM, eh.PRECIP))
    rasterio = pytest.importorskip("rasterio")
    xr = pytest.importorskip("xarray")
    with rasterio.open(stars / eh.DEM) as f:
        dem = f.read(1)
    with xr.open_dataset(stars / eh.PRECIP) as ds:
        precip = ds["Total_precipitation_surface_1_Hour_Accumulation"].values
    res: dict = {
        "scale": scale,
        "dem_olinda_m": eh.field_scores([dem], name, weights, scale),
        "stageiv_h16_22_mm_per_h": eh.field_scores(
            [precip[h] for h in eh.PRECIP_HOURS], name, weights, scale
        ),
    }
    params = sum(p.numel() for p in sciSR.create_model(name, scale=scale, pretrained=weights).parameters())
    if params <= PHOTO_ROWS_MAX_PARAMS:
        photos = fetch("libjxl-testdata", eh.PHOTOS)
        res["photos_y"] = eh.photo_scores(name, weights, scale, photos)
        if "MATLAB" in " ".join(r.protocol for r in card.heldout):
            res["photos_y_matlab"] = eh.photo_scores(name, weights, scale, photos, protocol="matlab")
    if "EURO-CORDEX" in labels:
        with xr.open_dataset(fetch("libncarg-data", (eh.EUR11,)) / eh.EUR11) as ds:
            tas = ds["tas"].values.reshape(-1, *ds["tas"].shape[-2:])
        res["tas_eur11_K"] = eh.field_scores(list(tas), name, weights, scale)
    if "Colin27" in labels:
        res["mri_colin27_brain"] = eh.mri_scores(
            name, weights, scale, fetch("mricron-data", (eh.CH2, eh.CH2_BRAIN))
        )
    got = _resolved(eh.card_rows(res))
    checked = 0
    for row in card.heldout:
        key = (row.data, row.protocol, row.metric)
        if key not in got:
            assert row.data.endswith("libjxl-testdata") and params > PHOTO_ROWS_MAX_PARAMS, key
            continue
        model, base = got[key]
        tol = TOLERANCE[row.metric.split()[0].upper()]
        label = f"{stem}: {row.data} {row.metric}"
        assert model == pytest.approx(row.model, abs=tol), label
        assert base == pytest.approx(row.baseline, abs=tol), label
        better = model > base if row.higher_is_better else model < base
        assert better == row.beats_baseline, label
        checked += 1
    assert checked >= 2
