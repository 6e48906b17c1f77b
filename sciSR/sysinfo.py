"""What the machine offers a call: memory available to it (RAM, container limit, override).

Used by the engine (tile budget) and the format adapters (refusing calls that cannot fit), below
both so neither imports the other.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

#: environment variable overriding the memory available to one call
ENV = "SCISR_MEMORY_LIMIT"
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_bytes(text: str) -> float:
    """``"2G"``, ``"512m"``, ``"1.5T"``, ``"1000000"`` → bytes (binary units).

    Raises:
        ValueError: Not a size.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", str(text))
    if m is None:
        raise ValueError(f"{ENV}={text!r} is not a size; use bytes or a number with K, M, G or T")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def available_bytes() -> float:
    """Memory one call may use (see the module docstring); ``inf`` when unknown."""
    env = os.environ.get(ENV)
    if env:
        return parse_bytes(env)
    found = [v for v in (_meminfo_available(), _cgroup_remaining()) if v is not None]
    return min(found) if found else math.inf


def _meminfo_available() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_remaining() -> float | None:
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = float((base / "memory.current").read_text().strip())
        return max(float(limit) - used, 0.0)
    except (OSError, ValueError):
        return None


