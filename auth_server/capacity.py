"""How many connections the auth server serves at once, in total and per client.

One client (one address) may hold at most ``max_connections_per_client`` of the server's
``max_open_connections``, so a single machine opening idle half-requests cannot take every slot;
and the last quarter of the slots goes only to clients holding fewer than four, so a handful of
clients each at their cap still leave room for customers, the API and Xero's webhooks. Refused
connections are answered by a few threads of their own, bounded per client and in total, so
answering a flood costs no serving slot.
"""

from __future__ import annotations

import enum
import ipaddress
import threading
from collections.abc import Mapping

RESERVED_SHARE = 0.25  # of max_open_connections, kept for clients holding few connections
RESERVED_PER_CLIENT = 4  # a browser's page and stylesheet, with room to spare


class Admission(enum.Enum):
    """What to do with a new connection."""

    SERVE = "serve"
    CLIENT_FULL = "client_full"  # this client holds its share: 429
    SERVER_FULL = "server_full"  # every slot is taken: 503


def client_key(address: str) -> str:
    """The unit a cap applies to: the IPv4 address, or an IPv6 address's /64 (one machine is
    routinely given a whole /64, so counting single IPv6 addresses would cap nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def forwarded_client(peer: str, headers: Mapping[str, str] | None, trusted: bool) -> str:
    """The client's address: the last ``X-Forwarded-For`` entry (the one our proxy added) when
    the proxy is ``trusted``, else the socket's peer."""
    if trusted and headers is not None:
        forwarded = [p.strip() for p in (headers.get("X-Forwarded-For") or "").split(",")]
        if forwarded[-1]:
            return forwarded[-1][:64]
    return peer


class ClientSlots:
    """Slots taken per client and in total, and refusals being answered; thread-safe."""

    def __init__(self, total: int, per_client: int, *, reserve: bool = True) -> None:
        self.total = total
        self.per_client = max(1, min(per_client, total))
        # No reserve on a tiny server: it would refuse a client's second connection at once.
        small = total < 4 * RESERVED_PER_CLIENT
        self.reserve = 0 if small or not reserve else int(total * RESERVED_SHARE)
        self._held: dict[str, int] = {}
        self._refusing: dict[str, int] = {}
        self._open = 0
        self._refusing_total = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        """Slots taken now."""
        return self._open

    def held_by(self, client: str) -> int:
        """Slots ``client`` holds now."""
        return self._held.get(client, 0)

    def take(self, client: str) -> Admission:
        """A slot for ``client``, or why not (nothing is taken then)."""
        with self._lock:
            held = self._held.get(client, 0)
            if self._open >= self.total:
                return Admission.SERVER_FULL
            if held >= self.per_client or (
                    held >= RESERVED_PER_CLIENT and self._open >= self.total - self.reserve):
                return Admission.CLIENT_FULL
            self._held[client] = held + 1
            self._open += 1
            return Admission.SERVE

    def give_back(self, client: str) -> None:
        """Return a slot ``take`` gave."""
        with self._lock:
            self._open -= 1
            _decrement(self._held, client)

    def start_refusal(self, client: str) -> bool:
        """Whether a refused connection may be answered (a thread reads its head and writes the
        429 or 503); beyond as many refusals as slots, per client and in total, it is closed."""
        with self._lock:
            if (self._refusing_total >= self.total
                    or self._refusing.get(client, 0) >= self.per_client):
                return False
            self._refusing[client] = self._refusing.get(client, 0) + 1
            self._refusing_total += 1
            return True

    def end_refusal(self, client: str) -> None:
        """A refusal ``start_refusal`` allowed is done."""
        with self._lock:
            self._refusing_total -= 1
            _decrement(self._refusing, client)


def _decrement(counts: dict[str, int], client: str) -> None:
    # Entries go when they reach zero: the map never outgrows the connections open now.
    left = counts.get(client, 0) - 1
    if left > 0:
        counts[client] = left
    else:
        counts.pop(client, None)
