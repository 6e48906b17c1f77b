"""The shipped-weights catalogue: discovery, lookup by (model, scale, channels, tag), the default model.

Weight files live in :data:`WEIGHTS_DIR` and are named ``{model}_x{scale}_c{channels}.safetensors``
(natural-photo weights) or ``{model}_x{scale}_c{channels}_{tag}.safetensors`` (weights for one kind
of data, e.g. ``rcan_x4_c1_dem``), each with a Markdown model card of the same stem beside it.
The catalogue is read from the folder at every call, so files added later are found; what is
read from a file (metadata header, card, sha256) is cached per file state (size and mtime).

Lookup (:func:`find_weights`) for ``(model, scale, in_channels, tag)``: a file with exactly that
channel count first; else an RGB (``c3``) file, whose first and last convolutions are collapsed
to ``in_channels`` by :func:`sciSR.models.checkpoints.adapt_input_channels`. A 1-channel file does
not serve a multi-channel model (leave ``in_channels`` out and the bands run one at a time).

The default model (``sciSR.downscale(data)`` with ``model="auto"``) follows
:func:`choose_model`; see ``docs/weights.md``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import SRModel
    from .weights_io import CardScore

#: Folder of the shipped weight files (tests point it at a temporary folder).
WEIGHTS_DIR = Path(__file__).with_name("weights")
#: ``{model}_x{scale}_c{channels}[_{tag}].safetensors``.
NAME_PATTERN = re.compile(
    r"^(?P<model>.+)_x(?P<scale>\d+)_c(?P<ch>\d+)(?:_(?P<tag>[a-z0-9]+))?\.safetensors$"
)
#: A ``weights=`` string that names a tag rather than a file.
TAG_PATTERN = re.compile(r"^[a-z0-9]+$")
#: Models whose weights do not depend on the scale (a continuous upsampler): one file serves every
#: scale. A file can also say so itself with the metadata entry ``scisr_any_scale = "1"``.
ANY_SCALE_MODELS = frozenset({"liif"})
#: Tags of weights fine-tuned on one kind of scientific data (what :func:`choose_model` matches).
DOMAIN_TAGS = ("dem", "precip", "mri", "temperature")
#: Tags of perceptual (GAN) weights: sharper texture, lower fidelity; never picked by default.
PERCEPTUAL_TAGS = frozenset({"realesrgan"})
#: Channel count of the files that may serve other channel counts (RGB, collapsed).
CONVERTIBLE_CHANNELS = 3
#: Metadata entries a weight file may carry for the input convention its weights expect
#: (an imported DIV2K model's RGB mean shift): JSON list of per-channel means, and a float.
INPUT_MEAN_KEY = "scisr_input_mean"
VALUE_RANGE_KEY = "scisr_value_range"

_LOCK = threading.Lock()
_ENTRY_CACHE: dict[tuple[Any, ...], WeightEntry] = {}
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


# ----------------------------------------------------------------------------------- file reading
def parse_weight_name(filename: str) -> tuple[str, int, int, str | None] | None:
    """``(model, scale, channels, tag)`` from a weight file name, or ``None`` when it does not fit.

    >>> parse_weight_name("rcan_x4_c1_dem.safetensors")
    ('rcan', 4, 1, 'dem')
    >>> parse_weight_name("edsr_baseline_x2_c1.safetensors")
    ('edsr_baseline', 2, 1, None)
    """
    m = NAME_PATTERN.match(filename)
    if m is None:
        return None
    return m["model"], int(m["scale"]), int(m["ch"]), m["tag"]


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file, read from its header only (no tensors loaded).

    Raises:
        ValueError: The file is not a readable safetensors file.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the header of {p.name} as safetensors ({err})") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in (meta or {}).items()}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, cached per (path, size, modification time)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _LOCK:
        hit = _SHA_CACHE.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _LOCK:
        _SHA_CACHE[key] = digest
    return digest


_CARD_BULLET = r"^\s*[*-]\s+\*\*(?:{})\*\*[^:\n]*:\s*(?P<text>.+)$"
_DATA_RE = re.compile(_CARD_BULLET.format("Training data|Data|Trained on|Fine-tuning data"), re.M)
_LICENCE_RE = re.compile(_CARD_BULLET.format("Licen[cs]e"), re.M)
_LICENCE_SECTION = re.compile(r"^#+\s*Licen[cs]e[^\n]*\n+(?P<text>[^\n#]+)", re.M)


def _short(text: str, limit: int = 48) -> str:
    """First clause of a card sentence (up to a dash, semicolon or parenthesis), at most ``limit`` chars."""
    s = re.split(r"\s+—\s+|;\s|\s\(|\.\s", text.strip().strip("`"), maxsplit=1)[0].strip().rstrip(".:,")
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def _card_fields(card_path: Path | None) -> tuple[str, str, tuple[CardScore, ...]]:
    """``(data, licence, held-out rows)`` of a model card (placeholders when absent or unreadable)."""
    if card_path is None:
        return "no card", "not stated", ()
    from .weights_io import read_model_card

    text = card_path.read_text(encoding="utf-8")
    m = _DATA_RE.search(text)
    data = _short(m["text"]) if m else "not stated"
    m = _LICENCE_RE.search(text) or _LICENCE_SECTION.search(text)
    if m:
        licence = _short(m["text"], 32)
    elif "sciSR's own recipe" in text:
        licence = "BSD-3-Clause (sciSR)"  # trained by the project's own recipe: the package licence
    else:
        licence = "not stated"
    try:
        heldout = read_model_card(card_path).heldout
    except ValueError:
        heldout = ()
    return data, licence, heldout


# ----------------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class WeightEntry:
    """One shipped weight file and what its card and metadata say.

    Attributes:
        name: File stem (``"rcan_x4_c1_dem"``).
        model: Registry name of the architecture.
        scale: Scale the weights were trained for.
        channels: Input channels of the weights.
        tag: ``None`` for natural-photo weights, else the kind of data (``"dem"``, ``"realesrgan"``).
        path: The ``.safetensors`` file.
        card_path: The Markdown model card beside it (``None`` when missing).
        data: Training data, first clause of the card's "Training data" line.
        licence: Licence, from the card (``"BSD-3-Clause (sciSR)"`` for the project's own recipes).
        heldout: Held-out score rows of the card.
        size: File size in bytes.
        metadata: Safetensors metadata (``spec``, ``scisr_norm``...).
    """

    name: str
    model: str
    scale: int
    channels: int
    tag: str | None
    path: Path
    card_path: Path | None = field(default=None, repr=False)
    data: str = field(default="", repr=False)
    licence: str = field(default="", repr=False)
    heldout: tuple[CardScore, ...] = field(default=(), repr=False)
    size: int = field(default=0, repr=False)
    metadata: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        """Hex sha256 of the file (computed on first use, cached per file state)."""
        return file_sha256(self.path)

    @property
    def spec(self) -> dict[str, Any] | None:
        """The :class:`~sciSR.models.base.ModelSpec` stored by ``save_weights`` (``None`` if absent)."""
        raw = self.metadata.get("spec")
        try:
            spec = json.loads(raw) if raw else None
        except ValueError:
            return None
        return spec if isinstance(spec, dict) else None

    @property
    def arch_kwargs(self) -> dict[str, Any]:
        """Architecture options the weights were trained with (the spec's ``extra``; ``{}`` if absent).

        A shipped file may use a configuration other than the registry default (a reduced-depth
        RCAN): the model is built from these, not from the builder's defaults.
        """
        spec = self.spec or {}
        extra = spec.get("extra") if spec.get("name") in (None, self.model) else None
        return dict(extra) if isinstance(extra, dict) else {}

    @property
    def out_channels(self) -> int:
        """Output channels of the weights (the spec's, else the input channels)."""
        return int((self.spec or {}).get("out_channels") or self.channels)

    @property
    def any_scale(self) -> bool:
        """True when one file serves every scale (:data:`ANY_SCALE_MODELS`, or its metadata says so)."""
        return self.model in ANY_SCALE_MODELS or self.metadata.get("scisr_any_scale") in ("1", "true")

    def serves(self, scale: int) -> bool:
        """Whether the weights can run at ``scale``."""
        return int(scale) == self.scale or self.any_scale

    @property
    def perceptual(self) -> bool:
        """GAN-style weights (texture over fidelity), never a default."""
        return self.tag in PERCEPTUAL_TAGS

    @property
    def scores(self) -> str:
        """Held-out rows in one short line: ``photos PSNR dB 33.66 vs 32.59 (bicubic); ...``."""
        parts = []
        for r in self.heldout:
            what = re.sub(r"\s*\(.*", "", r.data.split(",")[0]).strip()
            parts.append(f"{what} {r.metric} {r.model:g} vs {r.baseline:g}")
        return "; ".join(parts) + (" (model vs bicubic)" if parts else "none on card")

    def _rows(self, metric: str | None, scale: int | None) -> list[CardScore]:
        """Held-out rows of ``metric``; for a card with rows per scale (``×2`` in the protocol, as
        any-scale files have), those of ``scale`` (default: the file's own scale)."""
        rows = [r for r in self.heldout if metric is None or r.metric.split()[0].upper() == metric.upper()]
        want = f"×{int(scale if scale is not None else self.scale)}"
        marked = [r for r in rows if re.search(r"×\d+\b", f"{r.data} {r.protocol}")]
        if marked:
            rows = [r for r in marked if re.search(rf"{want}\b", f"{r.data} {r.protocol}")]
        return rows

    def scored_at(self, scale: int) -> bool:
        """Whether the card has held-out rows marked with ``×scale`` (cards of any-scale files)."""
        return any(re.search(rf"×{int(scale)}\b", f"{r.data} {r.protocol}") for r in self.heldout)

    def heldout_gain(self, metric: str | None = None, scale: int | None = None) -> float | None:
        """Relative held-out gain over bicubic of the card's first row (of ``metric``, if given).

        PSNR/SSIM rows: ``(model - bicubic) / bicubic``; error rows (RMSE...):
        ``(bicubic - model) / bicubic``. Positive means better than bicubic. ``None`` without rows.
        A card with rows per scale is read at ``scale`` (default: the file's own).
        """
        rows = self._rows(metric, scale)
        if not rows:
            return None
        r = rows[0]
        base = abs(r.baseline) or 1.0
        return (r.model - r.baseline) / base if r.higher_is_better else (r.baseline - r.model) / base

    def domain_gain(self, domain: str, scale: int | None = None) -> float | None:
        """Relative held-out gain over bicubic on the card's row for ``domain``'s reserved data
        (:data:`DOMAIN_ROWS`), ``None`` when the card has no such row."""
        prefix = DOMAIN_ROWS.get(domain)
        rows = [r for r in self._rows(None, scale) if prefix and r.data.startswith(prefix)]
        if not rows:
            return None
        r = rows[0]
        base = abs(r.baseline) or 1.0
        return (r.model - r.baseline) / base if r.higher_is_better else (r.baseline - r.model) / base

    def photo_psnr_gain(self, scale: int | None = None) -> float | None:
        """Held-out PSNR gain over bicubic in dB on photos (the card's first photo PSNR row; for a
        card with rows per scale, the first one of ``scale``, default the file's own)."""
        rows = self._rows("PSNR", scale)
        photos = [r for r in rows if "photo" in r.data.lower()] or rows
        return photos[0].model - photos[0].baseline if photos else None


#: The held-out card row (data label prefix, from ``recipes/pretrain/evaluate_heldout.py``) that scores
#: weights on each kind of data.
DOMAIN_ROWS = {
    "dem": "Olinda DEM",
    "precip": "Stage IV",
    "temperature": "EURO-CORDEX",
    "mri": "Colin27",
}


def _entry(path: Path) -> WeightEntry | None:
    parsed = parse_weight_name(path.name)
    if parsed is None:
        return None
    card = path.with_suffix(".md")
    st = path.stat()
    cst = card.stat() if card.is_file() else None
    key = (str(path), st.st_size, st.st_mtime_ns, cst.st_mtime_ns if cst else None)
    with _LOCK:
        hit = _ENTRY_CACHE.get(key)
    if hit is not None:
        return hit
    model, scale, ch, tag = parsed
    try:
        meta = read_metadata(path)
    except ValueError:
        meta = {}
    data, licence, heldout = _card_fields(card if cst else None)
    e = WeightEntry(
        name=path.stem,
        model=model,
        scale=scale,
        channels=ch,
        tag=tag,
        path=path,
        card_path=card if cst else None,
        data=data,
        licence=licence,
        heldout=heldout,
        size=st.st_size,
        metadata=meta,
    )
    with _LOCK:
        _ENTRY_CACHE[key] = e
    return e


def weights_dir(folder: str | Path | None = None) -> Path:
    """``folder``, or :data:`WEIGHTS_DIR` read at call time (so tests can point it elsewhere)."""
    return Path(folder) if folder is not None else Path(WEIGHTS_DIR)


def discover(folder: str | Path | None = None) -> list[WeightEntry]:
    """Every weight file in ``folder`` (default :data:`WEIGHTS_DIR`) whose name fits the pattern,
    sorted by model, tag, scale and channels."""
    root = weights_dir(folder)
    if not root.is_dir():
        return []
    found = [e for p in root.glob("*.safetensors") if (e := _entry(p)) is not None]
    return sorted(found, key=lambda e: (e.model, e.tag or "", e.scale, e.channels))


class WeightTable(list):
    """A list of :class:`WeightEntry` that prints as a table (``print(sciSR.list_weights())``)."""

    def __repr__(self) -> str:
        return format_table(self)

    __str__ = __repr__


def list_weights(
    model: str | None = None, tag: str | None = None, folder: str | Path | None = None
) -> WeightTable:
    """The shipped weights, optionally only those of one model and/or one tag.

    Args:
        model: Registry name (``"rcan"``); ``None`` for all.
        tag: ``"dem"``, ``"realesrgan"``...; ``"photo"`` for the untagged natural-photo weights;
            ``None`` for all.
        folder: Another weights folder (default: the shipped one).

    Returns:
        A list of :class:`WeightEntry` rows; printing it shows a table (name, scale, channels,
        tag, data, licence, held-out scores, size).
    """
    rows = discover(folder)
    if model is not None:
        key = str(model).lower().replace("-", "_")
        rows = [e for e in rows if e.model == key]
    if tag is not None:
        rows = [e for e in rows if (e.tag or "photo") == str(tag).lower()]
    return WeightTable(rows)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def format_table(rows: Iterable[WeightEntry]) -> str:
    """The rows as a plain-text table (no pandas)."""
    rows = list(rows)
    if not rows:
        return "(no shipped weights match)"
    head = ("name", "scale", "channels", "tag", "data", "licence", "size", "held-out scores")
    body = [
        (e.name, f"×{e.scale}" + ("+" if e.any_scale else ""), str(e.channels), e.tag or "-",
         e.data, e.licence, _size(e.size), e.scores)
        for e in rows
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in (head, *body)]
    if any(e.any_scale for e in rows):
        lines.append("(×S+: one file serves every scale)")
    return "\n".join(line.rstrip() for line in lines)


# ----------------------------------------------------------------------------------- lookup
@dataclass(frozen=True)
class WeightMatch:
    """A shipped file chosen for a model request.

    Attributes:
        entry: The file.
        in_channels: Channels of the model that will be built (``entry.channels`` unless converted).
    """

    entry: WeightEntry
    in_channels: int

    @property
    def converted(self) -> bool:
        """True when RGB weights are collapsed to another channel count."""
        return self.in_channels != self.entry.channels


def is_tag(value: Any) -> bool:
    """True for a ``weights=`` value that names a tag (a lower-case word that is not an existing file).

    A :class:`~pathlib.Path` is always a file; a string with a dot or a slash is a file name.
    """
    return isinstance(value, str) and bool(TAG_PATTERN.match(value)) and not Path(value).exists()


def find_weights(
    model: str, scale: int, in_channels: int = 1, tag: str | None = None, folder: str | Path | None = None
) -> WeightMatch | None:
    """The shipped file for ``(model, scale, in_channels, tag)``, or ``None``.

    Files with exactly ``in_channels`` come first (a file for this scale before an any-scale
    file), then RGB files (collapsed to ``in_channels`` when the model is built).
    """
    cands = [e for e in discover(folder) if e.model == model and e.tag == tag and e.serves(scale)]
    cands.sort(key=lambda e: e.scale != int(scale))
    exact = [e for e in cands if e.channels == int(in_channels)]
    if exact:
        return WeightMatch(exact[0], int(in_channels))
    rgb = [e for e in cands if _collapsible(e, scale, int(in_channels))]
    return WeightMatch(rgb[0], int(in_channels)) if rgb else None


_COLLAPSIBLE: dict[tuple[Any, ...], bool] = {}


def _collapsible(e: WeightEntry, scale: int, n: int) -> bool:
    """Whether the RGB file ``e`` can serve an ``n``-channel model, checked once per file and process.

    The check runs the collapse on a randomly initialised network of the file's configuration and
    requires what the collapse promises: for ``n`` equal channels ``g`` the collapsed net returns,
    on every output channel, the mean of the RGB net's outputs for ``(g, g, g)``. Nets whose last
    convolution feeds a pixel shuffle (ESPCN, DAT-light) have no RGB output convolution and fail.
    """
    if e.channels != CONVERTIBLE_CHANNELS or e.out_channels != CONVERTIBLE_CHANNELS or n == e.channels:
        return False
    key = (str(e.path), e.size, e.path.stat().st_mtime_ns, int(scale), n)
    with _LOCK:
        hit = _COLLAPSIBLE.get(key)
    if hit is not None:
        return hit
    ok = _collapse_keeps_outputs(e.model, int(scale), n, e.arch_kwargs)
    with _LOCK:
        _COLLAPSIBLE[key] = ok
    return ok


def _collapse_keeps_outputs(model: str, scale: int, n: int, options: Mapping[str, Any]) -> bool:
    """Run the collapse check on the architecture's small test configuration (its ``tiny`` options
    over the file's), which has the same first and last convolutions as the file's configuration;
    the file's own configuration is used where the small one cannot be built."""
    from .registry import get_entry

    tiny = get_entry(model).tiny
    result = _collapse_check(model, scale, n, {**options, **tiny}) if tiny else None
    if result is None:
        result = _collapse_check(model, scale, n, options)
    return bool(result)


def _collapse_check(model: str, scale: int, n: int, options: Mapping[str, Any]) -> bool | None:
    """``None`` when the network cannot be built with ``options``, else whether the collapse holds."""
    import copy

    import torch

    from .checkpoints import adapt_input_channels
    from .registry import create_model

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            rgb = create_model(
                model, scale=scale, in_channels=CONVERTIBLE_CHANNELS, pretrained=False, **options
            ).eval()
            g = torch.rand(1, 1, 16, 16)
    except Exception:  # options that do not build this architecture
        return None
    try:
        collapsed = adapt_input_channels(copy.deepcopy(rgb), n).eval()
        with torch.no_grad():
            want = rgb(g.repeat(1, CONVERTIBLE_CHANNELS, 1, 1)).mean(dim=1, keepdim=True)
            got = collapsed(g.repeat(1, n, 1, 1))
    except Exception:  # a collapse that fails or breaks the forward pass cannot serve n channels
        return False
    if got.shape != (1, n, *want.shape[2:]):
        return False
    tol = 1e-4 * max(float(want.abs().max()), 1e-6)
    return bool((got - want).abs().max() <= tol)


def _describe(entries: Iterable[WeightEntry]) -> str:
    return ", ".join(
        f"×{'S' if e.any_scale else e.scale} c{e.channels}" + (f" '{e.tag}'" if e.tag else "")
        for e in entries
    )


def missing_weights_message(
    name: str, scale: int, in_channels: int, tag: str | None = None, folder: str | Path | None = None
) -> str:
    """The one-line error for a learned model asked for without fitting shipped weights.

    It lists what is shipped for ``name`` (scales, channels, tags) and, for an unknown tag, the
    tags available for that model and scale.
    """
    all_entries = discover(folder)
    own = [e for e in all_entries if e.model == name]
    head = f"no {f'{tag!r} ' if tag else ''}weights for '{name}' ×{scale} with {in_channels} channel(s)"
    if tag is not None:
        here = sorted({e.tag for e in own if e.tag and e.serves(scale)})
        anywhere = sorted({e.tag for e in all_entries if e.tag})
        tags = (
            f"tags shipped for '{name}' ×{scale}: {', '.join(here)}"
            if here
            else f"'{name}' ×{scale} has no tagged weights (tags shipped: {', '.join(anywhere) or 'none'})"
        )
        return f"{head}; {tags}; shipped for '{name}': {_describe(own) or 'nothing'}"
    shipped = ", ".join(e.name for e in all_entries) or "none"
    return (
        f"{head}: shipped for '{name}': {_describe(own) or 'nothing'}; pass weights=PATH (a .safetensors "
        f"or .pth checkpoint; sciSR.load_checkpoint reads EDSR/RCAN/BasicSR/ESRGAN/super-image/torchSR "
        f"files), a tag (weights='dem'), or pretrained=False for a random model on purpose; all shipped "
        f"weights: {shipped}"
    )


def compatible_kwargs(entry: WeightEntry, kwargs: Mapping[str, Any]) -> bool:
    """True when every given architecture option equals the one the file was trained with."""
    if not kwargs:
        return True
    stored = entry.arch_kwargs

    def norm(v: Any) -> Any:
        return json.loads(json.dumps(v, default=str))

    return all(k in stored and norm(v) == norm(stored[k]) for k, v in kwargs.items())


def build_from_weights(
    match: WeightMatch, scale: int, out_channels: int | None = None, **kwargs: Any
) -> SRModel:
    """Build the registry model of ``match`` with its stored configuration and load the file strictly.

    RGB files serving another channel count are loaded into the RGB model and collapsed with
    :func:`~sciSR.models.checkpoints.adapt_input_channels`. An input convention stored in the
    metadata (:data:`INPUT_MEAN_KEY`, :data:`VALUE_RANGE_KEY`) is applied before the collapse.

    Raises:
        ValueError: The file does not fit (keys, shapes, architecture), or ``out_channels`` differs
            from what the weights give.
    """
    from .registry import create_model
    from .weights_io import load_weights_into

    e = match.entry
    want_out = match.in_channels if match.converted else e.out_channels
    if out_channels is not None and int(out_channels) != want_out:
        raise ValueError(
            f"the shipped {e.name} weights give {want_out} output channel(s), not "
            f"out_channels={out_channels}; leave out_channels out or pass pretrained=False"
        )
    options = {**e.arch_kwargs, **kwargs}
    model = create_model(
        e.model, scale=scale, in_channels=e.channels, out_channels=e.out_channels, pretrained=False, **options
    )
    with warnings.catch_warnings():
        if e.any_scale:  # one file for every scale: loading it at another scale is the design
            warnings.filterwarnings("ignore", message=r".* was trained for ×\d+ and is loaded into")
        meta = load_weights_into(model, e.path)
    if INPUT_MEAN_KEY in meta or VALUE_RANGE_KEY in meta:
        mean = json.loads(meta[INPUT_MEAN_KEY]) if INPUT_MEAN_KEY in meta else None
        model.set_input_transform(mean, float(meta.get(VALUE_RANGE_KEY, 1.0)))
    if match.converted:
        from .checkpoints import adapt_input_channels

        adapt_input_channels(model, match.in_channels)
    return model


# ----------------------------------------------------------------------------------- what was used
#: ``scisr_weights`` values that are not file names.
RANDOM = "random (untrained)"
USER_MODULE = "user module"
PARAMETER_FREE = "none (parameter-free)"


@dataclass(frozen=True)
class WeightsRecord:
    """What a model's weights are, for output attrs.

    Attributes:
        weights: File name, :data:`RANDOM`, :data:`USER_MODULE` or :data:`PARAMETER_FREE`.
        tag: The file's tag (``""`` for natural-photo weights or no file).
        path: The file, if any (its sha256 is recorded).
    """

    weights: str
    tag: str = ""
    path: Path | None = None

    @classmethod
    def for_file(cls, path: str | Path, tag: str | None = None) -> WeightsRecord:
        p = Path(path)
        if tag is None:
            parsed = parse_weight_name(p.name)
            tag = parsed[3] if parsed else None
        return cls(p.name, tag or "", p)

    @property
    def random(self) -> bool:
        return self.weights == RANDOM

    def attrs(self) -> dict[str, str]:
        """``scisr_weights``, ``scisr_weights_tag``, ``scisr_weights_sha256``."""
        sha = file_sha256(self.path) if self.path is not None and Path(self.path).is_file() else ""
        return {"scisr_weights": self.weights, "scisr_weights_tag": self.tag, "scisr_weights_sha256": sha}


_WARNED: set[tuple[str, int]] = set()


def external_stacklevel() -> int:
    """``stacklevel`` for a warning issued here that points at the first caller outside sciSR."""
    import sys

    package = str(Path(__file__).resolve().parents[1])
    frame = sys._getframe(1)  # the function that will call warnings.warn
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame = frame.f_back
        level += 1
    return level


def warn_untrained(name: str, scale: int) -> None:
    """Warn once per (model, scale) and process that an output comes from an untrained network."""
    key = (str(name), int(scale))
    with _LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    warnings.warn(
        f"'{name}' ×{scale} has random (untrained) weights: its output comes from an untrained network, "
        f"not a super-resolution model (pass weights, or a model with shipped weights: sciSR.list_weights())",
        UserWarning,
        stacklevel=external_stacklevel(),
    )


# ----------------------------------------------------------------------------------- default model
@dataclass(frozen=True)
class ModelChoice:
    """The model ``model="auto"`` picked and why.

    Attributes:
        model: Registry name.
        weights: Tag of the shipped weights (``None``: natural-photo weights or a baseline).
        entry: The file (``None`` for the bicubic fallback).
        reason: One sentence, recorded as ``scisr_model_reason``.
    """

    model: str
    weights: str | None
    entry: WeightEntry | None
    reason: str


def _usable(e: WeightEntry, scale: int, in_channels: int) -> bool:
    if not e.serves(scale):
        return False
    return e.channels == in_channels or _collapsible(e, scale, in_channels)


def _rank(entries: list[WeightEntry], gain: Any, in_channels: int, scale: int) -> list[WeightEntry]:
    """Best first: scored before unscored, higher gain, exact channels, own scale, smaller file."""

    def key(e: WeightEntry) -> tuple:
        g = gain(e)
        return (g is None, -(g or 0.0), e.channels != in_channels, e.scale != scale, e.size, e.name)

    return sorted(entries, key=key)


def choose_model(
    scale: int,
    in_channels: int = 1,
    domain: str | None = None,
    evidence: str = "",
    tag: str | None = None,
    folder: str | Path | None = None,
) -> ModelChoice:
    """The default model for data of ``domain`` at ``scale`` with ``in_channels`` channels.

    Rule, in order:

    a. weights tagged with the data's domain (``tag`` if the caller named one, else ``domain``:
       ``"mri"``, ``"precip"``, ``"temperature"``, ``"dem"``) that serve this scale and channel
       count; among several, the largest relative held-out gain over bicubic (first row of the card);
    b. natural-photo (untagged) weights for this scale and channel count (RGB files collapse to
       any channel count): for a detected domain, those whose card scores them on that domain's
       reserved data (:data:`DOMAIN_ROWS`) better than bicubic, the largest relative gain first;
       else (or when none is scored there) the largest held-out PSNR gain over bicubic on photos
       (the card's first photo PSNR row); perceptual tags (``realesrgan``) are never picked;
    c. ``bicubic``, with a warning that no shipped learned model covers this scale and channel count.

    Weights whose card shows them no better than bicubic on that row are skipped (in (a) unless
    the caller named the tag); weights without held-out scores come after all scored ones. A file
    that serves every scale is considered at its own scale and at the scales its card scores. Ties
    go to files with the exact channel count, then the file for this very scale, then the smaller.

    Args:
        scale: Upscaling factor.
        in_channels: Model input channels.
        domain: Detected kind of data (see :func:`sciSR.models.domains.detect_domain`), or ``None``.
        evidence: What the domain was detected from (goes into the reason).
        tag: A tag the caller asked for (``weights="dem"``): only such weights are considered.
        folder: Weights folder (default: the shipped one).

    Returns:
        The choice with a one-sentence reason.

    Raises:
        ValueError: ``tag`` given but no model has weights with that tag for this scale/channels.
    """
    entries = [e for e in discover(folder) if e.serves(scale) and (e.scale == scale or e.scored_at(scale))]

    def domain_gain(e: WeightEntry) -> float | None:
        return e.heldout_gain(scale=scale)

    def photo_gain(e: WeightEntry) -> float | None:
        return e.photo_psnr_gain(scale)

    seen = f" ({evidence})" if evidence else ""
    want = tag or domain
    if want:
        # weights whose card shows them losing to bicubic are skipped unless asked for by tag
        pool = [e for e in entries if e.tag == want and (tag is not None or not _loses(domain_gain(e)))]
        best = _first_usable(_rank(pool, domain_gain, in_channels, scale), scale, in_channels)
        if best is not None:
            e = _served(best, scale, in_channels, folder)
            why = f"weights='{tag}' asked" if tag else f"'{domain}' data{seen}"
            return ModelChoice(
                e.model, e.tag, e, f"{why}: shipped '{e.tag}' weights {e.name}{_gain(e, scale)}"
            )
        if tag:
            have = sorted({x.tag for x in entries if x.tag})
            raise ValueError(
                f"no shipped model has '{tag}' weights for ×{scale} with {in_channels} channel(s); tags for "
                f"×{scale}: {', '.join(have) or 'none'} (sciSR.list_weights() lists every file)"
            )
    natural = [e for e in entries if e.tag is None and not _loses(photo_gain(e))]
    best = None
    if domain in DOMAIN_ROWS:  # natural weights scored on this kind of reserved data rank first

        def field_gain(e: WeightEntry) -> float | None:
            return e.domain_gain(domain, scale)

        scored = [e for e in natural if field_gain(e) is not None and not _loses(field_gain(e))]
        best = _first_usable(_rank(scored, field_gain, in_channels, scale), scale, in_channels)
    if best is None:
        best = _first_usable(_rank(natural, photo_gain, in_channels, scale), scale, in_channels)
    lead = (
        f"'{domain}' data{seen} but no usable '{domain}' weights for ×{scale} with {in_channels} channel(s)"
        if domain
        else f"no domain detected{seen}"
    )
    if best is not None:
        e = _served(best, scale, in_channels, folder)
        gain = e.photo_psnr_gain(scale)
        score = f", held-out photo PSNR {gain:+.2f} dB over bicubic" if gain is not None else ""
        dg = e.domain_gain(domain, scale) if domain in DOMAIN_ROWS else None
        if dg is not None and dg > 0:
            score = f", held-out {DOMAIN_ROWS[domain]} score {100 * dg:.1f}% better than bicubic"
        conv = f", RGB weights collapsed to {in_channels} channel(s)" if e.channels != in_channels else ""
        return ModelChoice(
            e.model, None, e, f"{lead}: best natural-photo weights for ×{scale}: {e.name}{score}{conv}"
        )
    return ModelChoice(
        "bicubic",
        None,
        None,
        f"{lead}: no shipped learned model covers ×{scale} with {in_channels} channel(s) "
        f"(or beats bicubic on its card); bicubic used",
    )


def _first_usable(ranked: list[WeightEntry], scale: int, in_channels: int) -> WeightEntry | None:
    """The best-ranked file that serves ``in_channels`` (RGB collapses are checked only as far as needed)."""
    return next((e for e in ranked if _usable(e, scale, in_channels)), None)


def _loses(gain: float | None) -> bool:
    """The card's held-out score is not better than bicubic (no score: not known to lose)."""
    return gain is not None and gain <= 0.0


def _served(e: WeightEntry, scale: int, in_channels: int, folder: str | Path | None) -> WeightEntry:
    """The file :func:`find_weights` serves for ``e``'s model and tag (the one that will be loaded)."""
    match = find_weights(e.model, scale, in_channels, e.tag, folder)
    return match.entry if match is not None else e


def _gain(e: WeightEntry, scale: int) -> str:
    rows = e._rows(None, scale)
    if not rows:
        return ""
    r = rows[0]
    return f" (held-out {r.metric} {r.model:g} vs bicubic {r.baseline:g})"
