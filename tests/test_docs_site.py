"""The documentation site's configuration: nav entries exist, every page is reachable, the public API
is documented. Fast checks without building; ``mkdocs build --strict`` runs in CI (``.ci/run``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import sciSR

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: docs pages deliberately left out of the site's navigation (page → reason)
EXCLUDED: dict[str, str] = {}


def _config() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _nav_pages(entries: list) -> list[str]:
    """Every page path in a mkdocs nav (nested sections flattened, external links skipped)."""
    pages: list[str] = []
    for entry in entries:
        items = entry.values() if isinstance(entry, dict) else [entry]
        for item in items:
            if isinstance(item, list):
                pages += _nav_pages(item)
            elif isinstance(item, str) and not re.match(r"^[a-z]+://", item):
                pages.append(item)
    return pages


def test_config_is_strict_and_uses_docs_folder() -> None:
    cfg = _config()
    assert cfg.get("docs_dir", "docs") == "docs"
    assert cfg.get("strict") is True
    assert cfg["theme"]["name"] == "material"
    plugins = [next(iter(p)) if isinstance(p, dict) else p for p in cfg["plugins"]]
    assert "mkdocstrings" in plugins


def test_nav_entries_exist_once() -> None:
    pages = _nav_pages(_config()["nav"])
    assert pages, "mkdocs.yml has an empty nav"
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"nav entries without a file in docs/: {missing}"
    dupes = sorted({p for p in pages if pages.count(p) > 1})
    assert not dupes, f"pages listed more than once in the nav: {dupes}"


def test_every_docs_page_is_in_nav_or_excluded() -> None:
    in_nav = set(_nav_pages(_config()["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    orphans = sorted(pages - in_nav - set(EXCLUDED))
    assert not orphans, (
        f"docs pages missing from mkdocs.yml's nav (add them, or to EXCLUDED with a reason): {orphans}"
    )
    stale = sorted(set(EXCLUDED) - pages)
    assert not stale, f"EXCLUDED names pages that do not exist: {stale}"


@pytest.mark.parametrize("name", sorted(n for n in sciSR._EXPORTS if n != "data"))
def test_public_name_in_api_reference(name: str) -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    assert f"`sciSR.{name}`" in text, f"sciSR.{name} is public but docs/api.md does not document it"


def test_sphinx_roles_become_code_spans() -> None:
    pytest.importorskip("griffe")  # docs extra
    import importlib.util

    spec = importlib.util.spec_from_file_location("sphinx_roles", DOCS / "hooks" / "sphinx_roles.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = "See :func:`sciSR.list_models`, :class:`~sciSR.models.base.SRModel` and :mod:`x <sciSR.io>`."
    assert mod.roles_to_code(text) == "See `sciSR.list_models`, `SRModel` and `x`."
    assert mod.roles_to_code("``plain`` code, no role") == "``plain`` code, no role"


SNIPPET_PAGES = ["index.md", "getting-started.md", "howto-climate.md", "howto-geospatial.md", "howto-mri.md"]


@pytest.mark.slow
@pytest.mark.parametrize("page", SNIPPET_PAGES)
def test_page_python_snippets_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of the page runs as pasted, in an empty folder, on the shipped samples."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCISR_NO_PROGRESS", "1")
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), flags=re.S)
    assert blocks, f"{page} has no python snippet"
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/{page}[{i}]", "exec"), {"__name__": "__main__"})
