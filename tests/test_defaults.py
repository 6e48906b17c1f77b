"""Defaults: ``model="auto"`` picks the best shipped model for the data, outputs record the weights used,
random networks warn, and every model name the README or docs use has shipped weights.

Weight folders are temporary ones filled with tiny real models (see ``tests/test_catalog.py``).
"""

from __future__ import annotations

import ast
import hashlib
import logging
import re
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import sciSR
from sciSR.data import sample_path
from sciSR.models import catalog
from sciSR.models.domains import detect_domain, variable_domain
from sciSR.models.registry import get_entry

from .test_catalog import PHOTO, ship

ROOT = Path(__file__).resolve().parents[1]

DOMAIN_ROW = {
    "dem": ("DEM, test", "RMSE m", 4.0, 5.0),
    "precip": ("Stage IV, test", "RMSE mm/h", 1.0, 2.0),
    "temperature": ("CMIP, test", "RMSE K", 0.5, 0.6),
    "mri": ("MNI152, test", "PSNR dB", 33.0, 31.0),
}


@pytest.fixture
def wdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder with natural ×2 ESPCN weights and one tagged ×2 file per domain."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(catalog, "WEIGHTS_DIR", folder)
    ship(folder, "espcn_x2_c1", PHOTO)
    for i, (tag, row) in enumerate(DOMAIN_ROW.items()):
        ship(folder, f"espcn_x2_c1_{tag}", [row], seed=i + 1)
    return folder


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which (model, scale) pairs already warned about random weights in this process."""
    monkeypatch.setattr(catalog, "_WARNED", set())


def field(name: str | None = "v", **attrs: str) -> xr.DataArray:
    rng = np.random.default_rng(0)
    return xr.DataArray(rng.random((8, 10)).astype(np.float32), dims=("lat", "lon"), name=name, attrs=attrs)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------- domain detection
@pytest.mark.parametrize(
    ("name", "attrs", "kind"),
    [
        ("v", {"standard_name": "precipitation_flux", "units": "kg m-2 s-1"}, "precip"),
        ("v", {"standard_name": "lwe_precipitation_rate"}, "precip"),
        ("pr", {"units": "kg m-2 s-1"}, "precip"),
        ("tp", {}, "precip"),
        ("v", {"units": "mm/h"}, "precip"),
        ("v", {"units": "kg m^-2"}, "precip"),
        ("t2m", {"units": "K"}, "temperature"),
        ("v", {"standard_name": "air_temperature", "units": "K"}, "temperature"),
        ("SST", {"long_name": "SEA SURFACE TEMPERATURE", "units": "Deg C"}, "temperature"),
        ("elev", {"units": "m"}, "dem"),
        ("v", {"standard_name": "surface_altitude"}, "dem"),
        ("v", {"standard_name": "height_above_mean_sea_level"}, "dem"),
        ("ROSE", {"long_name": "Relief Of the Surface of the Earth", "units": "meters"}, "dem"),
        ("z", {"units": "m2 s-2"}, None),  # geopotential, not elevation
        ("temp", {"units": "m s-1"}, None),  # units that contradict the name
        ("z", {"standard_name": "northward_wind"}, None),  # a CF name outside the lists decides
        ("v", {"units": "m"}, None),  # metres alone: only on a single-band GeoTIFF
        ("v", {}, None),
        (None, {}, None),
    ],
)
def test_variable_domain(name, attrs, kind) -> None:
    assert variable_domain(name, attrs)[0] == kind


def test_domain_of_formats_and_mixed_datasets() -> None:
    assert variable_domain("band_data", {"units": "m"}, single_band_geotiff=True) == (
        "dem",
        "single-band GeoTIFF in m",
    )
    alps = sciSR.open(sample_path("etopo5_alps.tif"))
    assert detect_domain(alps, "geotiff")[0] == "dem"
    alps.band_data.attrs.pop("long_name")
    assert detect_domain(alps, "geotiff") == ("dem", "single-band GeoTIFF in m")
    assert detect_domain(alps.assign(b=alps.band_data), "geotiff", variables=["b"])[0] == "dem"
    assert detect_domain(xr.Dataset(), "nifti") == ("mri", "NIfTI volume")
    tas = sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))
    assert detect_domain(tas, "netcdf") == ("temperature", "standard_name air_temperature")  # bounds skipped
    mixed = xr.Dataset({"tas": field(standard_name="air_temperature"), "pr": field(units="mm/h")})
    kind, evidence = detect_domain(mixed, "netcdf")
    assert kind is None and "different kinds" in evidence and "pr: precip" in evidence
    assert detect_domain(mixed, "netcdf", variables="pr")[0] == "precip"


# ----------------------------------------------------------------------------------- default rule
@pytest.mark.parametrize(
    ("name", "attrs", "tag"),
    [
        ("v", {"standard_name": "precipitation_amount", "units": "kg m-2"}, "precip"),
        ("pr", {"units": "mm/h"}, "precip"),
        ("tas", {"standard_name": "air_temperature", "units": "K"}, "temperature"),
        ("elevation", {"units": "m"}, "dem"),
        ("v", {"standard_name": "eastward_wind", "units": "m s-1"}, ""),
        ("v", {}, ""),
    ],
)
def test_auto_picks_domain_weights_from_metadata(wdir: Path, name, attrs, tag) -> None:
    out = sciSR.downscale(field(name, **attrs), scale=2)
    stem = "espcn_x2_c1" + (f"_{tag}" if tag else "")
    assert out.attrs["scisr_model"] == "espcn"
    assert out.attrs["scisr_weights"] == f"{stem}.safetensors"
    assert out.attrs["scisr_weights_tag"] == tag
    assert out.attrs["scisr_weights_sha256"] == sha(wdir / f"{stem}.safetensors")
    reason = out.attrs["scisr_model_reason"]
    assert (
        (f"'{tag}' data" in reason) if tag else ("best natural-photo weights for ×2: espcn_x2_c1" in reason)
    )
    want = sciSR.downscale(field(name, **attrs), model="espcn", scale=2, weights=tag or None)
    np.testing.assert_array_equal(out.values, want.values)


def test_auto_on_files_nifti_is_mri_and_geotiff_is_dem(wdir: Path, tmp_path: Path) -> None:
    import rasterio

    nii = sciSR.downscale(sample_path("mni152_t1_slab.nii.gz"), scale=2, out=tmp_path / "t1.nii.gz")
    assert nii.image.attrs["scisr_weights"] == "espcn_x2_c1_mri.safetensors"
    assert nii.image.attrs["scisr_model_reason"].startswith("'mri' data (NIfTI volume)")
    assert nii.attrs["descrip"].startswith("sciSR x2 espcn/mri")
    import nibabel as nib

    assert nib.load(tmp_path / "t1.nii.gz").header["descrip"].item().decode().startswith("sciSR x2 espcn/mri")
    out = tmp_path / "dem.tif"
    sciSR.downscale(sample_path("etopo5_alps.tif"), scale=2, out=out)
    with rasterio.open(out) as f:
        tags = {**f.tags(), **f.tags(1)}
    assert tags["scisr_weights"] == "espcn_x2_c1_dem.safetensors" and tags["scisr_weights_tag"] == "dem"
    assert tags["scisr_weights_sha256"] == sha(wdir / "espcn_x2_c1_dem.safetensors")


def test_attrs_survive_netcdf_and_zarr(wdir: Path, tmp_path: Path) -> None:
    src = sample_path("cmip5_tas_mpi-esm-lr_2005.nc")
    for out in (tmp_path / "tas.nc", tmp_path / "tas.zarr"):
        sciSR.downscale(src, model="espcn", scale=2, out=out)
        back = sciSR.open(out).tas.attrs
        assert back["scisr_weights"] == "espcn_x2_c1.safetensors" and back["scisr_weights_tag"] == ""
        assert back["scisr_weights_sha256"] == sha(wdir / "espcn_x2_c1.safetensors")
        assert back["scisr_model_reason"] == "model given by the caller"


def test_auto_ranks_natural_weights_by_held_out_gain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    monkeypatch.setattr(catalog, "WEIGHTS_DIR", folder)
    ship(folder, "espcn_x2_c1", PHOTO)  # +1 dB
    ship(folder, "srcnn_x2_c1", [("5 photos", "PSNR dB", 32.0, 30.0)])  # +2 dB: the best
    ship(folder, "fsrcnn_x2_c1", None, d=8, s=4, m=1)  # no card: after every scored file
    ship(folder, "espcn_x2_c1_realesrgan", [("5 photos", "PSNR dB", 40.0, 30.0)])  # perceptual: never
    choice = catalog.choose_model(2, 1)
    assert (choice.model, choice.weights, choice.entry.name) == ("srcnn", None, "srcnn_x2_c1")
    assert "held-out photo PSNR +2.00 dB over bicubic" in choice.reason
    ship(folder, "srcnn_x2_c1", [("5 photos", "PSNR dB", 29.0, 30.0)])  # now worse than bicubic: skipped
    assert catalog.choose_model(2, 1).entry.name == "espcn_x2_c1"
    assert catalog.choose_model(2, 1, tag="realesrgan").entry.name == "espcn_x2_c1_realesrgan"


def test_auto_ranks_natural_weights_by_the_domain_row_when_data_has_a_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temperature data without temperature weights: natural weights scored on the reserved temperature
    grid beat bicubic there come first, even when another file gains more on photos."""
    folder = tmp_path / "w"
    folder.mkdir()
    monkeypatch.setattr(catalog, "WEIGHTS_DIR", folder)
    ship(folder, "srcnn_x2_c1", [("5 photos", "PSNR dB", 34.0, 30.0)])  # +4 dB photos, no field row
    ship(folder, "espcn_x2_c1", [PHOTO[0], ("EURO-CORDEX EUR-11 tas", "RMSE K", 0.38, 0.43)])
    choice = catalog.choose_model(2, 1, domain="temperature")
    assert choice.entry.name == "espcn_x2_c1" and "EURO-CORDEX score 11.6% better" in choice.reason
    assert catalog.choose_model(2, 1).entry.name == "srcnn_x2_c1"  # no kind: photos decide
    ship(folder, "espcn_x2_c1", [PHOTO[0], ("EURO-CORDEX EUR-11 tas", "RMSE K", 0.50, 0.43)])  # loses there
    assert catalog.choose_model(2, 1, domain="temperature").entry.name == "srcnn_x2_c1"


