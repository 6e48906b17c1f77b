"""Summarise ``mutmut results --all true`` output: detected/total per module and the survivors.

Mutants in functions no selected test runs (``no tests``) count as not detected.

Usage: python tools/mutation/summary.py results.txt [rerun-results.txt ...]
"""

from __future__ import annotations

import collections
import sys


def read_statuses(paths: list[str]) -> dict[str, str]:
    """Mutant name → status; a later file (a rerun of some mutants) overrides an earlier one."""
    statuses: dict[str, str] = {}
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if ":" not in line or "__mutmut_" not in line:
                    continue
                name, status = (part.strip() for part in line.rsplit(":", 1))
                if status != "not checked" or name not in statuses:
                    statuses[name] = status
    return statuses


def main(paths: list[str]) -> None:
    by_module: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    survivors = []
    skipped = 0
    for name, status in read_statuses(paths).items():
        if status == "not checked":  # outside a MUTANT_GLOB selection
            skipped += 1
            continue
        module = name.split(".x", 1)[0].split(".x_", 1)[0]
        by_module[module][status] += 1
        if status not in ("killed", "timeout"):
            survivors.append(f"{name}: {status}")
    total: collections.Counter[str] = collections.Counter()
    for module, counts in sorted(by_module.items()):
        total.update(counts)
        n = sum(counts.values())
        print(f"{module}: {counts['killed'] + counts['timeout']}/{n} detected  {dict(counts)}")
    n = sum(total.values())
    found = total["killed"] + total["timeout"]  # a mutant that makes the tests hang is detected too
    print(f"all: {found}/{n} detected ({100 * found / max(n, 1):.1f}%)  {dict(total)}")
    if skipped:
        print(f"({skipped} mutants not checked)")
    print("not detected:")
    for s in survivors:
        print("  " + s)


if __name__ == "__main__":
    main(sys.argv[1:])
