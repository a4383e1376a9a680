"""The commands for the platform that embeds us: `xero-elt apikey …` and `xero-elt webhooks …`.

`apikey create --name NAME` prints `key <value>` once (only a hash is kept); `apikey list` and
`apikey revoke KEY_ID` manage them. `webhooks list [--status S] [--json]` shows the outbox;
`webhooks replay EVENT_ID` queues an event again (the running auth server sends it).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines import exitcodes
from store import StoreError, open_store
from store.api_keys import DEFAULT_SCOPE, SCOPES


def add_parsers(sub: Any) -> None:
    """Add `apikey` and `webhooks` to the command tree."""
    apikey = sub.add_parser("apikey", help="API keys of the auth server's JSON API")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True, metavar="ACTION")
    create = apikey_sub.add_parser("create", help="a new key; printed once as `key <value>`")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--scope", choices=SCOPES, default=DEFAULT_SCOPE,
                        help="read: GETs; write: also invites, resend, withdraw, sync; admin: "
                             f"also disconnect and purge (default {DEFAULT_SCOPE})")
    keys = apikey_sub.add_parser("list", help="every key (never the key itself)")
    keys.add_argument("--json", action="store_true")
    revoke = apikey_sub.add_parser("revoke", help="the key stops working at once")
    revoke.add_argument("key_id")

    hooks = sub.add_parser("webhooks", help="the webhook outbox: list and replay events")
    hooks_sub = hooks.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    events = hooks_sub.add_parser("list", help="recent events, newest first")
    events.add_argument("--status", choices=["pending", "delivered", "failed"])
    events.add_argument("--connection", metavar="ID")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--json", action="store_true")
    replay = hooks_sub.add_parser("replay", help="send an event again (same id and body)")
    replay.add_argument("event_id")


def _print_json(doc: object) -> None:
    json.dump(doc, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def apikey(args: argparse.Namespace) -> int:
    """`xero-elt apikey create|list|revoke`."""
    store = open_store()
    try:
        if args.apikey_command == "create":
            record, key = store.create_api_key(args.name, args.scope)
            print(f"key_id {record.key_id}")
            print(f"scope {record.scope}")
            print(f"key {key}")
            print("xero-elt: the key is shown this once; keep it in the platform's secrets",
                  file=sys.stderr)
        elif args.apikey_command == "list":
            records = store.list_api_keys()
            if args.json:
                _print_json({"api_keys": [r.summary() for r in records]})
            for r in records if not args.json else []:
                state = "active" if r.active else f"revoked {r.revoked_at:%Y-%m-%d %H:%M}"
                used = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never used"
                print(f"{r.key_id}  {r.name}  {r.scope}  {state}  {used}")
        else:
            record = store.revoke_api_key(args.key_id)
            print(f"revoked {record.key_id} ({record.name})")
    except StoreError as exc:
        print(f"xero-elt: {exc}", file=sys.stderr)
        return exitcodes.USAGE if "no API key" in str(exc) or "name" in str(exc) \
            else exitcodes.FAILURE
    return exitcodes.OK


def webhooks(args: argparse.Namespace) -> int:
    """`xero-elt webhooks list|replay`."""
    store = open_store()
    try:
        if args.webhooks_command == "replay":
            event = store.replay_webhook_event(args.event_id)
            print(f"queued {event.event_id} ({event.type}) for delivery now")
            return exitcodes.OK
        events = store.list_webhook_events(status=args.status, connection_id=args.connection,
                                           limit=args.limit)
    except StoreError as exc:
        print(f"xero-elt: {exc}", file=sys.stderr)
        return exitcodes.USAGE if "no webhook event" in str(exc) else exitcodes.FAILURE
    if args.json:
        _print_json({"events": [e.summary() for e in events]})
        return exitcodes.OK
    for e in events:
        last = f"last {e.last_error or e.last_status}" if e.attempts else ""
        print(f"{e.event_id}  {e.created_at:%Y-%m-%d %H:%M:%S}  {e.type:<32} {e.connection_id}"
              f"  {e.status} ({e.attempts} attempts) {last}".rstrip())
    return exitcodes.OK
