"""Weight files: safe reading, strict loading, sciSR metadata, model cards (``sciSR.models.weights_io``)."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import sciSR
from sciSR.models.registry import get_entry
from sciSR.models.weights_io import (
    CardScore,
    architecture_error,
    file_spec,
    flatten_state_dict,
    load_weights_into,
    read_model_card,
    read_state_dict,
    same_architecture,
    save_weights,
    state_dict_mismatch,
)


def _tiny(name: str, scale: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return sciSR.create_model(name, scale=scale, pretrained=False, **(get_entry(name).tiny or {}))


class _Plain(nn.Module):
    """A user's module: no spec, no registry name."""

    def __init__(self, scale: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        if scale is not None:
            self.scale = scale


# ------------------------------------------------------------------------------------ reading
def test_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^weights file not found: .*nothing\.pth$"):
        read_state_dict(tmp_path / "nothing.pth")


def test_torch_files_are_read_on_the_cpu_and_never_unpickle_code(tmp_path, monkeypatch) -> None:
    """``weights_only=True`` is passed explicitly: torch < 2.6 (allowed by the requirements) defaults
    to full unpickling."""
    path = tmp_path / "w.pth"
    torch.save({"conv.weight": torch.ones(2, 1, 3, 3)}, path)
    calls = []
    real = torch.load

    def spy(*args, **kw):
        calls.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(torch, "load", spy)
    sd, meta = read_state_dict(path)
    assert calls == [{"map_location": "cpu", "weights_only": True}]
    assert list(sd) == ["conv.weight"] and meta == {}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (pickle.dumps([1, 2]), "(it is damaged or holds pickled objects other than tensors)"),
        (b"not a checkpoint", "(it is damaged or holds pickled objects other than tensors)"),
        (b"hello world garbage", "(unreadable: KeyError, truncated or not a PyTorch file)"),
    ],
)
def test_unreadable_torch_files_say_why(tmp_path, payload: bytes, reason: str) -> None:
    path = tmp_path / "odd.pt"
    path.write_bytes(payload)
    with pytest.raises(ValueError) as err:
        read_state_dict(path)
    msg = str(err.value)
    assert msg.startswith("refusing to load odd.pt: it is not a plain tensor checkpoint " + reason)
    assert "\n" not in msg


def test_safetensors_errors_quote_the_first_line_or_the_error_type(tmp_path, monkeypatch) -> None:
    from safetensors import safe_open

    good = tmp_path / "good.safetensors"
    save_weights(_Plain(), good)
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(good.read_bytes()[:60])
    try:
        with safe_open(str(bad), framework="pt"):
            pass
    except Exception as exc:  # the library's own wording
        first = str(exc).strip().splitlines()[0]
    with pytest.raises(ValueError) as err:
        read_state_dict(bad)
    assert str(err.value).startswith(f"cannot read cut.safetensors as safetensors ({first}); the file is")

    def silent(*a, **k):
        raise OSError()

    monkeypatch.setattr("safetensors.safe_open", silent)
    with pytest.raises(ValueError, match=r"^cannot read good\.safetensors as safetensors \(OSError\); "):
        read_state_dict(good)


def test_a_torch_file_without_tensors_is_named(tmp_path) -> None:
    path = tmp_path / "cfg.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(ValueError, match=r"^cfg\.pth holds no tensors; expected a state dict$"):
        read_state_dict(path)


# ------------------------------------------------------------------------------------ flattening
def test_flatten_unwraps_up_to_three_levels_and_dataparallel_prefixes() -> None:
    t = torch.zeros(1)
    assert flatten_state_dict({"state_dict": {"model": {"params_ema": {"w": t}}}}) == {"w": t}
    assert flatten_state_dict({"module.a": t, "module.b.c": t}) == {"a": t, "b.c": t}
    assert flatten_state_dict({"module.a": t, "b": t}) == {"module.a": t, "b": t}  # not all prefixed
    assert flatten_state_dict({"w": t, "step": 7}) == {"w": t}  # non-tensor entries dropped
    with pytest.raises(ValueError, match=r"^checkpoint holds no tensors; expected a state dict$"):
        flatten_state_dict(
            {"a": {"state_dict": {"model": {"params": {"w": t}}}}}
        )  # four levels: not a layout
    for bad in ({"epoch": 3}, {"params": {"lr": 1.0}}, [t, t], t):
        with pytest.raises(ValueError, match=r"^x\.pt holds no tensors"):
            flatten_state_dict(bad, "x.pt")


