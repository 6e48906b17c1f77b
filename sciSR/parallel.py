"""Batch jobs with dask: many files on a cluster, one task per file.

Inside a file, dask-backed xarray input already stays lazy (see :mod:`sciSR.io`); this module
adds the file-level fan-out people run on clusters::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")             # or LocalCluster()
    outs = sciSR.parallel.downscale_files(sorted(glob("era5_*.nc")), "out/", model="bicubic",
                                          scale=4, client=client)

Each task builds its own model on its worker (nothing large is pickled), writes its output
atomically, and reports the path; a failing file does not stop the others unless asked.

Every output is checked against every input of the job before anything runs
(:mod:`sciSR.io.safety`): ``downscale_files(glob("data/*.tif"), "data", scale=2)`` is refused
when ``data/dem_x2.tif`` is itself one of the inputs, instead of overwriting it.

Concurrency: the local scheduler runs one file per thread. This module adds no shared state of
its own between those threads; the file libraries that are not thread-safe (netCDF-C/HDF5) are
serialized by the adapters' process-wide locks (:mod:`sciSR.io.locks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FileResult:
    """Outcome of one file: the output path, or the error that stopped it."""

    source: str
    output: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def output_path(src: str | Path, out_dir: str | Path, scale: int, suffix: str | None = None) -> Path:
    """``out_dir/<stem>_x<scale><ext>`` for ``src`` (multi-part extensions such as .nii.gz kept)."""
    name = Path(src).name
    for multi in (".nii.gz", ".cog.tif"):
        if name.endswith(multi):
            stem, ext = name[: -len(multi)], multi
            break
    else:
        stem, ext = Path(name).stem, Path(name).suffix
    if suffix and not suffix.startswith("."):
        suffix = "." + suffix
    return Path(out_dir) / f"{stem}_x{scale}{suffix or ext}"


def check_job(paths: Sequence[str | Path], out_dir: Path, outs: Sequence[str | Path]) -> None:
    """Refuse, before anything runs, a job whose outputs would touch its inputs.

    Raises:
        ValueError: Two inputs map to one output name, or an output has an unknown extension.
        OutputError: ``out_dir`` is an input, lies inside one or is a file; an output is,
            contains or lies inside any input, or exists as something other than a previous
            output of the same kind.
    """
    from .io.base import adapter_for_path, is_directory_store
    from .io.safety import OutputError, check_existing, check_inputs, input_relation

    if len(set(map(str, outs))) != len(outs):
        seen: dict[str, str] = {}
        for p, o in zip(paths, outs):
            if str(o) in seen:
                raise ValueError(
                    f"{seen[str(o)]} and {p} map to the same output {o}; "
                    f"put them in separate runs or rename them"
                )
            seen[str(o)] = str(p)
    for src in paths:
        rel = input_relation(out_dir, src)
        if rel in ("is", "inside"):
            what = "is the input" if rel == "is" else "is inside the input"
            raise OutputError(f"output folder {out_dir} {what} {src}; choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output folder {out_dir} is an existing file; choose a folder")
    existing = next((a for a in [out_dir, *out_dir.parents] if a.exists()), None)
    if existing is not None and not existing.is_dir():
        raise OutputError(
            f"cannot create output folder {out_dir}: {existing} is a file; choose another folder"
        )
    for o in outs:
        o = Path(o)
        adapter = adapter_for_path(o, must_exist=False)
        check_inputs(o, paths)
        check_existing(o, is_directory_store(adapter))


def _one_file(src: str, out: str, model: Any, scale: int, opts: dict[str, Any]) -> FileResult:
    from .api import downscale

    try:
        downscale(src, model=model, scale=scale, out=out, progress=False, **opts)
    except Exception as err:  # reported per file; the batch goes on
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        return FileResult(src, None, f"{type(err).__name__}: {msg}")
    return FileResult(src, out)


def downscale_files(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    model: str = "bicubic",
    scale: int = 4,
    *,
    client: Any = None,
    suffix: str | None = None,
    raise_errors: bool = True,
    **opts: Any,
) -> list[FileResult]:
    """Downscale every file of ``paths`` into ``out_dir`` as parallel dask tasks.

    Args:
        paths: Input files (any format sciSR reads).
        out_dir: Output folder (created).
        model: Registry name (a module would be pickled to every worker; pass a name plus
            ``weights=`` instead).
        scale: Integer upscaling factor.
        client: A ``dask.distributed.Client``; ``None`` runs on dask's local threaded scheduler.
        suffix: Output extension (default: the input's, e.g. ``.zarr`` to convert).
        raise_errors: Raise after all tasks ran if any failed (with every failure listed).
        **opts: Options of :func:`sciSR.downscale` (weights, tile, norm, precision, ...).

    Returns:
        One :class:`FileResult` per input, in input order.

    Raises:
        ValueError: Duplicate output names, an unknown output extension, or (with
            ``raise_errors``) failed files.
        OutputError: An output would be, contain or lie inside an input, or would replace
            something that is not a previous output (see :func:`check_job`); nothing ran.
    """
    import dask

    out_dir = Path(out_dir)
    outs = [str(output_path(p, out_dir, scale, suffix)) for p in paths]
    check_job(paths, out_dir, outs)
    out_dir.mkdir(parents=True, exist_ok=True)
    if client is not None:
        futures = [
            client.submit(_one_file, str(p), o, model, scale, opts, pure=False) for p, o in zip(paths, outs)
        ]
        results = client.gather(futures)
    else:
        tasks = [dask.delayed(_one_file)(str(p), o, model, scale, opts) for p, o in zip(paths, outs)]
        results = list(dask.compute(*tasks, scheduler="threads"))
    failed = [r for r in results if not r.ok]
    if failed and raise_errors:
        lines = "; ".join(f"{Path(r.source).name}: {r.error}" for r in failed)
        raise ValueError(f"{len(failed)} of {len(results)} files failed: {lines}")
    return results
