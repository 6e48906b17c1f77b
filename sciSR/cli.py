"""The ``scisr`` command: ``models``, ``weights``, ``info``, ``downscale``, ``batch``, ``demo``.

Errors print one line, ``scisr: error: ...``, and exit with status 1; usage errors (a missing
argument, an unknown option, a bad option value) exit with status 2. ``--debug`` (before or after
the subcommand) shows tracebacks instead. SIGINT, SIGTERM and SIGHUP end the command at once,
remove partial outputs and exit with 130, 143 and 129 (see :mod:`sciSR.interrupts`).
``downscale`` and ``batch`` share every model and pipeline option (:data:`PIPELINE_OPTIONS`).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

EXIT_USAGE = 2
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def _debug_option(f: F) -> F:
    """``--debug`` accepted by the group and by every subcommand (read by :func:`main`)."""
    return click.option(
        "--debug", is_flag=True, expose_value=False, help="Show full tracebacks on errors."
    )(f)


#: Options of :func:`sciSR.downscale` shared by ``scisr downscale`` and ``scisr batch``.
PIPELINE_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "-m",
        "--model",
        default="auto",
        show_default=True,
        help="Registry name (see `scisr models`); auto: the best shipped model for the data.",
    ),
    click.option(
        "-s",
        "--scale",
        type=click.IntRange(min=1),
        default=4,
        show_default=True,
        help="Integer upscaling factor.",
    ),
    click.option(
        "-w",
        "--weights",
        help="Weight file (.safetensors / .pth), or a tag of shipped weights (see `scisr weights`).",
    ),
    click.option("-v", "--variable", "variables", multiple=True, help="Variable to downscale (repeatable)."),
    click.option("--tile", type=click.IntRange(min=0), help="Core tile size in LR pixels (0 = no tiling)."),
    click.option(
        "--overlap", type=click.IntRange(min=0), help="LR halo per tile side (default: receptive field)."
    ),
    click.option(
        "--norm", default="auto", show_default=True, help="auto|zscore|minmax|log1p|percentile|none."
    ),
    click.option("--precision", default="auto", show_default=True, help="auto|fp32|bf16|fp16."),
    click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda[:N]."),
    click.option("--batch-size", type=click.IntRange(min=1), help="Tiles per forward pass."),
    click.option("--dtype", help="Output dtype (default float32; 'source' restores the input's)."),
    click.option("--blend", type=click.Choice(["crop", "hann", "gaussian"]), help="Tile merge mode."),
    click.option(
        "--clip/--no-clip",
        default=None,
        help="Clip outputs to the input's valid range (default: on for MRI magnitude images).",
    ),
    click.option(
        "--channels",
        "in_channels",
        type=click.IntRange(min=1),
        help="Treat this many bands as model channels.",
    ),
    click.option(
        "--constraint",
        help="Consistency layer: add|mult|softmax (coarsening the output returns the input), "
        "none to turn off one the weights record.",
    ),
    click.option(
        "--constraint-degradation",
        help="Operator the constraint inverts (default area: block mean; add also takes gaussian, slice...).",
    ),
    click.option("--random-init", is_flag=True, help="Use a randomly initialised model (testing only)."),
]


def pipeline_options(f: F) -> F:
    """Apply :data:`PIPELINE_OPTIONS` (in their listed order) and ``--debug`` to a command."""
    for option in reversed(PIPELINE_OPTIONS):
        f = option(f)
    return _debug_option(f)


def downscale_kwargs(
    *,
    model: str,
    scale: int,
    weights: str | Path | None,
    variables: tuple[str, ...],
    tile: int | None,
    overlap: int | None,
    norm: str,
    precision: str,
    device: str,
    batch_size: int | None,
    dtype: str | None,
    blend: str | None,
    clip: bool | None,
    in_channels: int | None,
    random_init: bool,
    constraint: str | None = None,
    constraint_degradation: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments of :func:`sciSR.downscale` from the values of :data:`PIPELINE_OPTIONS`."""
    from .models.catalog import is_tag

    kw: dict[str, Any] = dict(
        model=model,
        scale=scale,
        weights=weights if weights is None or is_tag(weights) else Path(weights),
        variables=list(variables) or None,
        tile=tile,
        overlap=overlap,
        norm=None if norm == "none" else norm,
        precision=precision,
        device=device,
        batch_size=batch_size,
        dtype=dtype,
        blend=blend,
    )
    if clip is not None:
        kw["clip"] = clip
    if in_channels:
        kw["in_channels"] = in_channels
    if random_init:
        kw["pretrained"] = False
    if constraint is not None:
        kw["constraint"] = constraint
    if constraint_degradation is not None:
        kw["constraint_degradation"] = constraint_degradation
    return kw


