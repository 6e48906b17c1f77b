"""``python -m sciSR``: the ``scisr`` command (same options, messages and exit statuses)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
