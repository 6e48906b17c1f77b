"""Batch jobs with dask: many files on a cluster, one task per file.

Inside a file, dask-backed xarray input already stays lazy (see :mod:`sciSR.io`); this module
adds the file-level fan-out people run on clusters::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")             # or LocalCluster()
    outs = sciSR.parallel.downscale_files(sorted(glob("era5_*.nc")), "out/", model="bicubic",
                                          scale=4, client=client, manifest=True, resume=True)

Each task builds its own model on its worker (nothing large is pickled), writes its output
atomically, and reports the path; a failing file does not stop the others unless asked.

Every output is checked against every input of the job before anything runs
(:mod:`sciSR.io.safety`): ``downscale_files(glob("data/*.tif"), "data", scale=2)`` is refused
when ``data/dem_x2.tif`` is itself one of the inputs, instead of overwriting it.

Resumable jobs: with a manifest (:mod:`sciSR.batch_manifest`) every finished file is recorded as
soon as it finishes; ``resume=True`` skips the files whose entry is ``done`` under the same
settings, whose input is unchanged and whose output is still exactly what was written. Failed
files are retried ``retries`` times. A worker process that dies mid-task loses nothing: the
dask scheduler runs the task again on another worker, and the dead writer's temporary file
(``.scisr-tmp-...``, never an output name) is removed by the next write into that folder.

Files are independent: inputs with different grids, variables or CRS are each downscaled on
their own grid and recorded per file (variables, shapes, model and weights in the manifest);
nothing is stacked across files.

Concurrency: the local scheduler runs one file per thread. This module adds no shared state of
its own between those threads; the file libraries that are not thread-safe (netCDF-C/HDF5) are
serialized by the adapters' process-wide locks (:mod:`sciSR.io.locks`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: Seconds allowed for connecting to a scheduler address.
CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class FileResult:
    """Outcome of one file: the output path, or the error that stopped it.

    Attributes:
        source: The input path.
        output: The output path (``None`` when the file failed).
        error: ``"<ExceptionType>: <first line>"`` of the last failure, or ``None``.
        status: ``"done"``, ``"skipped"`` (resumed: the output of an earlier run is kept) or
            ``"failed"``.
        attempts: Tries in this run (0 for a skipped file).
        seconds: Wall time of the last try.
        start: Start of the last try (epoch seconds; 0 when skipped).
        worker: Where the last try ran (a dask worker address, or ``host:pid``).
        variables: What was written, per variable: dims, shape, model, weights, weights sha256.
        source_fingerprint: Input fingerprint taken when the try started (see
            :func:`sciSR.batch_manifest.fingerprint`).
        output_fingerprint: Output fingerprint taken after the write.
    """

    source: str
    output: str | None
    error: str | None = None
    status: str = ""
    attempts: int = 1
    seconds: float = 0.0
    start: float = 0.0
    worker: str = ""
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_fingerprint: dict[str, Any] | None = None
    output_fingerprint: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", "done" if self.error is None else "failed")

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


def expand_inputs(items: Sequence[str | Path]) -> list[Path]:
    """Paths, glob patterns and directories to a list of input paths (duplicates removed, order kept).

    A pattern (``*``, ``?``, ``[``) is expanded here, sorted (``**`` matches folders recursively);
    a directory that is not a Zarr store stands for the files and stores directly inside it
    whose name ends with an extension sciSR reads (:func:`sciSR.io.supported_extensions`), sorted,
    hidden names (``.scisr-tmp-...``) left out. Other paths are kept as given: a missing file
    fails on its own in the job, with the others done.

    Raises:
        FileNotFoundError: A pattern matches nothing, or a directory holds no readable file.
    """
    from .io.base import supported_extensions
    from .io.signature import is_zarr_store

    exts = tuple(e.lower() for e in supported_extensions())

    def in_dir(d: Path) -> list[Path]:
        found = sorted(c for c in d.iterdir() if not c.name.startswith(".") and c.name.lower().endswith(exts))
        if not found:
            raise FileNotFoundError(
                f"{d} holds no file sciSR reads (extensions {', '.join(exts)}); "
                f"name the files or a pattern instead"
            )
        return found

    out: list[Path] = []
    for item in items:
        text = str(item)
        if glob.has_magic(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            if not matches:
                raise FileNotFoundError(f"no file matches {text!r}; check the pattern")
            for m in matches:
                out.extend(in_dir(m) if m.is_dir() and not is_zarr_store(m) else [m])
        else:
            p = Path(item)
            out.extend(in_dir(p) if p.is_dir() and not is_zarr_store(p) else [p])
    seen: set[str] = set()
    unique = []
    for p in out:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def check_writable_folder(out_dir: Path) -> None:
    """Refuse, before any work, an output folder that cannot be created or written.

    A probe file is created and removed (``os.access`` alone is wrong for root and for
    read-only file systems); the folder itself is not created here.

    Raises:
        PermissionError: The folder (or the nearest existing parent, when it is to be created)
            cannot be written.
    """
    import tempfile

    existing = next((a for a in [out_dir, *out_dir.parents] if a.exists()), Path("."))
    what = "output folder" if existing == out_dir else f"parent folder of the output folder {out_dir},"
    try:
        fd, probe = tempfile.mkstemp(prefix=".scisr-probe-", dir=existing)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise PermissionError(
            f"the {what} {existing} is not writable ({reason}); choose another folder or fix its permissions"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _dask_worker_address() -> str | None:
    """The address of the dask worker running the calling task, or ``None`` outside one."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return None


_LOCAL_LOCK = threading.Lock()
_LOCAL_USERS = [0, None]  # tasks inside _local_scheduler_on_worker, the scheduler setting before


@contextlib.contextmanager
def _local_scheduler_on_worker() -> Any:
    """Inside a dask worker task: nested dask computations run on local threads.

    Computations inside one file (lazy reads, block writes to open file handles) sent to the
    distributed scheduler would need their targets pickled, which open files cannot be. The
    worker's client is made first: made later (dask makes one to choose a store lock), it would
    set the distributed scheduler as the default again. The setting is process-wide (dask's
    configuration), so it is counted: set by the first of a worker's concurrent tasks, restored
    by the last.
    """
    import dask
    from distributed import get_client

    get_client()
    with _LOCAL_LOCK:
        if _LOCAL_USERS[0] == 0:
            _LOCAL_USERS[1] = dask.config.get("scheduler", None)
            dask.config.set(scheduler="threads")
        _LOCAL_USERS[0] += 1
    try:
        yield
    finally:
        with _LOCAL_LOCK:
            _LOCAL_USERS[0] -= 1
            if _LOCAL_USERS[0] == 0:
                dask.config.set(scheduler=_LOCAL_USERS[1])


def _what_was_written(result: Any) -> dict[str, dict[str, Any]]:
    """Per data variable of a downscaled Dataset: dims, shape, and the model attrs it carries."""
    info: dict[str, dict[str, Any]] = {}
    for name, var in getattr(result, "data_vars", {}).items():
        attrs = var.attrs
        if "scisr_model" not in attrs:
            continue
        info[str(name)] = {
            "dims": [str(d) for d in var.dims],
            "shape": [int(n) for n in var.shape],
            "model": str(attrs.get("scisr_model", "")),
            "weights": str(attrs.get("scisr_weights", "")),
            "weights_sha256": str(attrs.get("scisr_weights_sha256", "")),
        }
    return info


def _one_file(src: str, out: str, model: Any, scale: int, opts: dict[str, Any]) -> FileResult:
    """Downscale one file into ``out`` (atomically); every failure is returned, not raised."""
    from .api import downscale
    from .batch_manifest import OUTPUT_HASH_LIMIT, SOURCE_HASH_LIMIT, fingerprint

    start, t0 = time.time(), time.perf_counter()
    address = _dask_worker_address()
    where = address or f"{socket.gethostname()}:{os.getpid()}"
    src_fp = None
    try:
        src_fp = fingerprint(src, SOURCE_HASH_LIMIT)
        with contextlib.ExitStack() as stack:
            if address is not None:
                from .workers import limit_torch_threads

                limit_torch_threads()  # the host's cores shared among its workers' task threads
                stack.enter_context(_local_scheduler_on_worker())
            result = downscale(src, model=model, scale=scale, out=out, progress=False, **opts)
        variables = _what_was_written(result)
        out_fp = fingerprint(out, OUTPUT_HASH_LIMIT)
    except Exception as err:  # reported per file; the batch goes on
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        return FileResult(
            src,
            None,
            f"{type(err).__name__}: {msg}",
            seconds=time.perf_counter() - t0,
            start=start,
            worker=where,
            source_fingerprint=src_fp,
        )
    return FileResult(
        src,
        out,
        seconds=time.perf_counter() - t0,
        start=start,
        worker=where,
        variables=variables,
        source_fingerprint=src_fp,
        output_fingerprint=out_fp,
    )


def _lost_task(src: str, out: str, err: BaseException) -> FileResult:
    """A task whose future failed outside :func:`_one_file` (its worker died too often, cancelled)."""
    msg = str(err).splitlines()[0] if str(err) else ""
    hint = " (its worker died while running it)" if type(err).__name__ == "KilledWorker" else ""
    return FileResult(src, None, f"{type(err).__name__}: {msg}{hint}".rstrip(": "), worker="")


def _manifest_path(manifest: str | Path | bool | None, out_dir: Path, resume: bool) -> Path | None:
    from .batch_manifest import MANIFEST_NAME

    if manifest is None or manifest is False:
        return out_dir / MANIFEST_NAME if resume else None
    if manifest is True:
        return out_dir / MANIFEST_NAME
    return Path(manifest)


def _check_manifest_path(path: Path, paths: Sequence[str | Path]) -> None:
    from .io.safety import OutputError, check_inputs

    check_inputs(path, paths)
    if path.is_dir():
        raise OutputError(f"manifest path {path} is a directory; name a .json file")


def _entry(r: FileResult, source: str, out: str, sid: str) -> dict[str, Any]:
    from .batch_manifest import utc_stamp

    return {
        "source": source,
        "source_fingerprint": r.source_fingerprint,
        "output": out,
        "output_fingerprint": r.output_fingerprint,
        "status": "done" if r.ok else "failed",
        "error": r.error,
        "attempts": r.attempts,
        "start": utc_stamp(r.start) if r.start else None,
        "end": utc_stamp(r.start + r.seconds) if r.start else None,
        "seconds": round(r.seconds, 3),
        "worker": r.worker,
        "settings_id": sid,
        "variables": r.variables,
    }


def _resumable(entry: dict[str, Any] | None, source: str, out: str, sid: str, known: dict[str, str]) -> bool:
    from .batch_manifest import output_matches, source_matches, weights_unchanged

    return (
        entry is not None
        and entry.get("status") == "done"
        and entry.get("settings_id") == sid
        and entry.get("output") == out
        and source_matches(entry.get("source_fingerprint"), source)
        and output_matches(entry.get("output_fingerprint"), out)
        and weights_unchanged(entry, known)
    )


class _Runner:
    """Submits tasks to a dask client or to local threads and waits for the first to finish."""

    def __init__(self, client: Any, workers: int | None, retries: int) -> None:
        self.client = client
        self.retries = retries
        self.pool = None
        if client is None:
            from concurrent.futures import ThreadPoolExecutor

            n = workers or os.cpu_count() or 1
            self.pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="scisr-batch")

    def submit(self, *args: Any) -> Any:
        if self.client is not None:
            return self.client.submit(_one_file, *args, pure=False, retries=self.retries)
        assert self.pool is not None
        return self.pool.submit(_one_file, *args)

    def wait_any(self, pending: set[Any]) -> set[Any]:
        if self.client is not None:
            from distributed import wait

            return set(wait(list(pending), return_when="FIRST_COMPLETED").done)
        from concurrent.futures import FIRST_COMPLETED, wait

        return set(wait(pending, return_when=FIRST_COMPLETED).done)

    def close(self, cancel: set[Any], wait: bool = True) -> None:
        """Cancel the futures not started; ``wait``: for the running ones too (local threads)."""
        for f in cancel:
            f.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=wait, cancel_futures=True)


