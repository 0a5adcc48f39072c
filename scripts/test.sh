#!/usr/bin/env bash
# Install raykafka with its test extras and run the whole suite (the README's second command).
# Works on a fresh Debian with Python 3.11 and nothing else installed; no venv needed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[dev]" || exit 1
"$PYTHON" -m ruff check raykafka tests benchmarks || exit 1
# The C extension must have been built here (tests/test_record_builder.py checks it).
RAYKAFKA_REQUIRE_EXTENSIONS=1 "$PYTHON" -m pytest -q "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing, because a suite that runs nothing proves nothing" >&2
  exit 1
fi
exit "$status"
