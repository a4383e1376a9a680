"""``python -m sandbox`` / ``xero-elt sandbox``: run a sandbox until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from sandbox.app import start_sandbox


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The `xero-elt sandbox` / `python -m sandbox` command line."""
    parser = argparse.ArgumentParser(
        prog="xero-elt sandbox",
        description="A local, stateful Xero for tests, demos and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated data (42)")
    parser.add_argument("--tenants", type=_non_negative, default=2, help="organisations (2)")
    parser.add_argument(
        "--suppliers", type=_non_negative, default=250, help="suppliers per organisation (250)"
    )
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="count calls but never answer 429"
    )
    parser.add_argument(
        "--latency-ms", type=_non_negative, default=0, help="delay of each API response (0)"
    )
    return parser.parse_args(argv)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run a sandbox until SIGTERM/SIGINT. First stdout line: `sandbox listening on <url>`."""
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        running = start_sandbox(
            host=args.host,
            port=args.port,
            seed=args.seed,
            tenants=args.tenants,
            suppliers=args.suppliers,
            rate_limits=not args.no_rate_limits,
            latency_ms=args.latency_ms,
        )
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"sandbox listening on {running.url}", flush=True)
    while not stop.wait(0.1):
        pass
    running.shutdown()
    return 0
