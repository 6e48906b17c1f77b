"""Checkpoint loading checks the architecture: names, sciSR metadata, keys and shapes, strictly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import sciSR
from sciSR.models.checkpoints import FORMATS, CheckpointFormat, known_formats, register_format
from sciSR.models.checkpoints.scisr_files import identify_layout
from sciSR.models.registry import default_weights_path
from sciSR.models.weights_io import load_weights_into, save_weights

ESPCN_X4 = default_weights_path("espcn", 4, 1)


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def tiny(name: str, scale: int = 2, **kw) -> sciSR.SRModel:
    from sciSR.models.registry import get_entry

    torch.manual_seed(0)
    return sciSR.create_model(name, scale=scale, pretrained=False, **{**get_entry(name).tiny, **kw})


@pytest.fixture
def espcn_files(tmp_path) -> dict[str, str]:
    """The shipped ESPCN ×4 re-saved three ways: sciSR metadata, plain .pth, safetensors without metadata."""
    model = sciSR.create_model("espcn", scale=4, pretrained=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    paths = {
        "meta": str(save_weights(model, tmp_path / "espcn_meta.safetensors")),
        "pth": str(tmp_path / "espcn.pth"),
        "bare": str(tmp_path / "espcn_bare.safetensors"),
    }
    torch.save(sd, paths["pth"])
    save_file(sd, paths["bare"])
    return paths


# --------------------------------------------------------------------------------------- arch= names
def test_unknown_arch_is_named_not_reported_as_a_layout(espcn_files) -> None:
    with pytest.raises(ValueError) as err:
        sciSR.load_checkpoint(espcn_files["pth"], arch="bogus")
    msg = one_line(err)
    assert msg.startswith("unknown architecture 'bogus'") and "unknown checkpoint layout" not in msg
    assert all(f"{n}," in msg or f"{n})" in msg for n in ("espcn", "vdsr", "edsr_baseline"))
    assert all(name in msg for name in known_formats())
    with pytest.raises(ValueError, match=r"unknown architecture 'espcm' \(did you mean 'espcn'\?\)"):
        sciSR.load_checkpoint(espcn_files["pth"], arch="espcm")
    with pytest.raises(ValueError, match=r"did you mean 'edsr-official'"):
        sciSR.load_checkpoint(espcn_files["pth"], arch="edsr-oficial")
    with pytest.raises(ValueError, match="'bicubic' is a parameter-free baseline"):
        sciSR.load_checkpoint(espcn_files["pth"], arch="bicubic")


# --------------------------------------------------------------------------------------- another architecture
@pytest.mark.parametrize("kind", ["meta", "pth", "bare"])
def test_espcn_weights_are_refused_as_vdsr_by_both_routes(espcn_files, kind: str) -> None:
    path = espcn_files[kind]
    for load in (
        lambda: sciSR.load_checkpoint(path, arch="vdsr", scale=4),
        lambda: sciSR.create_model("vdsr", scale=4, pretrained=path),
    ):
        with pytest.raises(ValueError) as err:
            load()
        msg = one_line(err)
        assert "'espcn'" in msg and "'vdsr'" in msg, msg
        assert ("per its metadata" in msg) == (kind == "meta")


def test_metadata_is_checked_even_when_keys_and_shapes_coincide(tmp_path) -> None:
    vdsr = tiny("vdsr")
    spec = {**vdsr.spec.as_dict(), "name": "espcn"}  # a file that says it is an ESPCN
    path = save_weights(vdsr, tmp_path / "says_espcn.safetensors", metadata={"spec": json.dumps(spec)})
    with pytest.raises(ValueError) as err:
        load_weights_into(tiny("vdsr"), path)
    assert "holds sciSR 'espcn' weights" in one_line(err) and "not 'vdsr'" in one_line(err)
    with pytest.raises(ValueError, match="holds sciSR 'espcn' weights"):
        sciSR.load_checkpoint(path, arch="vdsr")


def test_registry_aliases_and_inheriting_subclasses_share_weights(tmp_path) -> None:
    base = tiny("edsr_baseline")
    path = save_weights(base, tmp_path / "base.safetensors")
    as_edsr = sciSR.load_checkpoint(path, arch="edsr")
    assert as_edsr.registry_name == "edsr"
    x = torch.rand(1, 1, 6, 7)
    with torch.no_grad():
        assert torch.equal(as_edsr(x), base(x))
    gen = tiny("srgan", scale=4)
    path = save_weights(gen, tmp_path / "srgan.safetensors")
    into = load_weights_into(tiny("srresnet", scale=4), path)  # SRGAN's generator is an SRResNet
    assert json.loads(into["spec"])["name"] == "srgan"


def test_scale_mismatch_is_named_from_the_metadata(espcn_files) -> None:
    with pytest.raises(ValueError) as err:
        sciSR.create_model("espcn", scale=2, pretrained=espcn_files["meta"])
    msg = one_line(err)
    assert "×4 weights per its metadata, the model is ×2" in msg and "'body.4.bias' is (16,)" in msg


def test_pre_upsampling_weights_at_another_scale_warn(tmp_path) -> None:
    path = save_weights(tiny("vdsr", scale=2), tmp_path / "vdsr_x2.safetensors")
    with pytest.warns(UserWarning, match=r"trained for ×2 and is loaded into a ×3 vdsr"):
        load_weights_into(tiny("vdsr", scale=3), path)


# --------------------------------------------------------------------------------------- sciSR layout
def test_plain_scisr_state_dict_loads_when_the_architecture_is_named(espcn_files) -> None:
    want = sciSR.create_model("espcn", scale=4, pretrained=True)
    model = sciSR.load_checkpoint(espcn_files["pth"], arch="espcn", scale=4)
    assert model.checkpoint_format == "scisr-layout" and model.registry_name == "espcn"
    assert all(torch.equal(v, want.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError) as err:  # without arch= the keys alone say which sciSR layout it is
        sciSR.load_checkpoint(espcn_files["pth"])
    msg = one_line(err)
    assert "holds 'espcn' weights: every key and shape matches sciSR's 'espcn' (×4" in msg
    assert "arch='espcn', scale=4" in msg


def test_identify_layout() -> None:
    espcn = sciSR.create_model("espcn", scale=4, pretrained=False).state_dict()
    assert identify_layout(espcn) == [("espcn", (4,))]
    assert identify_layout(espcn, scale=2) == []
    vdsr = sciSR.create_model("vdsr", scale=3, pretrained=False).state_dict()
    assert identify_layout(vdsr) == [("vdsr", (2, 3, 4, 8))]  # pre-upsampling: shapes do not tell
    espcn["body.0.weight"] = torch.zeros(64, 1, 3, 3)
    assert identify_layout(espcn) == []


def test_load_checkpoint_keeps_scisr_metadata_for_normalization() -> None:
    model = sciSR.load_checkpoint(ESPCN_X4)
    assert model.checkpoint_format == "scisr" and model._weights_metadata["scisr_norm"] == "minmax"


# --------------------------------------------------------------------------------------- strictness
@pytest.mark.parametrize("change", ["extra", "missing"])
def test_missing_and_unexpected_keys_are_errors_on_every_route(tmp_path, change: str) -> None:
    model = sciSR.create_model("espcn", scale=4, pretrained=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if change == "extra":
        sd["body.6.weight"] = torch.zeros(1)
    else:
        del sd["body.4.bias"]
    path = tmp_path / "changed.safetensors"
    save_file(sd, str(path), metadata={"spec": json.dumps(model.spec.as_dict(), default=str)})
    word = "unexpected" if change == "extra" else "missing"
    routes = {
        "load_weights_into": lambda: load_weights_into(
            sciSR.create_model("espcn", scale=4, pretrained=False), path
        ),
        "create_model": lambda: sciSR.create_model("espcn", scale=4, pretrained=path),
        "load_checkpoint": lambda: sciSR.load_checkpoint(path),
        "downscale": lambda: sciSR.downscale(torch.rand(1, 1, 8, 8), model="espcn", scale=4, weights=path),
    }
    for name, load in routes.items():
        with pytest.raises(ValueError) as err:
            load()
        assert f"1 {word} key(s)" in one_line(err), name


# --------------------------------------------------------------------------------------- registry of formats
def test_formats_are_tried_by_priority_and_names_are_unique() -> None:
    prios = [f.priority for f in FORMATS]
    assert prios == sorted(prios)
    assert known_formats()[0] == "scisr" and known_formats()[-1] == "scisr-layout"
    assert known_formats().index("super-image-edsr") < known_formats().index("edsr-official")
    with pytest.raises(ValueError, match="already registered"):
        register_format(CheckpointFormat("carn", ("carn",), "dup", lambda sd, ctx: False, FORMATS[0].convert))
