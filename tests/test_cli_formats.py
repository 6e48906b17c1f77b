"""`scisr downscale` and `scisr info` on every shipped format; bad paths leave nothing behind."""

from __future__ import annotations

import pytest

import sciSR
from sciSR.cli import main
from sciSR.data import list_samples, sample_path
from sciSR.parallel import output_path


@pytest.mark.parametrize("name", list_samples())
def test_downscale_every_format(name: str, tmp_path, capsys) -> None:
    out = output_path(name, tmp_path, 2)
    assert main(["downscale", str(sample_path(name)), "-o", str(out), "-s", "2", "--no-progress"]) == 0
    src, got = sciSR.open(sample_path(name)), sciSR.open(out)
    assert max(got.sizes.values()) == 2 * max(src.sizes.values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


@pytest.mark.parametrize("name", list_samples())
def test_info_every_format(name: str, capsys) -> None:
    assert main(["info", str(sample_path(name))]) == 0
    text = capsys.readouterr().out
    assert "format:" in text and "spatial dims" in text


def test_unknown_extension_and_same_output(tmp_path, capsys) -> None:
    bad = tmp_path / "data.xyz"
    bad.write_text("x")
    assert main(["downscale", str(bad), "-o", str(tmp_path / "o.nc")]) == 1
    err = capsys.readouterr().err
    assert "unknown extension" in err and ".nc" in err and len(err.strip().splitlines()) == 1
    src = sample_path("etopo5_alps.tif")
    assert main(["downscale", str(src), "-o", str(src)]) == 1
    assert not (tmp_path / "o.nc").exists()


def test_learned_model_without_weights_is_explained(tmp_path, capsys) -> None:
    out = tmp_path / "o.tif"
    assert main(["downscale", str(sample_path("etopo5_alps.tif")), "-o", str(out), "-m", "vdsr"]) == 1
    err = capsys.readouterr().err
    assert "no weights for 'vdsr'" in err
    assert "--weights PATH" in err and "--random-init" in err and "pretrained=False" not in err
    assert not out.exists()
