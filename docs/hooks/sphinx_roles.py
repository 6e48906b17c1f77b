"""Griffe extension for the docs site: Sphinx cross-reference roles in docstrings as code spans.

sciSR's docstrings name other objects with Sphinx roles (``:func:`sciSR.list_models```), which
Markdown would show verbatim. This turns each role into an inline code span of its target
(``~a.b.c`` shows ``c``, as in Sphinx). Used by mkdocs.yml (mkdocstrings ``extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const):`(~?)([^`]+)`")


def _code_span(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    if "<" in target and target.endswith(">"):  # :func:`title <target>`
        target = target[: target.index("<")].strip()
    elif short:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def roles_to_code(text: str) -> str:
    """Replace every Sphinx cross-reference role in ``text`` by a code span of its target."""
    return _ROLE.sub(_code_span, text)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every loaded object's docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = roles_to_code(obj.docstring.value)
