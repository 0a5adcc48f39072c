"""Calling actors from clients: deadlines, retries across actor restarts, typed errors.

Ray wraps an exception raised in an actor in ``RayTaskError``; users should see
the raykafka error itself, with its message, so ``call`` unwraps it. A call to
an actor that is restarting (its process was killed) is retried until the
deadline for idempotent calls; anything that cannot finish in time becomes
``RequestTimedOut``.
"""

from __future__ import annotations

import time

import ray
from ray.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    ActorUnschedulableError,
    GetTimeoutError,
    RayActorError,
    RayTaskError,
)

from raykafka.errors import NotLeader, RayKafkaError, RequestTimedOut

#: Pause between retries of a call whose actor is restarting.
RETRY_BACKOFF_S = 0.2
#: With ``refresh``: how long one attempt waits before asking again who leads. A leader whose
#: node hangs (frozen, not dead) never answers and Ray does not report it gone, while the
#: TopicManager moves leadership in ~1.5 s; a slow but alive leader is merely asked twice
#: (``refresh`` is only given for idempotent calls).
LEADER_ATTEMPT_S = 2.0

#: The actor cannot answer now: it died, is restarting, or cannot be restarted where it is pinned
#: (``ActorUnschedulableError``: its node is gone). Callers re-read where it lives and retry.
ACTOR_GONE = (RayActorError, ActorUnavailableError, ActorDiedError, ActorUnschedulableError)


def unwrap(exc: BaseException) -> BaseException:
    """The exception a user should see for ``exc`` raised by ``ray.get``."""
    if isinstance(exc, RayTaskError):
        cause = exc.cause
        if isinstance(cause, RayKafkaError | TypeError | ValueError):
            return cause
    return exc


def call(
    method,
    *args,
    timeout_s: float,
    idempotent: bool = True,
    what: str = "request",
    refresh=None,
    **kwargs,
):
    """``ray.get(method.remote(*args))`` with a deadline, retries and unwrapped errors.

    ``refresh()``, when given, returns the method to retry with after the actor is found
    gone, answers ``NotLeader`` or has not answered within LEADER_ATTEMPT_S: a partition's
    leader may be another actor by now (failover, or a re-placement after Ray itself
    restarted), and the old handle would never answer again.
    """
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimedOut(
                f"{what} did not complete within {timeout_s:g} s"
                + (f" (last error: {type(last).__name__}: {last})" if last else "")
                + "; is the partition's node alive? raise request_timeout_ms to wait longer"
            )
        ask_again = refresh is not None and idempotent
        attempt_s = min(remaining, LEADER_ATTEMPT_S) if ask_again else remaining
        try:
            return ray.get(method.remote(*args, **kwargs), timeout=attempt_s)
        except GetTimeoutError:
            if not ask_again:
                last = None
                continue
            last = GetTimeoutError(f"no answer within {attempt_s:.1f} s")  # frozen? re-read who leads
        except RayTaskError as exc:
            error = unwrap(exc)
            if not (refresh is not None and idempotent and isinstance(error, NotLeader)):
                raise error from None
            last = error  # a replica that is not (yet) the leader: re-read who leads
        except ACTOR_GONE as exc:
            if not idempotent:
                raise
            last = exc
        time.sleep(min(RETRY_BACKOFF_S, max(0.0, deadline - time.monotonic())))
        if refresh is not None:
            method = refresh()
