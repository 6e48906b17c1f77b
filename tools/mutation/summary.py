"""Summarise ``mutmut results --all true`` output: detected/total per module and the survivors.

Mutants in functions no selected test runs (``no tests``) count as not detected.

Usage: python tools/mutation/summary.py results.txt
"""

from __future__ import annotations

import collections
import sys


def main(path: str) -> None:
    by_module: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    survivors = []
    skipped = 0
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for line in lines:
        if ":" not in line or "__mutmut_" not in line:
            continue
        name, status = (part.strip() for part in line.rsplit(":", 1))
        if status == "not checked":  # outside a MUTANT_GLOB selection
            skipped += 1
            continue
        module = name.split(".x", 1)[0].split(".x_", 1)[0]
        by_module[module][status] += 1
        if status != "killed":
            survivors.append(f"{name}: {status}")
    total = collections.Counter()
    for module, counts in sorted(by_module.items()):
        total.update(counts)
        n = sum(counts.values())
        print(f"{module}: {counts['killed'] + counts['timeout']}/{n} detected  {dict(counts)}")
    n = sum(total.values())
    found = total["killed"] + total["timeout"]  # a mutant that makes the tests hang is detected too
    print(f"all: {found}/{n} detected ({100 * found / max(n, 1):.1f}%)  {dict(total)}")
    if skipped:
        print(f"({skipped} mutants not checked in this run)")
    print("not detected:")
    for s in survivors:
        print("  " + s)


if __name__ == "__main__":
    main(sys.argv[1])
