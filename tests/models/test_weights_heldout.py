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
from sciSR.models.weights_io import CardScore, read_model_card

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


def recomputed(row: CardScore, res: dict) -> tuple[float, float]:
    """``(model, bicubic)`` of the recomputation for a card row."""
    if row.data.startswith("Olinda"):
        part, key = res["dem"], "rmse"
    elif row.data.startswith("Stage IV"):
        part, key = res["precip"], "rmse"
    else:
        part, key = res["photos"], row.metric.split()[0].lower()
    return part[key], part[f"{key}_bicubic"]


@pytest.mark.parametrize("stem", shipped_weights())
def test_heldout_scores_match_the_card(stem: str) -> None:
    card = read_model_card(WEIGHTS_DIR / f"{stem}.md")
    assert len(card.heldout) == 4, "expected photo PSNR/SSIM, DEM and Stage IV rows"
    eh = protocol()
    name, scale = stem.split("_x")[0], int(stem.split("_x")[1].split("_")[0])
    photos = fetch("libjxl-testdata", eh.PHOTOS)
    stars = fetch("r-cran-stars", (eh.DEM, eh.PRECIP))
    rasterio = pytest.importorskip("rasterio")
    xr = pytest.importorskip("xarray")
    with rasterio.open(stars / eh.DEM) as f:
        dem = f.read(1)
    with xr.open_dataset(stars / eh.PRECIP) as ds:
        precip = ds["Total_precipitation_surface_1_Hour_Accumulation"].values
    res = {
        "photos": eh.photo_scores(name, None, scale, photos),
        "dem": eh.field_scores([dem], name, None, scale),
        "precip": eh.field_scores([precip[h] for h in eh.PRECIP_HOURS], name, None, scale),
    }
    assert res["photos"]["n"] == 5 and res["precip"]["n"] == 7
    for row in card.heldout:
        got, base = recomputed(row, res)
        tol = TOLERANCE[row.metric.split()[0].upper()]
        label = f"{stem}: {row.data} {row.metric}"
        assert got == pytest.approx(row.model, abs=tol), label
        assert base == pytest.approx(row.baseline, abs=tol), label
        better = got > base if row.higher_is_better else got < base
        assert better == row.beats_baseline, label
