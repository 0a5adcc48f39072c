"""Connecting the CLI to Ray: quietly, quickly, and with one-line errors.

* ``prepare_environment`` runs before anything imports Ray: a client that carries a
  token (``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``) but no ``RAY_AUTH_MODE`` gets
  ``RAY_AUTH_MODE=token`` (Ray only sends the token in token mode), and Ray's GCS
  connect retries drop from 20 (~20 s) to ``RAY_NUM_REDIS_GET_RETRIES=5`` unless set.
* ``CliContext.connect`` probes a ``host:port`` address with a plain TCP connect
  first (``ray.init`` retries an unreachable address for minutes), then calls
  ``ray.init(logging_level="ERROR", log_to_driver=False)`` with file descriptor 2
  redirected to a temporary file, so Ray's startup logs (Python and C++) reach
  neither stdout nor stderr; they are read back only to explain a failure. Messages the
  cluster pushes to drivers later (Ray prints them on stdout) are dropped, see
  ``_quiet_cluster_messages``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from dataclasses import dataclass, field

#: How long the TCP probe of the Ray address may take.
PROBE_TIMEOUT_S = 3.0
#: ``RAY_NUM_REDIS_GET_RETRIES`` the CLI uses unless the environment sets it.
CLI_GCS_CONNECT_RETRIES = "5"


class CliError(Exception):
    """A failure the CLI reports as ``error: <message>`` with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def prepare_environment() -> None:
    """Adjust the environment Ray reads at import; call before anything imports ray."""
    env = os.environ
    if ("RAY_AUTH_TOKEN" in env or "RAY_AUTH_TOKEN_PATH" in env) and "RAY_AUTH_MODE" not in env:
        env["RAY_AUTH_MODE"] = "token"
    env.setdefault("RAY_NUM_REDIS_GET_RETRIES", CLI_GCS_CONNECT_RETRIES)


@dataclass
class CliContext:
    """The global options, and the connection made on first need (``--help`` never connects)."""

    address: str | None
    namespace: str
    connected: bool = field(default=False)

    def connect(self) -> None:
        if self.connected:
            return
        import ray

        import raykafka

        if not ray.is_initialized():
            _probe(self.address)
            _quiet_cluster_messages()
            with _capture_fd2() as captured:
                try:
                    ray.init(
                        address=self.address,
                        namespace=self.namespace,
                        logging_level="ERROR",
                        log_to_driver=False,
                    )
                except Exception as exc:
                    raise CliError(_explain_init_failure(self.address, exc, captured())) from exc
        raykafka.connect(address=self.address, namespace=self.namespace)
        self.connected = True


def _quiet_cluster_messages() -> None:
    """Keep the cluster's pushed messages off stdout.

    A Ray driver prints messages the cluster publishes (e.g. ``(raylet) WARNING: N worker
    processes have been started``) on *stdout*, whatever ``log_to_driver`` says, which would
    corrupt ``consume`` output and ``--json``. The CLI drops them (``RAYKAFKA_DEBUG=1``: to stderr).
    Ray private API, so best effort: if Ray changes, they are printed as before.
    """
    try:
        from ray._private import worker as ray_worker

        print_worker_logs = ray_worker.print_worker_logs
    except (ImportError, AttributeError):
        return
    from raykafka.cli.output import debug_enabled

    def to_stderr_or_nowhere(data, ignore_prefix: bool) -> None:
        if debug_enabled():
            import sys

            print_worker_logs(data, sys.stderr, ignore_prefix)

    ray_worker.print_to_stdstream = to_stderr_or_nowhere


def _host_port(address: str | None) -> tuple[str, int] | None:
    """``host:port`` of an explicit GCS address; None for auto/local/ray:// and the like."""
    if not address or address in ("auto", "local") or "://" in address:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


#: What every command says when there is no cluster to join (the CLI never starts a Ray of its
#: own unless asked: a throwaway Ray per command would hold each command's topics for a moment).
NO_CLUSTER_HINT = (
    "start one with `ray start --head` (or pass --address HOST:PORT / set RAY_ADDRESS), "
    "or pass --address local for a throwaway local Ray"
)


def _probe(address: str | None) -> None:
    if not address or address == "auto":
        address = _discovered_address(address)
        if address is None:
            raise CliError(f"no Ray cluster is running here; {NO_CLUSTER_HINT}")
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CliError(f"cannot reach Ray at {address} ({reason}); {NO_CLUSTER_HINT}") from None


def _discovered_address(address: str | None) -> str | None:
    """The running cluster ``ray.init`` would join for ``address`` None/"auto" (Ray's own lookup of
    ``RAY_ADDRESS`` and the last ``ray start`` on this machine); None when there is none ("auto"
    when the lookup itself is unavailable)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(address)
    except Exception:  # private API; without it, no probe: ray.init decides
        return "auto"


@contextlib.contextmanager
def _capture_fd2():
    """Send fd 2 (Ray's C++ logs and Python stderr) to a temp file; yields a reader of it."""
    import sys

    from raykafka.cli.output import debug_enabled

    if debug_enabled():
        yield lambda: ""
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: _read(tmp)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _read(tmp) -> str:
    tmp.flush()
    tmp.seek(0)
    return tmp.read().decode("utf-8", errors="replace")


def _explain_init_failure(address: str | None, exc: BaseException, captured: str) -> str:
    where = address or os.environ.get("RAY_ADDRESS") or "the local Ray"
    text = f"{exc}\n{captured}"
    if "InvalidAuthToken" in text or "Unauthenticated" in text or "auth token" in text.lower():
        have = [v for v in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH") if v in os.environ]
        hint = (
            f"the token in {' and '.join(have)} was refused"
            if have
            else "set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH (`ray get-auth-token` on the head prints it)"
        )
        return f"Ray at {where} requires token authentication: {hint}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot connect to Ray at {where}: {first}"