def cli_hint(message: str) -> str:
    """An API error message with keyword-argument hints restated as this command's options."""
    return (
        message.replace("pass weights=PATH", "pass --weights PATH")
        .replace("a tag (weights='dem')", "a tag (--weights dem)")
        .replace("pretrained=False", "--random-init")
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_debug_option
@click.version_option(package_name="scisr", prog_name="scisr")
def cli() -> None:
    """sciSR: super-resolution (downscaling) of climate grids, rasters and MRI volumes."""


@cli.command("models")
@click.option("--all/--learned-and-baselines", "show_all", default=True, hidden=True)
@_debug_option
def models_cmd(show_all: bool) -> None:
    """List the registered models, their scales and shipped weights (`scisr weights` for details)."""
    from .models.catalog import discover
    from .models.registry import get_entry, list_models

    shipped = discover()
    rows = []
    for name in list_models():
        e = get_entry(name)
        kind = "learned" if e.trainable else "baseline"
        w = ", ".join(x.name[len(name) + 1 :] for x in shipped if x.model == name) or "-"
        rows.append((name, kind, w, e.description))
    width = max(len(r[0]) for r in rows)
    wwidth = max(12, *(len(r[2]) for r in rows))
    click.echo(f"{'model'.ljust(width)}  {'kind':8}  {'weights'.ljust(wwidth)}  description")
    for name, kind, w, desc in rows:
        click.echo(f"{name.ljust(width)}  {kind:8}  {w.ljust(wwidth)}  {desc}")


@cli.command("weights")
@click.option("-m", "--model", help="Only the weights of this registry model.")
@click.option("-t", "--tag", help="Only weights with this tag (dem, precip, mri, ...; 'photo' for untagged).")
@_debug_option
def weights_cmd(model: str | None, tag: str | None) -> None:
    """List the shipped weights: scale, channels, tag, training data, licence, held-out scores, size."""
    from .models.catalog import list_weights
    from .models.registry import get_entry

    if model is not None:
        get_entry(model)  # unknown names fail with suggestions
    click.echo(str(list_weights(model=model, tag=tag)))


@cli.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@_debug_option
def info_cmd(path: Path) -> None:
    """Show what sciSR sees in PATH: format, variables, spatial dims, grid, CRS, valid mask."""
    from .io import describe, open_dataset

    click.echo(describe(open_dataset(path)))


@cli.command("downscale")
@click.argument("src", type=click.Path(path_type=Path))
@click.option(
    "-o", "--out", type=click.Path(path_type=Path), required=True, help="Output file (format by extension)."
)
@pipeline_options
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr (default: when it is a terminal)."
)
def downscale_cmd(src: Path, out: Path, progress: bool | None, **options: Any) -> None:
    """Super-resolve SRC (NetCDF, Zarr, GeoTIFF, NIfTI, image) into OUT."""
    from .api import downscale

    try:
        downscale(str(src), out=out, progress=progress, **downscale_kwargs(**options))
    except ValueError as e:
        if not str(e).startswith("no ") or " weights for '" not in str(e):
            raise
        raise ValueError(cli_hint(str(e))) from None
    click.echo(f"wrote {out}", err=True)


@cli.command("batch")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Output folder; each output is named <stem>_x<scale><ext>.",
)
@pipeline_options
@click.option("--suffix", help="Output extension, e.g. .zarr (default: the input's).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Start a local dask cluster of N single-threaded worker processes.",
)
@click.option("--scheduler", help="Address of a running dask scheduler, e.g. tcp://host:8786.")
@click.option(
    "--resume",
    is_flag=True,
    help="Skip files the manifest records as done with unchanged settings, input and output.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Further tries of a failed file.",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    help="JSON manifest of the job (default: OUT_DIR/scisr-manifest.json).",
)
def batch_cmd(
    sources: tuple[str, ...],
    out_dir: Path,
    suffix: str | None,
    workers: int | None,
    scheduler: str | None,
    resume: bool,
    retries: int,
    manifest: Path | None,
    **options: Any,
) -> None:
    """Downscale many files in parallel with dask (one task per file).

    SOURCES are files, quoted glob patterns ('data/*.nc', expanded here) and folders (the
    readable files directly inside, sorted). Every output name is checked before anything runs:
    an output that is, contains or lies inside one of the inputs stops the job. Each output is
    written atomically; the manifest records every finished file, so a killed job continues
    with --resume (see docs/cluster.md).
    """
    from .parallel import FileResult, downscale_files, expand_inputs

    if workers is not None and scheduler:
        raise click.UsageError("--workers starts a local cluster and --scheduler joins one: pass one of them")
    paths = expand_inputs(sources)
    kw = downscale_kwargs(**options)
    model, scale = kw.pop("model"), kw.pop("scale")
    client, cluster = _batch_client(workers, scheduler)

    def report(r: FileResult) -> None:
        if r.status == "skipped":
            click.echo(f"skip {r.source} -> {r.output} (done earlier, unchanged)", err=True)
        elif r.ok:
            what = "; ".join(
                f"{v} {'x'.join(map(str, i['shape']))} {i['model']}" for v, i in r.variables.items()
            )
            tries = f", {r.attempts} tries" if r.attempts > 1 else ""
            click.echo(f"ok   {r.source} -> {r.output} ({what}; {r.seconds:.1f} s{tries})", err=True)
        else:
            click.echo(f"ERR  {r.source}: {cli_hint(r.error or '')} ({r.attempts} tries)", err=True)

    t0 = time.perf_counter()
    try:
        results = downscale_files(
            paths,
            out_dir,
            model,
            scale,
            client=client,
            suffix=suffix,
            raise_errors=False,
            manifest=manifest if manifest is not None else True,
            resume=resume,
            retries=retries,
            on_result=report,
            **kw,
        )
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    click.echo(_summary_table(results, time.perf_counter() - t0), err=True)
    bad = [r for r in results if not r.ok]
    if bad:
        raise click.ClickException(f"{len(bad)} of {len(results)} files failed (listed above)")


