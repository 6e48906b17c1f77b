"""``scisr evaluate``: score models and the baseline ladder on HR data and write a report folder.

The report (``metrics.csv``, ``report.md``, ``scisr_report.json``, ``figures/*.png``) is built in a
temporary folder and renamed into place; an existing destination is replaced only when it is an
earlier sciSR report or empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def _split(values: tuple[str, ...] | str | None) -> list[str]:
    if not values:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [p.strip() for v in items for p in v.split(",") if p.strip()]


def register(group: click.Group) -> None:
    """Add ``evaluate`` to the ``scisr`` command group."""

    @group.command("evaluate")
    @click.argument("hr_file", type=click.Path(path_type=Path))
    @click.option("-s", "--scale", type=click.IntRange(min=1), default=4, show_default=True)
    @click.option(
        "-m", "--models", default="bicubic", show_default=True, help="Comma-separated registry names."
    )
    @click.option(
        "-o", "--out", type=click.Path(path_type=Path), required=True, help="Report folder (created)."
    )
    @click.option("--degradation", default="area", show_default=True, help="Operator making the LR.")
    @click.option("--lr", "lr_file", type=click.Path(path_type=Path), help="Existing LR file (must nest).")
    @click.option("-v", "--variables", multiple=True, help="Variables (repeatable or comma-separated).")
    @click.option(
        "--metrics", "metric_names", help="Comma-separated metric names (default: the standard set)."
    )
    @click.option(
        "--baselines", default="nearest,bilinear,bicubic,block", show_default=True, help="Baseline ladder."
    )
    @click.option("--weights", default="auto", show_default=True, help="auto|area|cos|none.")
    @click.option("-w", "--model-weights", help="Weight file or shipped tag for every model.")
    @click.option("--device", help="auto|cpu|cuda[:N].")
    @click.option("--no-figures", is_flag=True, help="Write only the tables.")
    @click.option("--debug", is_flag=True, expose_value=False, help="Show full tracebacks on errors.")
    def evaluate_cmd(
        hr_file: Path,
        scale: int,
        models: str,
        out: Path,
        degradation: str,
        lr_file: Path | None,
        variables: tuple[str, ...],
        metric_names: str | None,
        baselines: str,
        weights: str,
        model_weights: str | None,
        device: str | None,
        no_figures: bool,
    ) -> None:
        """Degrade HR_FILE by SCALE, run the baselines and MODELS on it, write a report folder."""
        from .evaluation import check_report_folder, evaluate

        if not hr_file.exists():
            raise click.ClickException(f"no such file: {hr_file}")
        check_report_folder(out)  # before minutes of inference, not after
        kw: dict[str, Any] = {}
        if device:
            kw["device"] = device
        names = _split(models)
        chosen: list[Any] = [(n, {"weights": model_weights}) if model_weights else n for n in names]
        base = _split(baselines)
        report = evaluate(
            str(hr_file),
            scale,
            models=[m for m in chosen if m not in base],
            degradation=degradation,
            variables=_split(variables) or None,
            lr=str(lr_file) if lr_file is not None else None,
            metrics=_split(metric_names) or None,
            baselines=base,
            weights=weights,
            progress=None,
            **kw,
        )
        report.save(out, figures=not no_figures)
        click.echo(report.to_markdown().split("\n## Metrics")[0].rstrip())
        click.echo(f"report written to {out}", err=True)
