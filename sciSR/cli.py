"""The ``scisr`` command: ``models``, ``info``, ``downscale``, ``demo``.

Errors print one line (``scisr: error: ...``) and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

EXIT_USAGE = 2
EXIT_ERROR = 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="scisr", prog_name="scisr")
def cli(debug: bool) -> None:
    """sciSR: super-resolution (downscaling) of climate grids, rasters and MRI volumes."""


@cli.command("models")
@click.option("--all/--learned-and-baselines", "show_all", default=True, hidden=True)
def models_cmd(show_all: bool) -> None:
    """List the registered models, their scales and shipped weights."""
    from .models.registry import get_entry, list_models, shipped_weights

    shipped = shipped_weights()
    rows = []
    for name in list_models():
        e = get_entry(name)
        kind = "learned" if e.trainable else "baseline"
        w = ", ".join(s[len(name) + 1 :] for s in shipped if s.rsplit("_x", 1)[0] == name) or "-"
        rows.append((name, kind, w, e.description))
    width = max(len(r[0]) for r in rows)
    click.echo(f"{'model'.ljust(width)}  {'kind':8}  {'weights':12}  description")
    for name, kind, w, desc in rows:
        click.echo(f"{name.ljust(width)}  {kind:8}  {w:12}  {desc}")


@cli.command("info")
@click.argument("path", type=click.Path(path_type=Path))
def info_cmd(path: Path) -> None:
    """Show what sciSR sees in PATH: format, variables, spatial dims, grid, CRS, valid mask."""
    from .io import describe, open_dataset

    click.echo(describe(open_dataset(path)))


@cli.command("downscale")
@click.argument("src", type=click.Path(path_type=Path))
@click.option(
    "-o", "--out", type=click.Path(path_type=Path), required=True, help="Output file (format by extension)."
)
@click.option(
    "-m", "--model", default="bicubic", show_default=True, help="Registry name (see `scisr models`)."
)
@click.option("-s", "--scale", type=int, default=4, show_default=True, help="Integer upscaling factor.")
@click.option("-w", "--weights", type=click.Path(path_type=Path), help="Weight file (.safetensors / .pth).")
@click.option("-v", "--variable", "variables", multiple=True, help="Variable to downscale (repeatable).")
@click.option("--tile", type=int, help="Core tile size in LR pixels (0 = no tiling).")
@click.option("--overlap", type=int, help="LR halo per tile side (default: receptive field).")
@click.option("--norm", default="auto", show_default=True, help="auto|zscore|minmax|log1p|percentile|none.")
@click.option("--precision", default="auto", show_default=True, help="auto|fp32|bf16|fp16.")
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda[:N].")
@click.option("--batch-size", type=int, help="Tiles per forward pass.")
@click.option("--dtype", help="Output dtype (default float32; 'source' restores the input's).")
@click.option("--blend", type=click.Choice(["crop", "hann", "gaussian"]), help="Tile merge mode.")
@click.option("--channels", "in_channels", type=int, help="Treat this many bands as model channels.")
@click.option("--random-init", is_flag=True, help="Use a randomly initialised model (testing only).")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr (default: when it is a terminal)."
)
def downscale_cmd(
    src: Path,
    out: Path,
    model: str,
    scale: int,
    weights: Path | None,
    variables: tuple[str, ...],
    tile: int | None,
    overlap: int | None,
    norm: str,
    precision: str,
    device: str,
    batch_size: int | None,
    dtype: str | None,
    blend: str | None,
    in_channels: int | None,
    random_init: bool,
    progress: bool | None,
) -> None:
    """Super-resolve SRC (NetCDF, Zarr, GeoTIFF, NIfTI, image) into OUT."""
    from .api import downscale

    kw: dict = {}
    if in_channels:
        kw["in_channels"] = in_channels
    if random_init:
        kw["pretrained"] = False
    try:
        downscale(
            str(src),
            model=model,
            scale=scale,
            weights=weights,
            variables=list(variables) or None,
            tile=tile,
            overlap=overlap,
            norm=None if norm == "none" else norm,
            precision=precision,
            device=device,
            batch_size=batch_size,
            progress=progress,
            out=out,
            dtype=dtype,
            blend=blend,
            **kw,
        )
    except ValueError as e:
        if not str(e).startswith("no weights for"):
            raise
        # the API's hint names keyword arguments; say it with this command's options
        hint = str(e).replace("pass weights=PATH", "pass --weights PATH")
        raise ValueError(hint.replace("pretrained=False", "--random-init")) from None
    click.echo(f"wrote {out}", err=True)


@cli.command("batch")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("-m", "--model", default="bicubic", show_default=True)
@click.option("-s", "--scale", type=int, default=4, show_default=True)
@click.option("-w", "--weights", type=click.Path(path_type=Path))
@click.option("--suffix", help="Output extension, e.g. .zarr (default: the input's).")
@click.option("--scheduler", help="dask.distributed scheduler address (default: local threads).")
@click.option("--precision", default="auto", show_default=True)
@click.option("--device", default="auto", show_default=True)
def batch_cmd(
    sources: tuple[Path, ...],
    out_dir: Path,
    model: str,
    scale: int,
    weights: Path | None,
    suffix: str | None,
    scheduler: str | None,
    precision: str,
    device: str,
) -> None:
    """Downscale many files in parallel with dask (one task per file)."""
    from .parallel import downscale_files

    client = None
    if scheduler:
        from dask.distributed import Client

        client = Client(scheduler)
    results = downscale_files(
        list(sources),
        out_dir,
        model,
        scale,
        client=client,
        suffix=suffix,
        raise_errors=False,
        weights=weights,
        precision=precision,
        device=device,
    )
    for r in results:
        click.echo(f"{'ok ' if r.ok else 'ERR'} {r.source} -> {r.output or r.error}", err=True)
    bad = [r for r in results if not r.ok]
    if bad:
        raise click.ClickException(f"{len(bad)} of {len(results)} files failed")


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
@click.option("-s", "--scale", type=int, default=4, show_default=True)
def demo_cmd(outdir: Path, scale: int) -> None:
    """Run the main job on the shipped samples: coarsen, super-resolve, score, plot, write."""
    from .demo import run_demo

    run_demo(outdir, scale=scale)


def _one_line_warning(message: Warning | str, category: type[Warning], *_args: object, **_kw: object) -> str:
    """Warnings as ``scisr: warning: ...`` lines (no file/line/source noise) outside ``--debug``."""
    return f"scisr: warning: {str(message).splitlines()[0]}\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``scisr`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if not debug:
        warnings.formatwarning = _one_line_warning
    try:
        cli.main(args=args, prog_name="scisr", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code or 0)
    except click.exceptions.Abort:
        click.echo("scisr: aborted", err=True)
        return EXIT_ERROR
    except click.ClickException as e:
        if debug:
            raise
        e.show()
        return EXIT_USAGE
    except KeyboardInterrupt:
        click.echo("scisr: interrupted", err=True)
        return 130
    except Exception as e:  # every other failure: one line unless --debug
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        click.echo(f"scisr: error: {msg}", err=True)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
