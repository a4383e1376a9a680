"""The `xero-elt` command line: parses arguments and calls the part that does the work.

Heavy imports (dlt, the auth server) happen inside the command that needs them, so `--help`
and the cron lock check stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipelines import exitcodes


class UsageError(Exception):
    """Bad usage or configuration: exit code 2 with the message on stderr."""


def _entities(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class _EntityHelp(argparse.HelpFormatter):
    """Fills ``{entities}`` in a help text from the entity table, only when help is shown (the
    table brings the pydantic models along: half a second no other command should pay)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and "{entities}" in text:
            from connector.entities import ENTITIES

            text = text.replace("{entities}", ", ".join(ENTITIES))
        return text


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="xero-elt",
        description="Connect Xero organisations and keep their reference data synced with dlt.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the whole story offline, against the sandbox")
    demo.add_argument("--dir", type=Path, default=Path("demo-data"),
                      help="where the demo keeps what it makes (default ./demo-data)")

    sub.add_parser("sandbox", help="the local Xero (see `xero-elt sandbox --help`)",
                   add_help=False)

    serve = sub.add_parser("serve", help="the auth server: invite links, OAuth callback, /admin")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8765; 0 = free)")

    invite = sub.add_parser("invite", help="create or resend invites")
    invite_sub = invite.add_subparsers(dest="invite_command", required=True, metavar="ACTION")
    create = invite_sub.add_parser("create", help="a new invite; prints its id and link")
    create.add_argument("--company", required=True)
    create.add_argument("--email", required=True)
    create.add_argument("--language", default=None, metavar="CODE",
                        help="the language of the invite's pages and email (en, ar); default: "
                             "the customer's browser decides, the email is in English")
    resend = invite_sub.add_parser("resend", help="a new link; the old one stops working")
    resend.add_argument("invite_id")

    conns = sub.add_parser("connections", help="every connection with its status and last sync")
    conns.add_argument("--json", action="store_true", help="one JSON document on stdout")
    conns_sub = conns.add_subparsers(dest="connections_command", metavar="ACTION")
    imp = conns_sub.add_parser("import", help="adopt an existing grant (a token JSON file)")
    imp.add_argument("--token-file", required=True,
                     help="a Xero token response or {\"refresh_token\": …} as JSON; - for stdin")

    disconnect = sub.add_parser("disconnect", help="disconnect at Xero and here")
    disconnect.add_argument("connection_id")

    run = sub.add_parser("run", help="load every connected organisation (or those named)",
                         formatter_class=_EntityHelp,
                         description="Load what is due: per organisation, the entities whose "
                                     "interval has passed since their last successful read "
                                     "(`xero-elt schedule show`). --entities, --full-refresh, "
                                     "--reconcile, --webhook-events and first loads read what "
                                     "they name.")
    run.add_argument("--destination", help="dlt destination name (default from config: duckdb)")
    run.add_argument("--dataset", help="dataset (schema) name (default xero)")
    run.add_argument("--tenant", action="append", dest="tenants", metavar="ID",
                     help="only this organisation (repeatable)")
    run.add_argument("--entities", type=_entities, metavar="LIST",
                     help="comma-separated, from: {entities}; read now, whatever is due")
    run.add_argument("--reconcile", action="store_true",
                     help="reconcile suppliers and read the whole chart of accounts now "
                          "(catches contacts that became suppliers and deleted accounts)")
    run.add_argument("--full-refresh", action="store_true",
                     help="reload from scratch what the run names")
    run.add_argument("--wait", type=float, metavar="SECONDS",
                     help="wait this long for another run's lock instead of exiting 75")
    run.add_argument("--webhook-events", action="store_true",
                     help="read only the suppliers named by pending Xero webhook events")
    run.add_argument("--json", action="store_true", help="print a JSON summary on stdout")

    status = sub.add_parser("status", help="recent runs, freshness, warnings")
    status.add_argument("--json", action="store_true")

    from pipelines import platform_commands, purge, schedule_commands, store_commands

    platform_commands.add_parsers(sub)
    schedule_commands.add_parser(sub)
    purge.add_parser(sub)
    store_commands.add_parser(sub)
    return parser


def _print_json(doc: object) -> None:
    json.dump(doc, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import main as demo_main

    return demo_main(args.dir)


def cmd_serve(args: argparse.Namespace) -> int:
    from pipelines.commands import serve

    return serve(host=args.host, port=args.port)


def cmd_invite(args: argparse.Namespace) -> int:
    from pipelines import commands

    if args.invite_command == "create":
        return commands.invite_create(args.company, args.email, args.language)
    return commands.invite_resend(args.invite_id)


def cmd_connections(args: argparse.Namespace) -> int:
    from pipelines import commands

    if args.connections_command == "import":
        return commands.connections_import(args.token_file)
    return commands.connections_list(as_json=args.json)


def cmd_disconnect(args: argparse.Namespace) -> int:
    from pipelines import commands

    return commands.disconnect(args.connection_id)


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.run import RunOptions, run_from_cli

    options = RunOptions(
        destination=args.destination,
        dataset=args.dataset,
        tenants=args.tenants,
        entities=args.entities,
        reconcile=args.reconcile,
        full_refresh=args.full_refresh,
        wait=args.wait,
        as_json=args.json,
        webhook_events=args.webhook_events,
    )
    if args.webhook_events and (args.entities not in (None, ["suppliers"]) or args.reconcile
                                or args.full_refresh):
        raise UsageError("--webhook-events reads suppliers only; it takes no --entities, "
                         "--reconcile or --full-refresh")
    return run_from_cli(options)


def cmd_status(args: argparse.Namespace) -> int:
    from pipelines.status import status

    return status(as_json=args.json)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "serve": cmd_serve,
    "invite": cmd_invite,
    "connections": cmd_connections,
    "disconnect": cmd_disconnect,
    "run": cmd_run,
    "status": cmd_status,
    "apikey": lambda args: _platform("apikey", args),
    "webhooks": lambda args: _platform("webhooks", args),
    "purge": lambda args: _purge(args),
    "store": lambda args: _store(args),
    "schedule": lambda args: _schedule(args),
}


def _platform(command: str, args: argparse.Namespace) -> int:
    from pipelines import platform_commands

    return int(getattr(platform_commands, command)(args))


def _purge(args: argparse.Namespace) -> int:
    from pipelines.purge import purge_from_cli

    return purge_from_cli(args)


def _schedule(args: argparse.Namespace) -> int:
    from pipelines.schedule_commands import schedule_from_cli

    return schedule_from_cli(args)


def _store(args: argparse.Namespace) -> int:
    from pipelines.store_commands import store_from_cli

    return store_from_cli(args)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `xero-elt` and `python -m pipelines`."""
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    from pipelines.privacy import make_private, warn_if_home_is_open

    make_private()  # before anything is written: the DuckDB file, load packages, logs
    if argv and argv[0] == "sandbox":
        # The sandbox parses its own flags; it stands alone and imports nothing of ours.
        from sandbox.cli import main as sandbox_main

        return sandbox_main(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    from store import default_home

    warn_if_home_is_open(default_home())
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"xero-elt: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except KeyboardInterrupt:
        what = "run" if args.command == "run" else args.command
        print(f"xero-elt {what}: interrupted (Ctrl-C)"
              + ("; recorded as interrupted, and the next run catches up" if what == "run"
                 else ""), file=sys.stderr)
        if from_shell:
            # Worker threads may sit in a read from Xero for seconds; everything worth keeping
            # is written (the store, the history), so leave now rather than wait for them.
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
