"""The shipped-weights catalogue: file-name parsing, discovery, cards, lookup by tag and channels, errors.

Weight folders are temporary ones filled with tiny real models written by ``save_weights`` (the
catalogue reads :data:`sciSR.models.catalog.WEIGHTS_DIR` at every call).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import sciSR
from sciSR.models import catalog
from sciSR.models.registry import default_weights_path
from sciSR.models.weights_io import save_weights

TINY = {"channels": (8, 4)}  # a non-default ESPCN configuration: models must be built from the file


def card_text(
    stem: str, rows: list[tuple[str, str, float, float]], licence: str | None = "CC0-1.0 (test)"
) -> str:
    """A model card in the project's format with held-out ``(data, metric, model, bicubic)`` rows."""
    lines = [f"# Model card: `{stem}`", "", "* **Training data**: synthetic test fields — made in the test."]
    if licence:
        lines.append(f"* **Licence**: {licence}")
    lines += ["", "## Held-out scores", "", "| data | protocol | metric | this model | bicubic |",
              "|---|---|---|---:|---:|"]  # fmt: skip
    lines += [f"| {d} | test protocol | {m} | {a} | {b} |" for d, m, a, b in rows]
    return "\n".join(lines) + "\n"


def ship(
    folder: Path,
    stem: str,
    rows: list[tuple[str, str, float, float]] | None = None,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
    **kwargs,
) -> torch.nn.Module:
    """Write a tiny real model as ``folder/stem.safetensors`` plus its card; return the model."""
    parsed = catalog.parse_weight_name(f"{stem}.safetensors")
    assert parsed is not None, stem
    name, scale, ch, _tag = parsed
    torch.manual_seed(seed)
    options = {**TINY, **kwargs} if name in ("espcn", "srcnn") else kwargs
    model = sciSR.create_model(name, scale=scale, in_channels=ch, pretrained=False, **options)
    save_weights(model, folder / f"{stem}.safetensors", {"scisr_norm": "minmax", **(metadata or {})})
    if rows is not None:
        (folder / f"{stem}.md").write_text(card_text(stem, rows))
    return model


@pytest.fixture
def wdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder the catalogue reads instead of the shipped one."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(catalog, "WEIGHTS_DIR", folder)
    return folder


def same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


PHOTO = [("5 photos, test set", "PSNR dB", 31.0, 30.0), ("same", "SSIM", 0.9, 0.8)]


# ----------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("filename", "want"),
    [
        ("espcn_x4_c1.safetensors", ("espcn", 4, 1, None)),
        ("edsr_baseline_x2_c1.safetensors", ("edsr_baseline", 2, 1, None)),
        ("rcan_x4_c1_dem.safetensors", ("rcan", 4, 1, "dem")),
        ("esrgan_x4_c3_realesrgan.safetensors", ("esrgan", 4, 3, "realesrgan")),
        ("dat_light_x12_c3.safetensors", ("dat_light", 12, 3, None)),
        ("rcan_x4_c1_DEM.safetensors", None),  # tags are lower case
        ("rcan_x4_c1_de-m.safetensors", None),
        ("rcan_x4.safetensors", None),
        ("rcan_x4_c1.md", None),
        ("rcan_x4_c1.pth", None),
    ],
)
def test_weight_file_names_parse(filename: str, want) -> None:
    assert catalog.parse_weight_name(filename) == want


# ----------------------------------------------------------------------------------- discovery
def test_discovery_reads_files_cards_and_metadata(wdir: Path) -> None:
    ship(wdir, "espcn_x2_c1", PHOTO)
    ship(wdir, "espcn_x2_c1_dem", [("Olinda DEM, test", "RMSE m", 4.0, 5.0)], seed=1)
    (wdir / "notes.safetensors").write_bytes(b"not a weight file name")  # ignored: name does not fit
    (wdir / "README.md").write_text("# weights\n")
    entries = catalog.discover()
    assert [e.name for e in entries] == ["espcn_x2_c1", "espcn_x2_c1_dem"]
    nat, dem = entries
    assert (nat.model, nat.scale, nat.channels, nat.tag) == ("espcn", 2, 1, None)
    assert dem.tag == "dem" and dem.card_path == wdir / "espcn_x2_c1_dem.md"
    assert nat.data == "synthetic test fields" and nat.licence == "CC0-1.0"
    assert [(r.metric, r.model, r.baseline) for r in nat.heldout] == [
        ("PSNR dB", 31.0, 30.0),
        ("SSIM", 0.9, 0.8),
    ]
    assert nat.sha256 == hashlib.sha256(nat.path.read_bytes()).hexdigest()
    assert nat.size == nat.path.stat().st_size
    assert nat.arch_kwargs["channels"] == [8, 4] and nat.metadata["scisr_norm"] == "minmax"
    assert nat.photo_psnr_gain() == pytest.approx(1.0)
    assert dem.heldout_gain() == pytest.approx(0.2)  # (5 - 4) / 5: an error metric improves downwards


