"""Builds raykafka's one optional C extension (the producer's per-message path).

Everything else is in pyproject.toml. ``raykafka/api/_record_builder.pyx`` is compiled with
Cython when a C compiler and the Python headers are there; without them the install still
succeeds and ``raykafka.api.record_builder`` uses its pure-Python twin (slower per message,
same behaviour). ``RAYKAFKA_NO_EXTENSIONS=1`` skips the build.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing: the extension only makes send() faster."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: the pure-Python builder serves
            self._skipped(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skipped(exc)

    @staticmethod
    def _skipped(exc):
        print(
            f"raykafka: C extension not built ({type(exc).__name__}: {exc}); using the pure-Python "
            "record builder (Producer.send per message is slower, nothing else changes)",
            file=sys.stderr,
        )


def extensions():
    if os.environ.get("RAYKAFKA_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:  # built without build isolation and without Cython
        OptionalBuildExt._skipped(exc)
        return []

    return cythonize(
        [Extension("raykafka.api._record_builder", ["raykafka/api/_record_builder.pyx"])],
        compiler_directives={"language_level": "3"},
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
