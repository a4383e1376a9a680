"""`python -m sandbox`: run the local Xero (same as `xero-elt sandbox`)."""

import sys

from sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
