"""Commits never go backwards by accident: each client numbers its commits, and an older one
that arrives late is dropped instead of overwriting a newer one.

Ray does not order calls to an async actor, so a consumer's asynchronous auto-commit and a
later synchronous ``commit()`` may reach the coordinator in either order, and a commit that
timed out on the client (and was followed by a newer one) may still land. Kafka's consumer
avoids the same race by never retrying async commits and ordering them by a sequence; here
the coordinator keeps the newest sequence number it stored per client (``CommitOrder``) and
ignores anything numbered lower. Memory only, bounded: a coordinator that restarted starts
trusting every client again (members rejoin then anyway).
"""

from __future__ import annotations

import collections

#: Clients remembered per group; the least recently committing are forgotten first.
MAX_CLIENTS = 10_000


class CommitOrder:
    """The newest commit sequence number stored per client id."""

    def __init__(self, max_clients: int = MAX_CLIENTS):
        self.max_clients = max_clients
        self._newest: collections.OrderedDict[str, int] = collections.OrderedDict()

    def is_stale(self, client_id: str, seq: int) -> bool:
        """Whether a commit numbered ``seq`` is older than one already stored for the client."""
        newest = self._newest.get(client_id)
        return newest is not None and seq <= newest

    def stored(self, client_id: str, seq: int) -> None:
        """Commit ``seq`` of ``client_id`` was stored."""
        self._newest[client_id] = max(seq, self._newest.get(client_id, seq))
        self._newest.move_to_end(client_id)
        while len(self._newest) > self.max_clients:
            self._newest.popitem(last=False)
