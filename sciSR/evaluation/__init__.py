"""Evaluation of SR models against a baseline ladder: :func:`evaluate` and its :class:`EvaluationReport`.

See ``docs/evaluation.md`` for the metrics, their formulas and the report's contents.
"""

from __future__ import annotations

from .core import BASELINES, EvaluationReport, check_nesting, check_report_folder, evaluate

__all__ = ["BASELINES", "EvaluationReport", "check_nesting", "check_report_folder", "evaluate"]
