"""Atomic JSON snapshot files: small state (topic metadata) that must never be half-written.

Built on ``checkpoint.atomic_write``: a reader sees the old snapshot or the new
one, never a mix, and the new one is durable when ``write_json_atomic`` returns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .checkpoint import atomic_write
from .permissions import make_dirs


def write_json_atomic(path: str | os.PathLike, state: Any) -> None:
    path = Path(path)
    make_dirs(path.parent)
    atomic_write(str(path), json.dumps(state, sort_keys=True, indent=1).encode())


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The snapshot at ``path``, or ``default`` when there is none yet."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return default
