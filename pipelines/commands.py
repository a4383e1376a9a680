"""The connection-management commands of `xero-elt`: serve, invite, connections, disconnect.

Thin: each parses nothing, calls the auth server's functions, prints, and maps errors to exit
codes (2 for bad input or configuration, 1 for a failure at Xero).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connector.errors import ConfigurationError, XeroError
from connector.logs import printable
from pipelines import exitcodes
from store import StoreError, open_store


def _fail(message: str, code: int) -> int:
    print(f"xero-elt: {message}", file=sys.stderr)
    return code


def _guarded(action: Callable[[], int]) -> int:
    """Run a command, turning known errors into a message and an exit code."""
    from auth_server.errors import AuthServerError, ConfigError, InvalidInput, NotFound

    try:
        return action()
    except (InvalidInput, NotFound, ConfigurationError, ConfigError) as exc:
        return _fail(str(exc), exitcodes.USAGE)
    except (AuthServerError, XeroError, StoreError) as exc:
        return _fail(str(exc), exitcodes.FAILURE)


def create_invite_link(company: str, email: str,
                       language: str | None = None) -> tuple[str, str]:
    """Create an invite and send its email; returns (connection id, link)."""
    from auth_server.invites import create_invite
    from auth_server.settings import load_settings

    conn, link = create_invite(open_store(), load_settings(), company, email, language=language)
    return conn.connection_id, link


def invite_create(company: str, email: str, language: str | None = None) -> int:
    """`xero-elt invite create`: prints `invite <id>` and `link <url>`."""

    def act() -> int:
        connection_id, link = create_invite_link(company, email, language)
        print(f"invite {connection_id}")
        print(f"link {link}")
        return exitcodes.OK

    return _guarded(act)


def invite_resend(invite_id: str) -> int:
    """`xero-elt invite resend`: a new link; the old one stops working."""
    from auth_server.invites import resend_invite
    from auth_server.settings import load_settings

    def act() -> int:
        conn, link = resend_invite(open_store(), load_settings(), invite_id)
        print(f"invite {conn.connection_id}")
        print(f"link {link}")
        return exitcodes.OK

    return _guarded(act)


def connections_list(as_json: bool = False) -> int:
    """`xero-elt connections`: every connection with its status, organisation, last sync, and a
    warning as the Xero app nears its connection cap (`[auth_server] max_connections`)."""
    from auth_server.connections import connection_capacity, list_connection_rows
    from auth_server.settings import load_settings

    def act() -> int:
        store = open_store()
        rows: list[dict[str, Any]] = list_connection_rows(store)
        capacity = connection_capacity(store, load_settings().max_connections)
        if as_json:
            doc = {"connections": rows, "connection_limit": capacity.to_dict()}
            json.dump(doc, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
            return exitcodes.OK
        if not rows:
            print("no connections yet: `xero-elt invite create --company … --email …`")
            return exitcodes.OK
        header = f"{'CONNECTION':<18} {'STATUS':<19} {'ORGANISATION':<30} {'LAST SYNC':<26} REASON"
        print(header)
        for row in rows:
            name = printable(row.get("organisation_name") or row.get("company") or "")
            print(f"{row['connection_id']:<18} {row['status']:<19} {name[:30]:<30} "
                  f"{str(row.get('last_synced_at') or '-')[:26]:<26} "
                  f"{printable(row.get('status_reason') or '')}")
        if capacity.warning:
            print(f"\nwarning: {capacity.warning}")
        return exitcodes.OK

    return _guarded(act)


def connections_import(token_file: str) -> int:
    """`xero-elt connections import --token-file FILE|-`: adopt an existing grant."""
    from auth_server.connections import import_grant
    from connector.settings import load_settings as xero_settings

    def act() -> int:
        try:
            from_stdin = token_file == "-"  # noqa: S105 - "-" means stdin, not a password
            text = sys.stdin.read() if from_stdin else Path(token_file).read_text()
        except OSError as exc:
            return _fail(f"cannot read {token_file}: {exc.strerror}", exitcodes.USAGE)
        try:
            data = json.loads(text)
        except ValueError:
            return _fail(f"{token_file} is not JSON", exitcodes.USAGE)
        if not isinstance(data, dict) or not data.get("refresh_token"):
            return _fail("the token JSON needs a refresh_token", exitcodes.USAGE)
        conns = import_grant(open_store(), xero_settings(), data)
        for conn in conns:
            print(f"connected {conn.connection_id} {printable(conn.organisation_name)} "
                  f"({conn.tenant_id})")
        return exitcodes.OK

    return _guarded(act)


def disconnect(connection_id: str) -> int:
    """`xero-elt disconnect`: at Xero (and revoke the grant if unused), then here."""
    from auth_server.connections import disconnect as do_disconnect
    from connector.settings import load_settings as xero_settings

    def act() -> int:
        conn = do_disconnect(open_store(), xero_settings(), connection_id)
        print(f"disconnected {conn.connection_id} "
              f"{printable(conn.organisation_name or conn.company)}")
        return exitcodes.OK

    return _guarded(act)


def serve(host: str | None = None, port: int | None = None) -> int:
    """`xero-elt serve`: the auth server, until interrupted."""
    from auth_server.server import serve_forever

    return _guarded(lambda: serve_forever(host=host, port=port))