def test_any_scale_card_is_read_at_the_requested_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    monkeypatch.setattr(catalog, "WEIGHTS_DIR", folder)
    rows = [
        ("5 photos", "×2, Y channel", "PSNR dB", 31.0, 30.5),
        ("same", "×3, Y channel", "PSNR dB", 33.0, 30.0),
    ]
    ship(folder, "srcnn_x2_c1", None, metadata={"scisr_any_scale": "1"})
    card = "\n".join(f"| {d} | {p} | {m} | {a} | {b} |" for d, p, m, a, b in rows)
    (folder / "srcnn_x2_c1.md").write_text(
        "# Model card\n\n## Held-out scores\n\n| data | protocol | metric | this model | bicubic |\n"
        f"|---|---|---|---:|---:|\n{card}\n"
    )
    ship(folder, "espcn_x2_c1", PHOTO)  # +1 dB at ×2
    ship(folder, "espcn_x3_c1", [("5 photos", "PSNR dB", 32.0, 30.0)])  # +2 dB at ×3
    assert catalog.choose_model(2, 1).entry.name == "espcn_x2_c1"  # srcnn: +0.5 dB at ×2
    three = catalog.choose_model(3, 1)
    assert three.entry.name == "srcnn_x2_c1" and "PSNR +3.00 dB" in three.reason  # srcnn: +3 dB at ×3
    out = sciSR.downscale(field(), scale=3)
    assert out.attrs["scisr_model"] == "srcnn" and out.shape == (24, 30)
    assert catalog.choose_model(5, 1).model == "bicubic"  # no ×5 row on the card: not a default there


