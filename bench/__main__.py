"""`python -m bench [--smoke]`: run the benchmarks and write docs/benchmarks.md."""

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
