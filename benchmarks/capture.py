"""Capture benchmark: `python benchmarks/capture.py [--layers N] [--repeats R] [--geometry real [--family F]]`
(same as `egokit bench capture --json ...`)."""

import sys

from egokit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "capture", "--json", *sys.argv[1:]]))