def test_changed_file_is_read_again(wdir: Path) -> None:
    ship(wdir, "espcn_x2_c1", PHOTO)
    first = catalog.discover()[0].sha256
    ship(wdir, "espcn_x2_c1", [("5 photos", "PSNR dB", 35.0, 30.0)], seed=3)
    again = catalog.discover()[0]
    assert again.photo_psnr_gain() == pytest.approx(5.0)
    assert again.sha256 != first
    assert again.sha256 == hashlib.sha256(again.path.read_bytes()).hexdigest()


def test_card_without_licence_or_missing_card(wdir: Path) -> None:
    ship(wdir, "espcn_x2_c1")  # no card at all
    (wdir / "espcn_x4_c1.md").write_text(
        card_text("espcn_x4_c1", PHOTO, licence=None).replace(
            "synthetic", "Produced by sciSR's own recipe; x"
        )
    )
    ship(wdir, "espcn_x4_c1")
    bare, own = catalog.discover()
    assert bare.card_path is None and bare.data == "no card" and bare.licence == "not stated"
    assert bare.heldout == () and bare.scores == "none on card"
    assert own.licence == "BSD-3-Clause (sciSR)"


def test_list_weights_filters_and_prints_a_table(wdir: Path) -> None:
    ship(wdir, "espcn_x2_c1", PHOTO)
    ship(wdir, "espcn_x2_c1_dem", [("DEM", "RMSE m", 4.0, 5.0)])
    ship(wdir, "srcnn_x2_c1_dem", [("DEM", "RMSE m", 4.5, 5.0)])
    assert [e.name for e in sciSR.list_weights()] == ["espcn_x2_c1", "espcn_x2_c1_dem", "srcnn_x2_c1_dem"]
    assert [e.name for e in sciSR.list_weights(model="espcn")] == ["espcn_x2_c1", "espcn_x2_c1_dem"]
    assert [e.name for e in sciSR.list_weights(tag="dem")] == ["espcn_x2_c1_dem", "srcnn_x2_c1_dem"]
    assert [e.name for e in sciSR.list_weights(model="espcn", tag="photo")] == ["espcn_x2_c1"]
    table = repr(sciSR.list_weights())
    head, *rows = table.splitlines()
    for col in ("name", "scale", "channels", "tag", "data", "licence", "size", "held-out scores"):
        assert col in head
    assert rows[0].split()[:4] == ["espcn_x2_c1", "×2", "1", "-"]
    assert rows[1].split()[:4] == ["espcn_x2_c1_dem", "×2", "1", "dem"]
    assert "PSNR dB 31 vs 30" in rows[0] and "RMSE m 4 vs 5" in rows[1]
    assert str(sciSR.list_weights(model="rcan")) == "(no shipped weights match)"


def test_shipped_espcn_weights_are_listed_with_their_cards() -> None:
    rows = {e.name: e for e in sciSR.list_weights(model="espcn")}
    e = rows["espcn_x4_c1"]
    assert (e.scale, e.channels, e.tag) == (4, 1, None)
    assert e.licence == "BSD-3-Clause (sciSR)" and e.data.startswith("BT.601 luma")
    assert e.photo_psnr_gain() == pytest.approx(33.66 - 32.59)
    assert e.spec is not None and e.spec["name"] == "espcn"


