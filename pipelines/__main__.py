"""`python -m pipelines` is `xero-elt`."""

import sys

from pipelines.cli import main

sys.exit(main())