# ------------------------------------------------------------------------------------ saving
def test_save_weights_stores_strings_as_is_and_json_for_the_rest(tmp_path) -> None:
    path = save_weights(
        _Plain(), tmp_path / "p.safetensors", {"note": "fine-tuned", "epochs": 3, "stats": {"min": 0.5}}
    )
    sd, meta = read_state_dict(path)
    assert meta == {"note": "fine-tuned", "epochs": "3", "stats": '{"min": 0.5}'}  # a plain module: no spec
    assert set(sd) == {"conv.weight", "conv.bias"}
    assert not list(tmp_path.glob(".*tmp"))
    model = _tiny("espcn")
    _, meta = read_state_dict(save_weights(model, tmp_path / "e.safetensors"))
    assert json.loads(meta["spec"]) == json.loads(json.dumps(model.spec.as_dict()))


# ------------------------------------------------------------------------------------ metadata checks
def test_state_dict_mismatch_lists_every_problem() -> None:
    own = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1)}
    assert state_dict_mismatch(own, dict(own)) is None
    sd = {"a": torch.zeros(4), "b": torch.zeros(3), "z": torch.zeros(1)}
    assert state_dict_mismatch(own, sd) == (
        "'a' is (4,) in the file, (2,) in the model; 1 missing key(s) e.g. 'c'; 1 unexpected key(s) e.g. 'z'"
    )


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ('{"name": "espcn", "scale": 2}', True),
        ('{"scale": 2}', False),
        ('{"name": 3}', False),
        ('["espcn"]', False),
        ("not json", False),
        ("", False),
    ],
)
def test_file_spec_accepts_only_a_named_mapping(raw: str, ok: bool) -> None:
    got = file_spec({"spec": raw})
    assert (got == json.loads(raw)) if ok else got is None
    assert file_spec({}) is None


def test_architecture_error_names_both_and_the_scale_or_a_question_mark() -> None:
    msg = str(architecture_error("f.safetensors", {"name": "espcn", "scale": 3}, "vdsr"))
    assert msg.startswith(
        "f.safetensors holds sciSR 'espcn' weights (×3, per its metadata), not 'vdsr' weights"
    )
    assert "(×?, per its metadata)" in str(architecture_error("f", {"name": "espcn"}, "vdsr"))


@pytest.mark.parametrize(
    ("spec", "same"),
    [
        ({"name": "edsr", "scale": 2, "extra": {"n_resblocks": 2, "n_feats": 8}}, True),  # alias of one class
        ({"name": "edsr"}, True),  # without a scale: the model's own
        ({"name": "edsr", "scale": 5}, False),  # a scale EDSR does not build: not this architecture
        ({"name": "edsr", "in_channels": -1}, False),
        ({"name": "edsr", "out_channels": -1}, False),
        ({"name": "edsr", "extra": {"no_such_option": 1}}, False),
        ({"name": "espcn", "scale": 2}, False),
    ],
)
def test_same_architecture_builds_the_named_entry(spec: dict, same: bool) -> None:
    model = sciSR.create_model("edsr_baseline", scale=2, pretrained=False, n_resblocks=2, n_feats=8)
    assert same_architecture(spec, model) is same


def test_same_architecture_falls_back_to_the_cpu_when_a_builder_cannot_use_meta() -> None:
    model = _tiny("swinir")  # its builder copies data, which meta tensors do not hold
    with pytest.raises(NotImplementedError), torch.device("meta"):
        _tiny("swinir")
    spec = {**model.spec.as_dict(), "name": "swinir"}
    assert same_architecture(spec, model)


def test_same_forward_function_in_an_unrelated_class_is_another_architecture() -> None:
    espcn = _tiny("espcn")

    class Impostor(nn.Module):
        forward_sr = type(espcn).forward_sr
        scale = 2

    assert same_architecture(espcn.spec.as_dict(), espcn)
    assert not same_architecture(espcn.spec.as_dict(), Impostor())
    assert not same_architecture(espcn.spec.as_dict(), _Plain(scale=2))