def downscale_files(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    model: str = "bicubic",
    scale: int = 4,
    *,
    client: Any = None,
    suffix: str | None = None,
    raise_errors: bool = True,
    manifest: str | Path | bool | None = None,
    resume: bool = False,
    retries: int = 0,
    workers: int | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    **opts: Any,
) -> list[FileResult]:
    """Downscale every file of ``paths`` into ``out_dir`` as parallel dask tasks.

    Args:
        paths: Input files (any format sciSR reads); see :func:`expand_inputs` for patterns
            and folders.
        out_dir: Output folder (created).
        model: Registry name (a module would be pickled to every worker; pass a name plus
            ``weights=`` instead).
        scale: Integer upscaling factor.
        client: A ``dask.distributed.Client``; ``None`` runs the files on local threads.
        suffix: Output extension (default: the input's, e.g. ``.zarr`` to convert).
        raise_errors: Raise after all tasks ran if any failed (with every failure listed).
        manifest: JSON manifest path; ``True``: ``out_dir/scisr-manifest.json``; ``None``
            (default): none, unless ``resume`` (then the default path). Updated atomically
            after each finished file (see :mod:`sciSR.batch_manifest`).
        resume: Skip the files whose manifest entry is done under the same settings, with the
            same input and an output still exactly as written; do the others.
        retries: Further tries of a failed file in this run (and dask ``retries`` of its task).
        workers: Local threads when ``client`` is ``None`` (default: the CPU count).
        on_result: Called in the calling thread with each file's final result as it comes.
        **opts: Options of :func:`sciSR.downscale` (weights, tile, norm, precision, ...).

    Returns:
        One :class:`FileResult` per input, in input order.

    Raises:
        ValueError: Duplicate output names, an unknown output extension, an unreadable or
            foreign manifest file, or (with ``raise_errors``) failed files.
        OutputError: An output would be, contain or lie inside an input, or would replace
            something that is not a previous output (see :func:`check_job`); nothing ran.
        PermissionError: The output folder cannot be written; nothing ran.
    """
    from .batch_manifest import Manifest, job_settings, shipped_weight_hashes
    from .io.safety import remove_stale_temps

    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    out_dir = Path(out_dir)
    outs = [str(output_path(p, out_dir, scale, suffix)) for p in paths]
    check_job(paths, out_dir, outs)
    mpath = _manifest_path(manifest, out_dir, resume)
    if mpath is not None:
        _check_manifest_path(mpath, paths)
    check_writable_folder(out_dir)
    old = Manifest.read_entries(mpath) if mpath is not None else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)  # temporary files of a killed earlier run: never outputs
    if mpath is not None and mpath.parent != out_dir:
        mpath.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(mpath.parent)

    sources = [os.path.abspath(p) for p in paths]
    abs_outs = [os.path.abspath(o) for o in outs]
    book = Manifest(mpath or out_dir / "unused.json", job_settings(model, scale, suffix, opts))
    sid = book.settings_id
    known = shipped_weight_hashes(old.values()) if resume else {}
    results: list[FileResult | None] = [None] * len(paths)
    todo: list[int] = []
    for i, (src, out) in enumerate(zip(sources, abs_outs)):
        prev = old.get(src)
        if resume and _resumable(prev, src, out, sid, known):
            assert prev is not None
            book.entries[src] = prev
            results[i] = FileResult(
                str(paths[i]), outs[i], status="skipped", attempts=0, worker=str(prev.get("worker", ""))
            )
        else:
            book.entries[src] = {"source": src, "output": out, "status": "pending", "settings_id": sid}
            todo.append(i)

    lock = threading.Lock()
    last_save = [0.0]
    save_failed: list[str] = []

    def save(force: bool = False) -> None:
        # After every finished file; a manifest whose writing costs much (thousands of entries)
        # is written at most every 10 x its writing time, and always at the end. A manifest that
        # cannot be written (disk full) warns once; the job goes on (outputs are unaffected).
        if mpath is None:
            return
        with lock:
            now = time.monotonic()
            if force or now - last_save[0] >= 10 * book.last_save_seconds:
                try:
                    book.save()
                except OSError as err:
                    if not save_failed:
                        warnings.warn(
                            f"cannot update the batch manifest {mpath} ({err.strerror or err}); the job "
                            f"goes on, but --resume redoes the files finished since its last update",
                            RuntimeWarning,
                            stacklevel=2,
                        )
                    save_failed.append(str(err))
                    return
                last_save[0] = time.monotonic()

    save(force=True)
    for r in results:
        if r is not None and on_result is not None:
            on_result(r)

    runner = _Runner(client, workers, retries)
    pending: dict[Any, tuple[int, int]] = {}
    finished = False
    try:
        for i in todo:
            pending[runner.submit(str(paths[i]), outs[i], model, scale, opts)] = (i, 1)
        while pending:
            for fut in runner.wait_any(set(pending)):
                i, attempt = pending.pop(fut)
                try:
                    r = fut.result()
                except Exception as err:  # the task itself was lost (worker deaths, cancelled)
                    r = _lost_task(str(paths[i]), outs[i], err)
                r = replace(r, attempts=attempt)
                if not r.ok and attempt <= retries:
                    pending[runner.submit(str(paths[i]), outs[i], model, scale, opts)] = (i, attempt + 1)
                    continue
                results[i] = r
                book.entries[sources[i]] = _entry(r, sources[i], abs_outs[i], sid)
                save()
                if on_result is not None:
                    on_result(r)
        finished = True
    finally:
        runner.close(set(pending), wait=finished)  # interrupted (Ctrl-C): return without waiting
        save(force=True)
    remove_stale_temps(out_dir)
    final = [r for r in results if r is not None]
    failed = [r for r in final if not r.ok]
    if failed and raise_errors:
        lines = "; ".join(f"{Path(r.source).name}: {r.error}" for r in failed)
        raise ValueError(f"{len(failed)} of {len(final)} files failed: {lines}")
    return final
