"""A connection's life: every status change, and who is told of it, in one table.

``TRANSITIONS`` lists each allowed (from status, event) → to status, with the webhook event it
sends (``None``: nobody is told; the admin page and ``xero-elt connections`` show it anyway).
``apply`` is the one way a connection's status changes: it reads the connection, finds the
transition, and writes the new status, the caller's other fields and the webhook event in one
transaction, as a compare-and-set on the row it read (a writer racing it makes it read again
and look the transition up again, so a purge that began meanwhile is never overwritten by a
late "connected"). Anything not in the table is refused with ``TransitionRefused``.

Sub-states ride in ``status_reason`` (e.g. ``link_opened`` with ``authorizing`` or
``confirming``); the caller passes it as a field. Sync events (``sync.first_completed``,
``sync.failed``) are not status changes: ``Store.update_connection`` reports those.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from store.base import Store
from store.records import Connection, ConnectionStatus, StoreError
from store.webhook_outbox import EventType

S = ConnectionStatus


class Event(StrEnum):
    """What happens to a connection (the reasons a status changes)."""

    OPEN_LINK = "open_link"
    """The customer opened the invite link."""
    FLOW_PROGRESS = "flow_progress"
    """The flow went on: off to Xero's consent (``authorizing``) or back to confirm
    (``confirming``), carried in ``status_reason``."""
    FLOW_STOPPED = "flow_stopped"
    """The flow stopped short: cancelled at Xero, no permission, a failed exchange."""
    CONFIRM = "confirm"
    """The customer confirmed the company: connected (also a reconnection)."""
    IMPORT = "import"
    """An existing grant was adopted (``xero-elt connections import``)."""
    TAKEN_OVER = "taken_over"
    """Another record of the same organisation was connected: this one steps aside."""
    RESEND = "resend"
    """A new invite link (a reconnection's link keeps ``needs_reconnection``)."""
    EXPIRE = "expire"
    """The invite link ran out before the company was connected."""
    DISCONNECT = "disconnect"
    """An admin disconnected or withdrew it."""
    ACCESS_LOST = "access_lost"
    """Xero refused the grant, or the user lost the role: connect again."""
    XERO_DISCONNECTED = "xero_disconnected"
    """Xero no longer lists the organisation for the grant."""
    PURGE_REQUESTED = "purge_requested"
    """A purge was asked for: from now on no run loads it."""
    PURGED = "purged"
    """The purge finished: nothing of the organisation is left but this record."""


@dataclass(frozen=True)
class Transition:
    """One allowed change: ``source`` + ``event`` → ``target``, telling ``tells`` (or nobody)."""

    source: ConnectionStatus
    event: Event
    target: ConnectionStatus
    tells: EventType | None = None


def _rows(sources: Iterable[ConnectionStatus], event: Event, target: ConnectionStatus,
          tells: EventType | None = None) -> list[Transition]:
    return [Transition(s, event, target, tells) for s in sources]


_FLOWING = (S.INVITED, S.LINK_OPENED, S.INCOMPLETE)
_NOT_PURGED = tuple(s for s in S if s not in (S.PURGING, S.PURGED))

TRANSITIONS: tuple[Transition, ...] = (
    *_rows([S.INVITED], Event.OPEN_LINK, S.LINK_OPENED),
    *_rows(_FLOWING, Event.FLOW_PROGRESS, S.LINK_OPENED),
    *_rows(_FLOWING, Event.FLOW_STOPPED, S.INCOMPLETE),
    *_rows((*_FLOWING, S.NEEDS_RECONNECTION), Event.CONFIRM, S.CONNECTED, EventType.CONNECTED),
    *_rows((*_FLOWING, S.NEEDS_RECONNECTION, S.EXPIRED, S.DISCONNECTED), Event.IMPORT,
           S.CONNECTED, EventType.CONNECTED),
    Transition(S.CONNECTED, Event.IMPORT, S.CONNECTED),  # imported again: nothing changes
    *_rows((S.CONNECTED, S.NEEDS_RECONNECTION), Event.TAKEN_OVER, S.DISCONNECTED,
           EventType.DISCONNECTED),
    *_rows((*_FLOWING, S.EXPIRED, S.DISCONNECTED), Event.RESEND, S.INVITED),
    Transition(S.NEEDS_RECONNECTION, Event.RESEND, S.NEEDS_RECONNECTION),
    *_rows(_FLOWING, Event.EXPIRE, S.EXPIRED),
    *_rows((*_FLOWING, S.CONNECTED, S.NEEDS_RECONNECTION, S.EXPIRED), Event.DISCONNECT,
           S.DISCONNECTED, EventType.DISCONNECTED),
    Transition(S.CONNECTED, Event.ACCESS_LOST, S.NEEDS_RECONNECTION,
               EventType.NEEDS_RECONNECTION),
    Transition(S.CONNECTED, Event.XERO_DISCONNECTED, S.DISCONNECTED, EventType.DISCONNECTED),
    *_rows(_NOT_PURGED, Event.PURGE_REQUESTED, S.PURGING),
    Transition(S.PURGING, Event.PURGED, S.PURGED, EventType.PURGED),
)

_TABLE: dict[tuple[ConnectionStatus, Event], Transition] = {
    (t.source, t.event): t for t in TRANSITIONS
}
assert len(_TABLE) == len(TRANSITIONS), "one transition per (from, event)"


class TransitionRefused(StoreError):
    """The connection's status does not allow the event (the table has no such row)."""

    def __init__(self, connection: Connection, event: Event) -> None:
        allowed = sorted(t.source.value for t in TRANSITIONS if t.event == event)
        super().__init__(
            f"connection {connection.connection_id} is {connection.status}: {event.value} is "
            f"not allowed (only from {', '.join(allowed)})"
        )
        self.connection = connection
        self.event = event


def transition_for(status: str, event: Event | str) -> Transition | None:
    """The table's row for (status, event), if it has one."""
    return _TABLE.get((ConnectionStatus(status), Event(event)))


def apply(store: Store, connection_id: str, event: Event | str, **fields: Any) -> Connection:
    """Move a connection on by ``event``: the new status, ``fields`` and the webhook event the
    table names, in one transaction (a compare-and-set on the connection as read).

    Args:
        store: the app's store.
        connection_id: the connection.
        event: what happened.
        **fields: other fields to write with it (``status_reason``, ``tenant_id``, …).

    Returns:
        The connection as written.

    Raises:
        TransitionRefused: its status does not allow ``event``.
        StoreError: no such connection, or a field it does not have.
    """
    event = Event(event)
    if "status" in fields:
        raise StoreError("the table decides the status: pass the event, not status=")
    while True:
        row = store._connection_row(connection_id)
        current = store._connection(row)
        found = transition_for(current.status, event)
        if found is None:
            raise TransitionRefused(current, event)
        prepared = store._connection_fields({**fields, "status": found.target})
        tells = [found.tells] if found.tells is not None and found.target != current.status \
            else []
        with store._write() as tx:
            changed = store._set_connection(tx, row, prepared, status_events=tells)
        if changed:
            return store.get_connection(connection_id)


def grant_refused(store: Store, grant_id: str, reason: str) -> list[str]:
    """Xero said ``invalid_grant``: mark the grant, and every connected organisation on it
    needs reconnection (``ACCESS_LOST``).

    Returns:
        The tenant ids whose connections now need reconnection.
    """
    store.set_grant_status(grant_id, "invalid", reason)
    tenants = []
    for connection in store.list_connections(statuses=[S.CONNECTED.value]):
        if connection.grant_id == grant_id:
            try:
                apply(store, connection.connection_id, Event.ACCESS_LOST,
                      status_reason=f"Xero refused the grant ({reason}); connect again")
            except TransitionRefused:
                continue  # changed meanwhile (disconnected, purging): nothing to add
            if connection.tenant_id:
                tenants.append(connection.tenant_id)
    return tenants


__all__ = ["TRANSITIONS", "Event", "Transition", "TransitionRefused", "apply", "grant_refused",
           "transition_for"]
