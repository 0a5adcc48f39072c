"""The control core is pure: no Ray, no I/O, no clock -- the TopicManager does all of that."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import raykafka.control

SOURCES = sorted(Path(raykafka.control.__file__).parent.glob("*.py"))
#: Modules that reach outside the process or read the clock (uuid4 for new ids is allowed:
#: placement takes the id source as an argument, and tests pass their own).
FORBIDDEN = {
    *("ray", "os", "io", "pathlib", "shutil", "socket", "subprocess", "tempfile", "asyncio", "threading"),
    *("time", "datetime", "random", "logging", "raykafka.storage", "raykafka.actors", "raykafka.api"),
}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_sources_import_nothing_that_does_io_and_never_call_open():
    assert len(SOURCES) >= 10
    for path in SOURCES:
        bad = {n for n in imported(path) if n in FORBIDDEN or n.split(".")[0] in FORBIDDEN}
        assert not bad, f"{path.name} imports {bad}"
        calls = {
            node.func.id
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert not calls & {"open", "print", "input", "exec", "eval"}, path.name


def test_importing_it_does_not_import_ray():
    code = "import sys, raykafka.control; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
