"""Command line: ``python -m outrider_devcluster {binaries,image,up,down,status,nodes,...}``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
