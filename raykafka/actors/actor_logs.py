"""Where raykafka's actors log: a file per actor process, never the drivers' output.

Ray forwards every worker's stderr to every driver of the job that started it, so a
``logger.warning`` in the TopicManager used to appear in users' scripts and notebooks
(``(TopicManager pid=…) topic1-0: replica … re-created …``). Internal events are the
operator's business: each actor process sends the ``raykafka`` logger (INFO and up) to
``<Ray session dir>/logs/raykafka/<kind>-<pid>.log`` on its node instead, next to Ray's own
logs (``ray logs``, the dashboard's log view, and log collection see them), and the
TopicManager keeps its recent events for ``raykafka status`` (``RecentEvents``).
``RAYKAFKA_ACTOR_LOGS_TO_STDERR=1`` in the actors' environment (``runtime_env``) sends them to
stderr as well, i.e. to the drivers, for debugging.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from pathlib import Path

#: The logger every raykafka module logs under.
ROOT_LOGGER = "raykafka"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: How many recent events the TopicManager keeps for ``raykafka status``.
RECENT_EVENTS_MAX = 200

_routed: Path | None = None


def logs_directory() -> Path | None:
    """This Ray node's session logs directory, None outside a Ray worker."""
    try:
        import ray._private.worker as ray_worker

        return Path(ray_worker.global_worker.node.get_logs_dir_path())
    except Exception:  # not in a Ray worker, or Ray moved it: no file
        return None


def route_actor_logs(kind: str) -> Path | None:
    """Send this process's ``raykafka`` log records to its own file (once per process).

    Returns the file, or None when there is no Ray logs directory (then records go where
    Python's last-resort handler puts them, WARNING and up to stderr)."""
    global _routed
    if _routed is not None:
        return _routed
    directory = logs_directory()
    if directory is None:
        return None
    path = directory / "raykafka" / f"{kind}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    if os.environ.get("RAYKAFKA_ACTOR_LOGS_TO_STDERR") == "1":
        stderr = logging.StreamHandler()
        stderr.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(stderr)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # not to the root logger, whose last resort is stderr (the drivers)
    _routed = path
    return path


class RecentEvents(logging.Handler):
    """The last ``RECENT_EVENTS_MAX`` records at INFO and up, as dicts for ``raykafka status``."""

    def __init__(self, maxlen: int = RECENT_EVENTS_MAX):
        super().__init__(logging.INFO)
        self.events: collections.deque[dict] = collections.deque(maxlen=maxlen)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the caller
            message = str(record.msg)
        self.events.append(
            {
                "time_ms": int(record.created * 1000),
                "level": record.levelname,
                "message": message,
            }
        )

    def recent(self, limit: int) -> list[dict]:
        return list(self.events)[-limit:] if limit > 0 else []


def format_event_time(time_ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(time_ms / 1000))