def _batch_client(workers: int | None, scheduler: str | None) -> tuple[Any, Any]:
    """A dask client (and the local cluster it owns) for ``scisr batch``; ``(None, None)``: local threads.

    Raises:
        click.ClickException: The scheduler cannot be reached within
            :data:`sciSR.parallel.CONNECT_TIMEOUT` seconds.
    """
    if workers is None and not scheduler:
        return None, None
    import logging

    from dask.distributed import Client, LocalCluster

    from .parallel import CONNECT_TIMEOUT

    if scheduler:
        log = logging.getLogger("distributed")
        level = log.level
        log.setLevel(logging.CRITICAL)  # one error line, not dask's retry log
        try:
            return Client(scheduler, timeout=f"{CONNECT_TIMEOUT}s"), None
        except (OSError, TimeoutError, ValueError) as err:
            reason = _first_line(str(err)) or type(err).__name__
        except Exception:  # something answered that does not speak dask's protocol
            reason = "the address answered, but not as a dask scheduler"
        finally:
            log.setLevel(level)
        raise click.ClickException(
            f"cannot reach the dask scheduler at {scheduler} within {CONNECT_TIMEOUT} s ({reason}); "
            f"check the address and that the scheduler runs"
        )
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def _summary_table(results: list[Any], wall: float) -> str:
    """``status / files / seconds`` rows for done, skipped and failed files, and the total."""
    rows = []
    for status in ("done", "skipped", "failed"):
        sel = [r for r in results if r.status == status]
        secs = f"{sum(r.seconds for r in sel):.1f}" if status != "skipped" else "-"
        rows.append((status, len(sel), secs))
    rows.append(("total", len(results), f"{wall:.1f} (wall)"))
    lines = [f"{'status':8}  {'files':>5}  seconds"]
    lines += [f"{s:8}  {n:>5}  {t}" for s, n, t in rows]
    return "\n".join(lines)


@cli.command("demo")
@click.option(
    "-o",
    "--out",
    "outdir",
    type=click.Path(path_type=Path),
    default=Path("scisr-demo"),
    show_default=True,
    help="Folder for outputs, figures and the report.",
)
@click.option("-s", "--scale", type=click.IntRange(min=1), default=4, show_default=True)
@_debug_option
def demo_cmd(outdir: Path, scale: int) -> None:
    """Run the main job on the shipped samples: coarsen, super-resolve, score, plot, write."""
    from .demo import run_demo

    run_demo(outdir, scale=scale)


def _one_line_warning(message: Warning | str, category: type[Warning], *_args: object, **_kw: object) -> str:
    """Warnings as ``scisr: warning: ...`` lines (no file/line/source noise) outside ``--debug``."""
    return f"scisr: warning: {str(message).splitlines()[0]}\n"


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else ""


def _usage_line(e: click.UsageError) -> str:
    msg = _first_line(e.format_message()).rstrip(".")
    msg = msg[:1].lower() + msg[1:] if msg[:2] != msg[:2].upper() else msg
    where = e.ctx.command_path if e.ctx is not None else "scisr"
    return f"scisr: error: {msg} (see '{where} --help')"


def _wants_debug(args: list[str]) -> bool:
    end = args.index("--") if "--" in args else len(args)
    return "--debug" in args[:end]


from .cli_train import register as _register_training  # noqa: E402

_register_training(cli)

from .cli_evaluate import register as _register_evaluate  # noqa: E402

_register_evaluate(cli)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``scisr`` console script (and of ``python -m sciSR``).

    Returns:
        The exit status: 0, 1 (an error), 2 (a usage error).
    """
    from .interrupts import install_handlers

    args = list(sys.argv[1:] if argv is None else argv)
    debug = _wants_debug(args)
    old_format = warnings.formatwarning
    if not debug:
        warnings.formatwarning = _one_line_warning  # type: ignore[assignment]
    restore_signals = install_handlers("scisr")
    try:
        cli.main(args=args, prog_name="scisr", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code or 0)
    except click.exceptions.Abort:
        click.echo("scisr: aborted", err=True)
        return EXIT_ERROR
    except click.UsageError as e:
        if debug:
            raise
        click.echo(_usage_line(e), err=True)
        return EXIT_USAGE
    except click.ClickException as e:
        if debug:
            raise
        click.echo(f"scisr: error: {_first_line(e.format_message())}", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("scisr: interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as e:  # every other failure: one line unless --debug
        if debug:
            raise
        msg = _first_line(str(e)) or type(e).__name__
        click.echo(f"scisr: error: {msg}", err=True)
        return EXIT_ERROR
    finally:
        restore_signals()
        warnings.formatwarning = old_format
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
