"""Who may read raykafka's files: the owner only, unless the operator says otherwise.

Records are users' data; the processes that serve them (Ray workers) run as one OS user, so
every file raykafka writes is created ``0600`` and every directory ``0700`` by default
(a umask can only remove bits). ``RAYKAFKA_DATA_FILE_MODE`` / ``RAYKAFKA_DATA_DIR_MODE``
(octal, e.g. ``640`` / ``750``, in the environment of the Ray nodes) widen them, e.g. for a
backup agent in the owner's group. Read once, at import.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import faults


def _mode(variable: str, default: int) -> int:
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError(f"{variable}={text!r} is not an octal file mode (e.g. 600)") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{variable}={text!r} is not a file mode between 000 and 777")
    return mode


#: Mode of every file raykafka creates (segments, indexes, checkpoints, identities, locks).
FILE_MODE = _mode("RAYKAFKA_DATA_FILE_MODE", 0o600)
#: Mode of every directory raykafka creates, the data directory itself included.
DIR_MODE = _mode("RAYKAFKA_DATA_DIR_MODE", 0o700)


def make_dirs(path: str | os.PathLike) -> None:
    """``mkdir -p`` with DIR_MODE on every level it creates (``os.makedirs`` gives the mode to
    the last level only). Each level it creates is made durable (its parent fsynced), so a
    power loss cannot take a directory away with the fsynced files in it."""
    from .checkpoint import fsync_dir  # checkpoint imports this module

    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            if faults.ENABLED:
                faults.mkdir(directory, DIR_MODE)
            else:
                directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process made it meanwhile
        fsync_dir(str(directory.parent))
