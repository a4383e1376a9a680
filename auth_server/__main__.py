"""``python -m auth_server [--host H] [--port P]``: the auth server on its own.

The same as ``xero-elt serve``; first stdout line ``auth server listening on http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import sys

from auth_server.errors import AuthServerError
from auth_server.server import serve_forever


def main(argv: list[str] | None = None) -> int:
    """Parse ``--host``/``--port`` and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m auth_server",
                                     description="The xero-elt auth server.")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8765; 0 = a free one)")
    args = parser.parse_args(argv)
    try:
        return serve_forever(host=args.host, port=args.port)
    except (AuthServerError, OSError) as exc:
        print(f"auth server: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
