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

from raykafka.errors import NotLeader, RayKafkaError, RayNotConnected, RequestTimedOut

#: Pause between retries of a call whose actor is restarting.
RETRY_BACKOFF_S = 0.2
#: With ``refresh``: how long one attempt waits before asking again who leads. A leader whose
#: node hangs (frozen, not dead) never answers and Ray does not report it gone, while the
#: TopicManager moves leadership in ~1.5 s; a slow but alive leader keeps its first request
#: (the call is sent again only to another actor).
LEADER_ATTEMPT_S = 2.0

#: The actor cannot answer now: it died, is restarting, or cannot be restarted where it is pinned
#: (``ActorUnschedulableError``: its node is gone). Callers re-read where it lives and retry.
ACTOR_GONE = (RayActorError, ActorUnavailableError, ActorDiedError, ActorUnschedulableError)


def require_ray() -> None:
    """Raise RayNotConnected unless this process is connected to Ray.

    Called before a client's actor call: after ``ray.shutdown()`` Ray's auto-init would start a
    new local Ray on the call -- from a producer's or heartbeat's background thread too, racing
    the user's next ``ray.init`` -- and the client's actor handles belong to the old one."""
    if not ray.is_initialized():
        raise RayNotConnected(
            "this process is not connected to Ray (ray.shutdown() was called); "
            "call raykafka.connect() and create new clients"
        )


def unwrap(exc: BaseException) -> BaseException:
    """The exception a user should see for ``exc`` raised by ``ray.get``."""
    if isinstance(exc, RayTaskError):
        cause = exc.cause
        if isinstance(cause, RayKafkaError | TypeError | ValueError):
            return cause
    return exc


def timed_out(what: str, timeout_s: float, last: BaseException | None, hint: str = "") -> RequestTimedOut:
    """The RequestTimedOut of a call that did not complete, naming its last error."""
    return RequestTimedOut(
        f"{what} did not complete within {timeout_s:g} s"
        + (f" (last error: {type(last).__name__}: {last})" if last else "")
        + hint
    )


def call(
    method,
    *args,
    timeout_s: float,
    idempotent: bool = True,
    what: str = "request",
    refresh=None,
    leader_name: str | None = None,
    **kwargs,
):
    """``ray.get(method.remote(*args))`` with a deadline, retries and unwrapped errors.

    ``refresh()``, when given, returns ``(method, leader_name)``: where to send the call now
    (a partition's leader may be another actor after a failover, or after a re-placement when
    Ray itself restarted, and the old handle would never answer again). It is asked when the
    actor is found gone, answers ``NotLeader``, or has not answered within LEADER_ATTEMPT_S;
    in that last case the call is sent again only when the leader changed, else the first
    request is waited on further (a slow leader is not sent copies that queue behind it).
    ``leader_name``: the name of ``method``'s actor, as ``refresh`` names it.
    """
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    ask_again = refresh is not None and idempotent
    ref = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            hint = "; is the partition's node alive? raise request_timeout_ms to wait longer"
            raise timed_out(what, timeout_s, last, hint)
        if ref is None:
            require_ray()
            ref = method.remote(*args, **kwargs)
        try:
            return ray.get(ref, timeout=min(remaining, LEADER_ATTEMPT_S) if ask_again else remaining)
        except GetTimeoutError:
            if ask_again:  # a hung node is not reported dead for a while: has leadership moved?
                new_method, new_name = refresh()
                if new_name != leader_name or leader_name is None:
                    method, leader_name = new_method, new_name
                    last, ref = GetTimeoutError("the leader did not answer; it moved"), None
            continue
        except RayTaskError as exc:
            error = unwrap(exc)
            if not (ask_again and isinstance(error, NotLeader)):
                raise error from None
            last = error  # a replica that is not (yet) the leader: re-read who leads
        except ACTOR_GONE as exc:
            if not idempotent:
                raise
            last = exc
        ref = None
        time.sleep(min(RETRY_BACKOFF_S, max(0.0, deadline - time.monotonic())))
        if refresh is not None:
            method, leader_name = refresh()