def test_cli_weights_command(wdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sciSR.cli import main

    ship(wdir, "espcn_x2_c1", PHOTO)
    ship(wdir, "espcn_x2_c1_dem", [("DEM", "RMSE m", 4.0, 5.0)])
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "espcn_x2_c1 " in out and "espcn_x2_c1_dem" in out and "licence" in out
    assert main(["weights", "--tag", "dem"]) == 0
    out = capsys.readouterr().out
    assert "espcn_x2_c1_dem" in out and "espcn_x2_c1 " not in out
    assert main(["weights", "-m", "rcann"]) == 1
    assert "did you mean 'rcan'" in capsys.readouterr().err
    assert main(["models"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("espcn "))
    assert "x2_c1, x2_c1_dem" in line


# ----------------------------------------------------------------------------------- lookup
def test_model_by_name_is_built_from_the_file_configuration(wdir: Path) -> None:
    saved = ship(wdir, "espcn_x2_c1", PHOTO)
    model = sciSR.create_model("espcn", scale=2)  # the file holds channels=(8, 4), not the default
    assert model.config["channels"] == [8, 4] or tuple(model.config["channels"]) == (8, 4)
    assert same_tensors(model, saved)
    assert sciSR.create_model("espcn", scale=2, channels=(8, 4), pretrained=True).config == model.config
    with pytest.raises(ValueError, match=r"configuration stored in espcn_x2_c1 \(channels=\[8, 4\]\)"):
        sciSR.create_model("espcn", scale=2, pretrained=True, channels=(16, 8))
    random = sciSR.create_model("espcn", scale=2, channels=(16, 8))  # pretrained=None: random, as asked
    assert random.config["channels"] != model.config["channels"]


def test_tag_selects_the_tagged_file(wdir: Path) -> None:
    natural = ship(wdir, "espcn_x2_c1", PHOTO, seed=0)
    dem = ship(wdir, "espcn_x2_c1_dem", [("DEM", "RMSE m", 4.0, 5.0)], seed=1)
    assert same_tensors(sciSR.create_model("espcn", scale=2), natural)
    assert same_tensors(sciSR.create_model("espcn", scale=2, pretrained="dem"), dem)
    assert not same_tensors(natural, dem)
    match = catalog.find_weights("espcn", 2, 1, "dem")
    assert match is not None and match.entry.name == "espcn_x2_c1_dem" and not match.converted


def test_unknown_tag_is_one_line_listing_the_tags_for_that_model_and_scale(wdir: Path) -> None:
    ship(wdir, "espcn_x2_c1", PHOTO)
    ship(wdir, "espcn_x2_c1_dem", [("DEM", "RMSE m", 4.0, 5.0)])
    ship(wdir, "espcn_x2_c1_precip", [("precip", "RMSE mm/h", 1.0, 2.0)])
    ship(wdir, "espcn_x4_c1_mri", [("MRI", "PSNR dB", 30.0, 29.0)])
    with pytest.raises(ValueError) as err:
        sciSR.create_model("espcn", scale=2, pretrained="temperature")
    msg = str(err.value)
    assert "\n" not in msg and "no 'temperature' weights for 'espcn' ×2" in msg
    assert "tags shipped for 'espcn' ×2: dem, precip" in msg and "×4 c1 'mri'" in msg
    with pytest.raises(
        ValueError, match=r"'espcn' ×3 has no tagged weights \(tags shipped: dem, mri, precip\)"
    ):
        sciSR.create_model("espcn", scale=3, pretrained="dem")
    with pytest.raises(ValueError, match="no 'dem' weights for 'espcn' ×2"):
        sciSR.downscale(np.zeros((2, 6, 6)), model="espcn", scale=2, weights="dem", in_channels=2)
    with pytest.raises(ValueError, match="parameter-free baseline"):
        sciSR.create_model("bicubic", scale=2, pretrained="dem")


def test_missing_weights_message_lists_what_is_shipped(wdir: Path) -> None:
    ship(wdir, "espcn_x2_c1", PHOTO)
    ship(wdir, "espcn_x4_c1_dem", [("DEM", "RMSE m", 4.0, 5.0)])
    with pytest.raises(ValueError) as err:
        sciSR.create_model("espcn", scale=3, pretrained=True)
    msg = str(err.value)
    assert msg.startswith(
        "no weights for 'espcn' ×3 with 1 channel(s): shipped for 'espcn': ×2 c1, ×4 c1 'dem'"
    )
    assert "pass weights=PATH" in msg and "pretrained=False" in msg and "\n" not in msg
    with pytest.raises(ValueError, match="shipped for 'srcnn': nothing"):
        sciSR.downscale(np.zeros((6, 6)), model="srcnn", scale=2)
    with pytest.raises(ValueError, match="supports scales"):  # the scale error comes before weights
        sciSR.create_model("edsr_baseline", scale=5, pretrained=True)


def test_rgb_file_serves_one_and_n_channel_models(wdir: Path) -> None:
    """A c3 file is collapsed for a 1- or 2-channel model: a gray image gives the mean of the RGB
    model's outputs for the same image repeated on R, G and B (away from the zero-padded border)."""
    import xarray as xr

    rgb = ship(wdir, "srcnn_x2_c3", PHOTO).eval()
    g = torch.rand(1, 1, 12, 10, generator=torch.Generator().manual_seed(0))
    inner = (..., slice(8, -8), slice(8, -8))
    with torch.no_grad():
        want = rgb(g.repeat(1, 3, 1, 1)).mean(dim=1, keepdim=True)
        one = sciSR.create_model("srcnn", scale=2, in_channels=1)
        assert one.in_channels == one.out_channels == 1 and catalog.find_weights("srcnn", 2, 1).converted
        torch.testing.assert_close(one(g)[inner], want[inner], atol=1e-5, rtol=0)
        two = sciSR.create_model("srcnn", scale=2, in_channels=2)
        torch.testing.assert_close(
            two(g.repeat(1, 2, 1, 1))[inner], want.repeat(1, 2, 1, 1)[inner], atol=1e-5, rtol=0
        )
    out = sciSR.downscale(xr.DataArray(g[0, 0].numpy(), dims=("y", "x")), model="srcnn", scale=2, norm=None)
    assert out.attrs["scisr_weights"] == "srcnn_x2_c3.safetensors"
    np.testing.assert_allclose(out.values[8:-8, 8:-8], want[0, 0, 8:-8, 8:-8].numpy(), atol=1e-5)
    assert default_weights_path("srcnn", 2, 1) is None  # no file with exactly one channel
    assert default_weights_path("srcnn", 2, 3) == wdir / "srcnn_x2_c3.safetensors"


def test_rgb_file_of_a_subpixel_net_collapses_through_its_pixel_shuffle(wdir: Path) -> None:
    """ESPCN's last convolution feeds the pixel shuffle (3·s² outputs, ordered channel then subpixel):
    its rows are averaged per subpixel, so a grey image gets the mean of the RGB outputs."""
    ship(wdir, "espcn_x2_c3", PHOTO)
    assert catalog.find_weights("espcn", 2, 1) is not None
    grey = sciSR.create_model("espcn", scale=2, pretrained=True)
    rgb = sciSR.create_model("espcn", scale=2, in_channels=3, pretrained=True)
    g = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        want = rgb(g.repeat(1, 3, 1, 1)).mean(dim=1, keepdim=True)
        torch.testing.assert_close(grey(g), want, atol=1e-5, rtol=0)


def test_one_channel_file_does_not_serve_a_multichannel_model(wdir: Path) -> None:
    ship(wdir, "espcn_x2_c1", PHOTO)
    assert catalog.find_weights("espcn", 2, 2) is None
    with pytest.raises(
        ValueError, match=r"no weights for 'espcn' ×2 with 2 channel\(s\): shipped for 'espcn': ×2 c1"
    ):
        sciSR.create_model("espcn", scale=2, in_channels=2, pretrained=True)


def test_input_convention_in_metadata_is_applied(wdir: Path) -> None:
    mean = [0.4, 0.5, 0.6]
    ship(
        wdir,
        "srcnn_x2_c3",
        PHOTO,
        metadata={catalog.INPUT_MEAN_KEY: json.dumps(mean), catalog.VALUE_RANGE_KEY: "255"},
    )
    rgb = sciSR.create_model("srcnn", scale=2, in_channels=3)
    assert rgb.value_range == 255.0 and rgb.input_mean.flatten().tolist() == pytest.approx(mean)
    gray = sciSR.create_model("srcnn", scale=2, in_channels=1)
    assert gray.input_mean.flatten().tolist() == pytest.approx([0.5])


def test_any_scale_file_serves_every_scale(wdir: Path) -> None:
    """Pre-upsampling weights do not depend on the scale; the metadata flag lets one file serve all."""
    saved = ship(wdir, "srcnn_x2_c1", PHOTO, metadata={"scisr_any_scale": "1"})
    ship(wdir, "espcn_x2_c1", PHOTO)
    assert catalog.find_weights("srcnn", 3, 1).entry.name == "srcnn_x2_c1"
    assert catalog.find_weights("espcn", 3, 1) is None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "trained for ×2 and loaded into ×3" warning: by design
        model = sciSR.create_model("srcnn", scale=3)
    assert model.scale == 3 and same_tensors(model, saved)
    assert "×2+" in repr(sciSR.list_weights(model="srcnn"))
    assert "liif" in catalog.ANY_SCALE_MODELS


def test_weights_string_is_a_tag_only_when_no_such_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert catalog.is_tag("dem") and catalog.is_tag("realesrgan")
    assert (
        not catalog.is_tag("dem.safetensors")
        and not catalog.is_tag("w/dem")
        and not catalog.is_tag(Path("dem"))
    )
    (tmp_path / "dem").write_bytes(b"")
    assert not catalog.is_tag("dem")