# ------------------------------------------------------------------------------------ strict loading
def test_loading_sciSR_files_into_a_plain_module(tmp_path) -> None:
    """Modules without ``registry_name``/``scale``/``spec`` load by keys and shapes alone."""
    src = _Plain()
    path = save_weights(src, tmp_path / "p.safetensors", {"spec": json.dumps({"name": "espcn"})})
    dst = _Plain()
    meta = load_weights_into(dst, path)
    assert torch.equal(dst.conv.weight, src.conv.weight) and dst._weights_metadata == meta
    assert meta["spec"] == '{"name": "espcn"}'
    wrong = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError) as err:
        load_weights_into(wrong, path)
    assert str(err.value).startswith("p.safetensors does not fit Sequential (2 missing key(s) e.g. '0.bias'")


def test_loading_refuses_another_architecture_naming_the_file(tmp_path) -> None:
    path = save_weights(_tiny("espcn"), tmp_path / "e.safetensors")
    with pytest.raises(ValueError, match=r"^e\.safetensors holds sciSR 'espcn' weights \(×2, per its meta"):
        load_weights_into(_tiny("vdsr"), path)


def test_other_scale_message_and_warning_name_the_model_and_the_caller(tmp_path) -> None:
    spec3 = json.dumps({"name": "plain", "scale": 3})
    path = save_weights(_Plain(), tmp_path / "p3.safetensors", {"spec": spec3})
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        load_weights_into(_Plain(scale=2), path)
    assert len(got) == 1 and got[0].category is UserWarning
    assert str(got[0].message) == (
        "p3.safetensors was trained for ×3 and is loaded into a ×2 _Plain (same shapes: a pre-upsampling net)"
    )
    assert "sciSR" not in Path(got[0].filename).parts  # attributed to the caller, not to sciSR
    wide = nn.Module()
    wide.conv, wide.scale = nn.Conv2d(1, 4, 3), 2
    with pytest.raises(ValueError) as err:
        load_weights_into(wide, path)
    assert str(err.value).startswith(
        "p3.safetensors (×3 weights per its metadata, the model is ×2) does not fit Module ('conv.bias' is"
    )
    noscale = save_weights(_Plain(), tmp_path / "p.safetensors", {"spec": json.dumps({"name": "plain"})})
    with pytest.raises(ValueError) as err:
        load_weights_into(wide, noscale)
    assert str(err.value).startswith("p.safetensors does not fit Module (")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_weights_into(_Plain(scale=2), noscale)  # no scale in the metadata: nothing to warn about


# ------------------------------------------------------------------------------------ model cards
CARD = (
    "# Model card: `toy`\n\n* **Validation during training** (held out of training, training pool): "
    "skimage.camera, skimage.astronaut — final PSNR 32.41 dB vs bicubic 30.99 dB.\n"
    + """

## Held-out scores (reserved evaluation data, never trained or tuned on)

| data | protocol | metric | this model | bicubic |
|:---|:---|---|---:|---:|
| photos A | Y channel, 2 px shaved | PSNR dB | 39.44 | 37.78 |
| same | same | SSIM | 0.9661 | 0.9566 |
| DEM B | block-mean LR | RMSE m | 3.483 | 3.388 |
| same | area LR | RMSE m | 3.1 | 3.2 |
| rain C | same | MAE mm/h | 1.2 | 1.3 |
a note | with | four | pipes | inside
| a | short | row |

## Limits

* none
"""
)


def test_read_model_card_parses_validation_and_every_row(tmp_path) -> None:
    path = tmp_path / "toy.md"
    path.write_text(CARD, encoding="utf-8")
    card = read_model_card(path)
    assert card.validation == CardScore(
        "skimage.camera, skimage.astronaut", "training validation", "PSNR dB", 32.41, 30.99
    )
    assert card.validation.beats_baseline
    assert card.heldout == (
        CardScore("photos A", "Y channel, 2 px shaved", "PSNR dB", 39.44, 37.78),
        CardScore("photos A", "Y channel, 2 px shaved", "SSIM", 0.9661, 0.9566),
        CardScore("DEM B", "block-mean LR", "RMSE m", 3.483, 3.388),
        CardScore("DEM B", "area LR", "RMSE m", 3.1, 3.2),
        CardScore("rain C", "area LR", "MAE mm/h", 1.2, 1.3),
    )
    assert [r.beats_baseline for r in card.heldout] == [True, True, False, True, True]


def test_read_model_card_without_scores(tmp_path) -> None:
    path = tmp_path / "bare.md"
    path.write_text("# Model card\n\n| data | protocol | metric | this model | bicubic |\n", encoding="utf-8")
    card = read_model_card(path)
    assert card.validation is None and card.heldout == ()
