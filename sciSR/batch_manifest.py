"""The JSON manifest of a batch job: settings, one entry per input, and what ``--resume`` may skip.

A manifest (default ``OUTDIR/scisr-manifest.json``) records what one batch job did, so that a
job that was killed, lost files or had failures can be re-run with ``resume=True``: only the
inputs whose entry is ``done`` under the same settings, whose input is unchanged and whose output
is still exactly what was written are skipped; everything else is done again.

Format (``"format": "scisr-batch-manifest"``, ``"version": 1``)::

    {
      "format": "scisr-batch-manifest", "version": 1,
      "created": "2026-11-26T05:40:00Z", "updated": "...",
      "settings": {"model": "rcan", "scale": 4, "suffix": null,
                   "options": {"tile": null, "norm": "auto", ...},
                   "weights": null | {"tag": "dem"} | {"file": "w.safetensors", "sha256": "..."},
                   "scisr_version": "0.1.0"},
      "settings_id": "<16 hex digits: sha256 of the canonical settings JSON>",
      "summary": {"done": 3, "failed": 1, "pending": 0},
      "entries": [
        {"source": "/abs/in/a.nc", "source_fingerprint": {...}, "output": "/abs/out/a_x4.nc",
         "output_fingerprint": {...}, "status": "done" | "failed" | "pending",
         "error": null | "OSError: cannot write ...", "attempts": 1,
         "start": "...Z", "end": "...Z", "seconds": 1.23, "worker": "tcp://10.0.0.5:40112",
         "settings_id": "...",
         "variables": {"tas": {"dims": [...], "shape": [...], "model": "rcan",
                               "weights": "rcan_x4_c1_temperature.safetensors",
                               "weights_sha256": "..."}}},
        ...
      ]
    }

Fingerprints (:func:`fingerprint`): a file has ``size`` and ``mtime_ns``, plus ``sha256`` when
it is small (inputs up to :data:`SOURCE_HASH_LIMIT`, outputs up to :data:`OUTPUT_HASH_LIMIT`);
a directory store (Zarr) has ``files``, ``size`` (total) and ``mtime_ns`` (newest file), plus a
``sha256`` over relative names and contents when its total size is within the same limits.

An input matches its entry when the sizes agree and either the modification times or the
recorded content hashes agree (a copied but identical small input is not redone). An output
matches when size, modification time and (when recorded) content hash all agree: a truncated,
modified or replaced output is redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "scisr-manifest.json"
FORMAT = "scisr-batch-manifest"
VERSION = 1
#: Inputs up to this size get a content hash in their fingerprint.
SOURCE_HASH_LIMIT = 8 << 20
#: Outputs up to this size get a content hash in their fingerprint (checked again on resume).
OUTPUT_HASH_LIMIT = 32 << 20


def utc_stamp(t: float | None = None) -> str:
    """ISO 8601 UTC time with seconds, e.g. ``2026-11-26T05:40:00Z`` (``t``: epoch seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tree_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for base, dirs, files in os.walk(root):
        dirs.sort()
        out.extend(Path(base) / f for f in sorted(files))
    return out


def fingerprint(path: str | Path, hash_limit: int) -> dict[str, Any] | None:
    """Size, modification time and (for content up to ``hash_limit`` bytes) sha256 of a file or store.

    Args:
        path: A file, or a directory store (every file below it counts).
        hash_limit: Largest size (bytes, total for a store) whose content is hashed.

    Returns:
        ``{"size", "mtime_ns"[, "sha256"]}`` for a file, ``{"files", "size", "mtime_ns"[, "sha256"]}``
        for a directory, or ``None`` when ``path`` does not exist.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    if not p.is_dir():
        fp: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if st.st_size <= hash_limit:
            fp["sha256"] = _file_sha256(p)
        return fp
    files = _tree_files(p)
    stats = [f.stat() for f in files]
    size = sum(s.st_size for s in stats)
    fp = {
        "files": len(files),
        "size": size,
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=st.st_mtime_ns),
    }
    if size <= hash_limit:
        h = hashlib.sha256()
        for f in files:
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
            h.update(_file_sha256(f).encode())
        fp["sha256"] = h.hexdigest()
    return fp


def source_matches(recorded: Mapping[str, Any] | None, path: str | Path) -> bool:
    """Whether the input at ``path`` is the one ``recorded`` describes (see the module notes)."""
    if not recorded:
        return False
    now = fingerprint(path, SOURCE_HASH_LIMIT if "sha256" in recorded else -1)
    if now is None or now.get("size") != recorded.get("size") or now.get("files") != recorded.get("files"):
        return False
    if now.get("mtime_ns") == recorded.get("mtime_ns"):
        return True
    return "sha256" in recorded and now.get("sha256") == recorded["sha256"]


def output_matches(recorded: Mapping[str, Any] | None, path: str | Path) -> bool:
    """Whether the output at ``path`` is still exactly what was written (size, mtime and hash)."""
    if not recorded:
        return False
    now = fingerprint(path, OUTPUT_HASH_LIMIT if "sha256" in recorded else -1)
    if now is None:
        return False
    return all(now.get(k) == recorded[k] for k in ("size", "mtime_ns", "files", "sha256") if k in recorded)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def job_settings(model: Any, scale: int, suffix: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The settings block of a manifest: model, scale, suffix, options, weights identity, version.

    A weight file given as a path is identified by its name and sha256 (a changed file changes
    the settings); a tag is recorded as given. Options that are not plain values (a
    ``Normalizer`` object) are recorded by their ``repr``.
    """
    from . import __version__
    from .models.catalog import file_sha256, is_tag

    opts = {k: v for k, v in options.items() if k != "weights"}
    w = options.get("weights")
    weights: dict[str, Any] | None
    if w is None:
        weights = None
    elif is_tag(w):
        weights = {"tag": str(w)}
    else:
        wp = Path(w)
        weights = {"file": wp.name, "sha256": file_sha256(wp) if wp.is_file() else ""}
    model_name = model if isinstance(model, str) else f"{type(model).__module__}.{type(model).__name__}"
    return _jsonable(
        {
            "model": model_name,
            "scale": int(scale),
            "suffix": suffix,
            "options": opts,
            "weights": weights,
            "scisr_version": __version__,
        }
    )


def settings_id(settings: Mapping[str, Any]) -> str:
    """16 hex digits of the sha256 of the canonical JSON of ``settings``."""
    text = json.dumps(_jsonable(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Manifest:
    """A batch manifest in memory; :meth:`save` writes it atomically.

    Attributes:
        path: The JSON file.
        settings: The job's settings (:func:`job_settings`).
        entries: One dict per input, keyed by the input's absolute path, in input order.
        created: When the manifest was first written.
    """

    path: Path
    settings: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = field(default_factory=utc_stamp)
    last_save_seconds: float = 0.0

    @property
    def settings_id(self) -> str:
        return settings_id(self.settings)

    @staticmethod
    def read_entries(path: str | Path) -> dict[str, dict[str, Any]]:
        """The entries of an existing manifest (empty when there is none).

        Raises:
            ValueError: ``path`` exists but is not a sciSR batch manifest (unreadable JSON or
                another format); the message names the fix.
        """
        p = Path(path)
        if not p.exists():
            return {}
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(
                f"cannot read the batch manifest {p} ({err}); remove it or pass another --manifest path"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(
                f"{p} is not a sciSR batch manifest; choose another --manifest path (it is not replaced)"
            )
        return {str(e["source"]): e for e in data.get("entries", []) if isinstance(e, dict) and "source" in e}

    def summary(self) -> dict[str, int]:
        counts = {"done": 0, "failed": 0, "pending": 0}
        for e in self.entries.values():
            counts[e.get("status", "pending")] = counts.get(e.get("status", "pending"), 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "updated": utc_stamp(),
            "settings": self.settings,
            "settings_id": self.settings_id,
            "summary": self.summary(),
            "entries": list(self.entries.values()),
        }

    def save(self) -> None:
        """Write the manifest to a temporary file beside it, flush it to disk and rename it into place."""
        from . import interrupts
        from .io.safety import remove_path, temp_path

        t0 = time.perf_counter()
        tmp = temp_path(self.path)
        token = interrupts.track(tmp, remove_path)  # removed when the command ends on a signal
        try:
            with open(tmp, "w") as f:
                json.dump(self.to_json(), f, indent=1)
                f.write("\n")
                f.flush()
                with contextlib.suppress(OSError):
                    os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            remove_path(tmp)
            raise
        finally:
            interrupts.untrack(token)
        self.last_save_seconds = time.perf_counter() - t0


def weights_unchanged(entry: Mapping[str, Any], known: Mapping[str, str]) -> bool:
    """Whether every shipped weight file an entry used still has the recorded sha256.

    Args:
        entry: A manifest entry (its ``variables`` carry ``weights`` and ``weights_sha256``).
        known: sha256 of the weight files available now, by file name.
    """
    for info in (entry.get("variables") or {}).values():
        name, sha = info.get("weights"), info.get("weights_sha256")
        if name and sha and name in known and known[name] != sha:
            return False
    return True


def shipped_weight_hashes(entries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """sha256 of the shipped weight files named by ``entries``, by file name (others are left out)."""
    names = {
        str(info["weights"])
        for e in entries
        for info in (e.get("variables") or {}).values()
        if info.get("weights_sha256")
    }
    if not names:
        return {}
    from .models.catalog import discover

    return {w.path.name: w.sha256 for w in discover() if w.path.name in names}
