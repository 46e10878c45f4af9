"""Builds carbonbook's compiled parts (Cython), where a C compiler exists: the core,
:mod:`carbonbook.core._cbook`, and the registries' ledger, :mod:`carbonbook._cvenue`.

Without one (or when the build fails) the package installs with its pure-Python parts alone,
and says so in one line; ``carbonbook --version`` then names the core that runs. Everything
else about the package is in pyproject.toml.
"""

import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that falls back to the pure core instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all: distutils raises at set-up
            _fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # the compiler or the headers failed
            _fallback(exc)


def _fallback(exc: Exception) -> None:
    print(f"carbonbook: compiled core not built ({type(exc).__name__}: {exc}); "
          "installing the pure-Python core", file=sys.stderr)


setup(
    ext_modules=cythonize(
        [Extension("carbonbook.core._cbook", ["src/carbonbook/core/_cbook.pyx"], extra_compile_args=["-O2"]),
         Extension("carbonbook._cvenue", ["src/carbonbook/_cvenue.pyx"], extra_compile_args=["-O2"])],
        language_level=3,
    ),
    cmdclass={"build_ext": OptionalBuildExt},
)
