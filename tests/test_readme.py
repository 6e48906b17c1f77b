"""README.md and docs/ examples run as pasted in an empty folder and print what their comments promise.

Every ```python block of README.md, docs/formats.md and docs/design.md runs on its own in a
fresh temporary directory (a new interpreter, so each block must import and define everything
it uses). A ``print(...)  # VALUE`` line whose comment
starts like a literal (digit, bracket, quote, ``None``/``True``/``False``) must find ``VALUE``
in the block's output (up to a trailing ``...``). The command-line quickstart's first line runs in
``bash``; its ``scisr`` lines run through the console script's entry point in this process (one
torch import instead of one per line), except ``scisr demo``, which tests/test_demo.py runs.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = (README, ROOT / "docs" / "formats.md", ROOT / "docs" / "design.md")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
EXPECT = re.compile(r"^\s*print\(.*\)\s+#\s*((?:[\d(\['\"-]|None|True|False).*?)\s*$")


def blocks(lang: str, doc: Path = README) -> list[str]:
    return [body for kind, body in FENCE.findall(doc.read_text()) if kind == lang]


PYTHON_BLOCKS = [(doc, i) for doc in DOCS for i in range(len(blocks("python", doc)))]


def section_blocks(title: str, lang: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return [body for kind, body in FENCE.findall(text[start : end if end > 0 else None]) if kind == lang]


def expected_outputs(code: str) -> list[str]:
    out = []
    for line in code.splitlines():
        m = EXPECT.match(line)
        if m:
            out.append(m.group(1).split("...")[0].rstrip())
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg", SCISR_NO_PROGRESS="1", PYTHONWARNINGS="ignore")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # scisr, python
    return env


def test_readme_has_python_examples() -> None:
    assert len(blocks("python")) >= 5
    assert len(section_blocks("Quickstart: command line", "bash")) == 1


def test_expected_output_comments_are_found() -> None:
    code = "print(x)   # (3, 384, 768)\nprint(y)  # what it is\nprint(z)  # ['a', 'b', ...]\n"
    assert expected_outputs(code) == ["(3, 384, 768)", "['a', 'b',"]


@pytest.mark.parametrize(("doc", "index"), PYTHON_BLOCKS, ids=[f"{d.name}-{i}" for d, i in PYTHON_BLOCKS])
def test_python_block_runs_in_an_empty_folder(doc: Path, index: int, tmp_path: Path) -> None:
    code = blocks("python", doc)[index]
    script = tmp_path / f"block_{index}.py"
    script.write_text(code)
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    r = subprocess.run(
        [sys.executable, str(script)], cwd=run_dir, capture_output=True, text=True, timeout=300, env=_env()
    )
    assert r.returncode == 0, f"{doc.name} block {index} failed:\n{code}\n--- stderr ---\n{r.stderr[-3000:]}"
    for want in expected_outputs(code):
        assert want in r.stdout, (
            f"{doc.name} block {index}: {want!r} not printed; stdout:\n{r.stdout[-2000:]}"
        )


def test_command_line_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from sciSR.cli import main
    from sciSR.data import SAMPLES

    (code,) = section_blocks("Quickstart: command line", "bash")
    first, *lines = code.splitlines()
    # the first line sets S in the shell; run it as pasted
    r = subprocess.run(
        ["bash", "-c", f'{first}\nprintf %s "$S"'], capture_output=True, text=True, timeout=120, env=_env()
    )
    assert r.returncode == 0 and Path(r.stdout) == SAMPLES, r.stderr[-2000:]
    # the scisr lines run in-process through the console script's entry point (one torch import)
    monkeypatch.chdir(tmp_path)
    ran = 0
    for line in lines:
        words = shlex.split(line.replace("$S", r.stdout), comments=True)
        argv = [m for w in words for m in (sorted(glob.glob(w)) or [w] if "*" in w else [w])]
        if not argv or argv[:2] == ["scisr", "demo"]:
            continue
        assert argv[0] == "scisr", line
        rc = main(argv[1:])
        assert rc == 0, f"{line}: exit {rc}\n{capsys.readouterr().err[-2000:]}"
        ran += 1
    assert ran >= 7
    outputs = (
        "tas_x4.nc",
        "dem_x4.tif",
        "t1_x2.nii.gz",
        "out/etopo5_alps_x4.tif",
        "out/cmip5_tas_mpi-esm-lr_2005_x4.nc",
        "out/coads_sst_climatology_x4.nc",
    )
    for name in outputs:
        assert (tmp_path / name).exists(), name


def test_sample_data_is_reachable_after_import_scisr(tmp_path: Path) -> None:
    code = (
        "import sys, sciSR\n"
        "p = sciSR.data.sample_path('etopo5_alps.tif')\n"
        "assert p.is_file() and p.is_absolute(), p\n"
        "assert 'torch' not in sys.modules and 'xarray' not in sys.modules\n"
        "try:\n"
        "    sciSR.data.sample_path('PROVENANCE.md')\n"
        "except FileNotFoundError as e:\n"
        "    assert 'etopo5_alps.tif' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('PROVENANCE.md is not a sample')\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=_env())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