def test_auto_falls_back_to_bicubic_with_a_warning(wdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    covers = r"no shipped learned model covers ×3 with 1 channel\(s\)"
    with caplog.at_level(logging.INFO, logger="sciSR"), pytest.warns(UserWarning, match=covers):
        out = sciSR.downscale(field("pr", units="mm/h"), scale=3)
    assert out.attrs["scisr_model"] == "bicubic"
    assert out.attrs["scisr_weights"] == catalog.PARAMETER_FREE and out.attrs["scisr_weights_sha256"] == ""
    assert "no usable 'precip' weights for ×3" in out.attrs["scisr_model_reason"]
    assert "model='auto' chose bicubic" in caplog.text
    arr = np.random.default_rng(1).random((6, 6))
    with pytest.warns(UserWarning, match="bicubic used"):
        got = sciSR.downscale(arr, scale=3)
    np.testing.assert_array_equal(got, sciSR.downscale(arr, model="bicubic", scale=3))


def test_auto_logs_its_choice(wdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sciSR"):
        sciSR.downscale(np.random.default_rng(0).random((6, 6)), scale=2)
    assert "model='auto' chose espcn: no domain detected (array without metadata)" in caplog.text


def test_auto_with_a_tag_or_a_file_and_its_errors(wdir: Path, tmp_path: Path) -> None:
    da = field()
    assert sciSR.downscale(da, scale=2, weights="dem").attrs["scisr_weights"] == "espcn_x2_c1_dem.safetensors"
    with pytest.raises(
        ValueError, match=r"no shipped model has 'lidar' weights for ×2 .* tags for ×2: dem, mri"
    ):
        sciSR.downscale(da, scale=2, weights="lidar")
    with pytest.raises(
        ValueError, match=r"model='auto' picks a shipped model and takes no model options \(channels\)"
    ):
        sciSR.downscale(da, scale=2, channels=(8, 4))
    mine = tmp_path / "mine.safetensors"
    ship(tmp_path, "srcnn_x2_c1", None)
    (tmp_path / "srcnn_x2_c1.safetensors").rename(mine)
    out = sciSR.downscale(da, scale=2, weights=mine)
    assert out.attrs["scisr_model"] == "srcnn" and out.attrs["scisr_weights"] == "mine.safetensors"
    assert out.attrs["scisr_weights_sha256"] == sha(mine)
    torch.save({"w": torch.zeros(1)}, tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="names no sciSR architecture in its metadata; pass the model too"):
        sciSR.downscale(da, scale=2, weights=tmp_path / "plain.pth")


# ----------------------------------------------------------------------------------- random models
def test_random_model_warns_once_per_model_and_scale(wdir: Path, fresh_warnings: None) -> None:
    da = field()
    with pytest.warns(UserWarning, match=r"'espcn' ×2 has random \(untrained\) weights") as got:
        out = sciSR.downscale(da, model="espcn", scale=2, pretrained=False)
        sciSR.downscale(da, model="espcn", scale=2, pretrained=False)
    assert sum("untrained" in str(w.message) for w in got) == 1
    assert out.attrs["scisr_weights"] == "random (untrained)" and out.attrs["scisr_weights_sha256"] == ""
    assert got[0].filename == __file__  # points at the caller, not at sciSR
    with pytest.warns(UserWarning, match=r"'espcn' ×3 has random"):
        sciSR.downscale(da, model="espcn", scale=3, pretrained=False)


def test_modules_are_recorded_as_random_user_or_file(
    wdir: Path, fresh_warnings: None, tmp_path: Path
) -> None:
    da = field()
    m = sciSR.create_model("espcn", scale=2, pretrained=False, channels=(8, 4))
    with pytest.warns(UserWarning, match="untrained network"):
        assert sciSR.downscale(da, model=m, scale=2).attrs["scisr_weights"] == "random (untrained)"
    with torch.no_grad():
        next(m.parameters()).add_(0.01)  # changed since it was built: trained by its owner
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sciSR.downscale(da, model=m, scale=2).attrs["scisr_weights"] == "user module"
        plain = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.PixelShuffle(2))
        assert sciSR.downscale(da, model=plain, scale=2).attrs["scisr_weights"] == "user module"
    shipped = sciSR.create_model("espcn", scale=2)
    out = sciSR.downscale(da, model=shipped, scale=2)
    assert out.attrs["scisr_weights"] == "espcn_x2_c1.safetensors"
    assert out.attrs["scisr_weights_sha256"] == sha(wdir / "espcn_x2_c1.safetensors")
    from sciSR.models.weights_io import save_weights

    save_weights(m, tmp_path / "m.safetensors")
    fresh = sciSR.create_model("espcn", scale=2, pretrained=False, channels=(8, 4))
    out = sciSR.downscale(da, model=fresh, scale=2, weights=tmp_path / "m.safetensors")
    assert out.attrs["scisr_weights"] == "m.safetensors"
    assert out.attrs["scisr_weights_sha256"] == sha(tmp_path / "m.safetensors")
    assert sciSR.downscale(da, model="bicubic", scale=2).attrs["scisr_weights"] == "none (parameter-free)"


# ----------------------------------------------------------------------------------- command line
def test_cli_default_model_is_auto_and_weights_takes_a_tag(wdir: Path, tmp_path: Path) -> None:
    from sciSR.cli import main

    out = tmp_path / "tas.nc"
    assert (
        main(["downscale", str(sample_path("cmip5_tas_mpi-esm-lr_2005.nc")), "-o", str(out), "-s", "2"]) == 0
    )
    back = sciSR.open(out).tas.attrs
    assert back["scisr_weights"] == "espcn_x2_c1_temperature.safetensors"
    assert back["scisr_model_reason"].startswith("'temperature' data (standard_name air_temperature)")
    dem = tmp_path / "dem.nc"
    src = str(sample_path("etopo5_alps.tif"))
    assert main(["downscale", src, "-o", str(dem), "-m", "espcn", "-s", "2", "-w", "precip"]) == 0
    assert sciSR.open(dem).band_data.attrs["scisr_weights_tag"] == "precip"


# ----------------------------------------------------------------------------------- docs use shipped names
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
NAMED_CALLS = ("create_model", "finetune")


def _python_uses(code: str) -> list[tuple[str, int, int, str | None]]:
    """``(model, scale, in_channels, tag)`` of every call in ``code`` that names a registry model."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        name = kw.get("model")
        if func in NAMED_CALLS and node.args:
            name = node.args[0]
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            continue
        scale = kw.get("scale")
        if scale is None and func in NAMED_CALLS and len(node.args) > 1:
            scale = node.args[1]
        chans, weights = kw.get("in_channels"), kw.get("weights")
        uses.append(
            (
                name.value,
                scale.value if isinstance(scale, ast.Constant) else 4,
                chans.value if isinstance(chans, ast.Constant) else 1,
                weights.value
                if isinstance(weights, ast.Constant) and catalog.is_tag(weights.value)
                else None,
            )
        )
    return uses


def _shell_uses(code: str) -> list[tuple[str, int, int, str | None]]:
    uses = []
    for line in code.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        opts = {w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("-")}
        name = opts.get("-m") or opts.get("--model")
        if not words or words[0] != "scisr" or name is None or name.isupper():
            continue  # not a command, or a usage synopsis (``-m MODEL -s SCALE``)
        scale = int(opts.get("-s") or opts.get("--scale") or 4)
        tag = opts.get("-w") or opts.get("--weights")
        for one in name.split(","):  # scisr evaluate takes a comma-separated list
            uses.append(
                (one, scale, int(opts.get("--channels") or 1), tag if tag and catalog.is_tag(tag) else None)
            )
    return uses


def doc_model_uses() -> dict[tuple[str, int, int, str | None], list[str]]:
    """Every ``(model, scale, channels, tag)`` an example in README.md or docs/*.md uses, with where."""
    found: dict[tuple[str, int, int, str | None], list[str]] = {}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for lang, code in FENCE.findall(doc.read_text(encoding="utf-8")):
            uses = _python_uses(code) if lang in ("python", "py", "") else []
            uses += _shell_uses(code) if lang in ("bash", "sh", "shell", "console", "") else []
            for use in uses:
                found.setdefault(use, []).append(doc.name)
    return found


def _lacking(uses) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for (name, scale, chans, tag), where in uses.items():
        if name == "auto" or not get_entry(name).trainable:
            continue
        if catalog.find_weights(get_entry(name).name, scale, chans, tag) is None:
            what = f"×{scale} c{chans}" + (f" '{tag}'" if tag else "")
            out.setdefault(get_entry(name).name, []).append(f"{what} ({', '.join(sorted(set(where)))})")
    return out


def test_doc_scanner_finds_the_examples() -> None:
    code = 'm = sciSR.create_model("rcan", scale=2, pretrained=False)\nsciSR.downscale(x, model="espcn")\n'
    assert sorted(_python_uses(code)) == [("espcn", 4, 1, None), ("rcan", 2, 1, None)]
    assert _shell_uses("scisr downscale a.nc -o b.nc -m rcan -s 2 -w dem  # x\n") == [("rcan", 2, 1, "dem")]
    uses = doc_model_uses()
    assert ("espcn", 4, 1, None) in uses and ("bicubic", 4, 1, None) in uses


def test_every_model_named_in_the_docs_has_shipped_weights() -> None:
    lacking = _lacking(doc_model_uses())
    assert not lacking, f"README/docs examples use models without shipped weights: {lacking}"
