"""Imported Real-ESRGAN x4plus weights (``esrgan_x4_c3_realesrgan``) and the ncnn reader that converted them.

The shipped file is checked against its card (sha256), loaded through the public route and run on
a shipped real photo crop. The ncnn ``.param``/``.bin`` reader of
``tools/weights/convert_realesrgan_ncnn.py`` is checked on small synthetic files written here
(fp16 blobs padded to 4 bytes, raw and tagged fp32 blobs, fp32 biases, array parameters).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sciSR
from sciSR import metrics
from sciSR.data import sample_path
from sciSR.models.registry import WEIGHTS_DIR

WEIGHTS = WEIGHTS_DIR / "esrgan_x4_c3_realesrgan.safetensors"
TOOLS = Path(__file__).resolve().parents[2] / "tools" / "weights"
#: The card written beside the file by the converter, else the record of the project's own conversion.
CARD = next(
    (c for c in (WEIGHTS.with_suffix(".md"), TOOLS / "cards" / "esrgan_x4_c3_realesrgan.md") if c.is_file()),
    TOOLS / "cards" / "esrgan_x4_c3_realesrgan.md",
)
CONVERTER = TOOLS / "convert_realesrgan_ncnn.py"
#: The converted file (33.5 MB) is not shipped (the converted-weights budget is 40 MB): the tests of
#: the file run where the converter has written it into the weights folder.
needs_file = pytest.mark.skipif(
    not WEIGHTS.is_file(),
    reason="Real-ESRGAN weights not converted here (tools/weights/convert_realesrgan_ncnn.py)",
)


@pytest.fixture(scope="module")
def conv_tool():
    if not CONVERTER.is_file():
        pytest.skip("tools/weights (source checkout) not available")
    spec = importlib.util.spec_from_file_location("convert_realesrgan_ncnn", CONVERTER)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
    finally:
        del sys.modules[spec.name]
    return mod


@pytest.fixture(scope="module")
def model():
    if not WEIGHTS.is_file():
        pytest.skip("Real-ESRGAN weights not converted here (tools/weights/convert_realesrgan_ncnn.py)")
    return sciSR.create_model("esrgan", scale=4, in_channels=3, pretrained=WEIGHTS)


# ----------------------------------------------------------------------------------- shipped file
@needs_file
def test_shipped_file_matches_its_card() -> None:
    m = re.search(r"\*\*sha256\*\*: `([0-9a-f]{64})`", CARD.read_text(encoding="utf-8"))
    assert m, "the card names no sha256"
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == m[1]


@needs_file
def test_shipped_file_metadata_and_storage() -> None:
    from safetensors.torch import load_file

    from sciSR.models.weights_io import file_spec, read_state_dict

    _, meta = read_state_dict(WEIGHTS)
    spec = file_spec(meta)
    assert spec is not None and (spec["name"], spec["scale"], spec["in_channels"]) == ("esrgan", 4, 3)
    assert spec["extra"] == {"n_feats": 64, "n_blocks": 23, "gc": 32, "res_scale": 0.2}
    assert meta["scisr_norm"] == "none" and "BSD-3-Clause" in meta["licence"]
    sd = load_file(str(WEIGHTS))
    assert {v.dtype for k, v in sd.items() if k.endswith(".weight")} == {torch.float16}
    assert {v.dtype for k, v in sd.items() if k.endswith(".bias")} == {torch.float32}
    assert sum(v.numel() for v in sd.values()) == 16_697_987


@needs_file
def test_loaded_model_holds_the_file(model) -> None:
    from safetensors.torch import load_file

    sd = load_file(str(WEIGHTS))
    got = model.state_dict()
    assert set(got) == set(sd)
    for k, v in sd.items():
        assert torch.equal(got[k], v.float()), k


def test_output_on_a_real_photo_is_closer_to_hr_than_nearest(model) -> None:
    """Ladybird crop (shipped sample, RGB): MATLAB-bicubic ÷4, then the model; nearest ×4 as the bar."""
    from PIL import Image

    from sciSR.train.degrade import degrade

    with Image.open(sample_path("ladybird_crop.png")) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    hr = np.ascontiguousarray(rgb[64:192, 64:192].transpose(2, 0, 1))
    lr = degrade(torch.from_numpy(hr)[None], 4, "matlab")
    with torch.inference_mode():
        sr = model(lr)[0].numpy()
    assert sr.shape == hr.shape and np.isfinite(sr).all()
    nearest = np.repeat(np.repeat(lr[0].numpy(), 4, axis=1), 4, axis=2)
    p_model = metrics.psnr(metrics.shave(np.clip(sr, 0, 1), 4), metrics.shave(hr, 4), data_range=1.0)
    p_near = metrics.psnr(metrics.shave(nearest, 4), metrics.shave(hr, 4), data_range=1.0)
    assert p_model > p_near + 0.5, (p_model, p_near)  # 21.0 vs 19.6 dB when written
    assert abs(float(sr.mean() - hr.mean())) < 0.03  # no brightness shift (0.013 when written)


# ------------------------------------------------------------------------------------ ncnn reader
FP16 = struct.pack("<I", 0x01306B47)
FP32_TAGGED = struct.pack("<I", 0x0002C056)
FP32_RAW = b"\0\0\0\0"

PARAM = """7767517
5 6
Input            data     0 1 data
Convolution      conv_a   1 1 data a 0=3 1=1 4=0 5=1 6=3 9=2 -23310=1,2.000000e-01
Split            split_0  1 2 a a_0 a_1
Convolution      conv_b   1 1 a_0 b 0=2 1=1 5=0 6=6
Eltwise          add_0    2 1 b a_1 output 0=1 -23301=2,2.000000e-01,1.000000e+00
"""


def synthetic_bin(fp32_flag: bytes = FP32_RAW) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """conv_a: 3 fp16 kernel values (6 bytes + 2 padding) and 3 fp32 biases; conv_b: 6 fp32 values."""
    wa = np.array([0.5, -1.25, 3.0], dtype="<f2")
    ba = np.array([0.1, -0.2, 0.3], dtype="<f4")
    wb = np.array([1e-3, 2.5, -7.0, 0.125, 9.0, -0.5], dtype="<f4")
    buf = FP16 + wa.tobytes() + b"\0\0" + ba.tobytes() + fp32_flag + wb.tobytes()
    return buf, wa.astype(np.float32), ba, wb


def test_parse_param_reads_layers_and_array_values(conv_tool) -> None:
    layers = conv_tool.parse_param(PARAM)
    assert [ly.type for ly in layers] == ["Input", "Convolution", "Split", "Convolution", "Eltwise"]
    a = layers[1]
    assert (a.name, a.inputs, a.outputs) == ("conv_a", ["data"], ["a"])
    assert a.params[0] == 3 and isinstance(a.params[0], int)
    assert a.params[10] == pytest.approx([0.2]) and a.params[9] == 2
    assert layers[2].outputs == ["a_0", "a_1"]
    assert layers[4].params[1] == pytest.approx([0.2, 1.0])


@pytest.mark.parametrize("fp32_flag", [FP32_RAW, FP32_TAGGED], ids=["fp32-raw", "fp32-tagged"])
def test_read_conv_weights_fp16_padding_and_fp32(conv_tool, fp32_flag: bytes) -> None:
    buf, wa, ba, wb = synthetic_bin(fp32_flag)
    convs = conv_tool.read_conv_weights(conv_tool.parse_param(PARAM), buf)
    assert [c.name for c in convs] == ["conv_a", "conv_b"]
    a, b = convs
    assert a.storage == "fp16" and a.weight.shape == (3, 1, 1, 1) and a.weight.dtype == np.float32
    np.testing.assert_array_equal(a.weight.ravel(), wa)
    np.testing.assert_array_equal(a.bias, ba)
    assert a.activation == (2, (pytest.approx(0.2),))
    assert b.storage == "fp32" and b.bias is None and b.weight.shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(b.weight.ravel(), wb)
    assert b.activation == (0, ())


def test_read_conv_weights_refuses_bad_files(conv_tool) -> None:
    layers = conv_tool.parse_param(PARAM)
    buf, *_ = synthetic_bin()
    with pytest.raises(ValueError, match="truncated"):
        conv_tool.read_conv_weights(layers, buf[:-4])
    with pytest.raises(ValueError, match=r"wrong \.param/\.bin pair"):
        conv_tool.read_conv_weights(layers, buf + b"\0\0\0\0")
    with pytest.raises(ValueError, match="not a weight blob"):
        conv_tool.read_conv_weights(layers, b"\x01\x02\x03\x04" + buf[4:])
    with pytest.raises(ValueError, match="int8"):
        conv_tool.read_conv_weights(layers, struct.pack("<I", 0x000D4B38) + buf[4:])
    scaled = conv_tool.parse_param(PARAM.replace("5 6", "6 7") + "Scale scale_0 1 1 output out2 0=1\n")
    with pytest.raises(ValueError, match="unsupported ncnn layer type"):
        conv_tool.read_conv_weights(scaled, buf)


def test_parse_param_refuses_bad_text(conv_tool) -> None:
    with pytest.raises(ValueError, match="magic number"):
        conv_tool.parse_param("123\n1 1\nInput data 0 1 data\n")
    with pytest.raises(ValueError, match="announces 6 layers"):
        conv_tool.parse_param(PARAM.replace("5 6", "6 6"))
    with pytest.raises(ValueError, match=r"malformed ncnn \.param line 4"):
        conv_tool.parse_param(PARAM.replace("6=3 9=2", "6=3 9"))
