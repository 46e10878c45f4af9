"""Builds carbonbook's compiled parts (Cython), where a C compiler exists: the core,
:mod:`carbonbook.core._cbook`, and the registries' ledger, :mod:`carbonbook._cvenue`.

Without one (or when the build fails) the package installs with its pure-Python parts alone,
and says so in one line; ``carbonbook --version`` then names the core that runs. Everything
else about the package is in pyproject.toml.

With GCC the parts are built profile-guided, as CPython's ``--enable-optimizations`` builds
itself: built once instrumented, run on a short training workload (:data:`TRAINING`, a few
seconds: the engine's busy, deep, auction and replay paths, a venue on the memory and the
SQLite registry), then built again with the counts, which lay the hot paths out together
and the cold ones apart. The venue's code does not fit the 32 KiB instruction cache; by
callgrind (bench/venue.py --instructions, the busy venue flow) the profile cuts its
instruction-cache misses by 30 % (99.8 -> 69.9 a message) and its instructions by 8 % (memory
4,554 -> 4,182; SQLite 6,598 -> 6,120), the bare engine's by 5-6 % (2,457 -> 2,308; `apply` one
by one 3,639 -> 3,462, bench/instructions.py); timed, both ran about 10 % faster (an A/B on
a loaded machine). Any failure on the way
(another compiler, the training) builds them once more without it; ``CARBONBOOK_PGO=0`` skips
it (a quicker rebuild while editing: about 40 s against 90). The events are the same
either way: the profile changes the code's layout and inlining, not what it computes.
"""

import os
import subprocess
import sys
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

TRAINING = """
import io, os, sys, tempfile
sys.path.insert(0, sys.argv[1])  # the package just built, instrumented
import msgspec
from carbonbook import Engine
from carbonbook.operations import workload
from carbonbook.operations.replay import replay
from carbonbook.registry import MemoryRegistry, SQLiteRegistry
from carbonbook.venue import Venue

busy = workload.busy(40_000)
apply = Engine().apply
for command in busy:
    apply(command)
Engine().apply_all(busy)
Engine().apply_all(workload.deep(100_000, 40_000))
Engine().apply_all(workload.auction(40_000))
replay(io.BytesIO(msgspec.json.Encoder().encode_lines(busy)), Engine(), lambda data: None)
setup, orders = workload.venue_session(30_000)
with tempfile.TemporaryDirectory() as tmp:
    for registry in (MemoryRegistry(), SQLiteRegistry(os.path.join(tmp, "training.db"))):
        venue = Venue(registry, currency="EUR")
        venue.apply_all(setup)
        for i in range(0, len(orders), 4096):
            venue.apply_all(orders[i:i + 4096])
        venue.commit()
"""
"""The profile's training run (its own process, on the instrumented build)."""


class OptionalBuildExt(build_ext):
    """build_ext that builds profile-guided where it can (see the module docstring), and falls
    back to the pure core instead of failing the install."""

    _strict = False  # a failed extension raises (while building profile-guided) instead of falling back

    def run(self) -> None:
        try:
            if os.environ.get("CARBONBOOK_PGO", "1") == "0" or not self._profiled():
                super().run()
        except Exception as exc:  # no compiler at all: distutils raises at set-up
            _fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # the compiler or the headers failed
            if self._strict:
                raise
            _fallback(exc)

    def _profiled(self) -> bool:
        """Build instrumented, train, build with the profile, each build forced (so always about
        twice a plain build's time); False when a step failed (the flags put back, the next
        build forced). Only a failure after the instrumented build says so: one that fails to
        compile at all (another compiler, or none) goes on quietly to the plain build, which
        says what it needs to."""
        saved = [(ext, list(ext.extra_compile_args), list(ext.extra_link_args)) for ext in self.extensions]
        compiler = self.compiler  # a name or None: each run makes its compiler from it
        built = False
        self._strict = True
        try:
            with tempfile.TemporaryDirectory() as profiles:
                self._flags(saved, [f"-fprofile-generate={profiles}"], [f"-fprofile-generate={profiles}"])
                self.force = True  # (an up-to-date build would train nothing)
                super().run()
                built = True
                env = {k: v for k, v in os.environ.items() if k != "CARBONBOOK_PURE"}
                env["PYTHONHASHSEED"] = "0"  # the same counts, the same build
                subprocess.run([sys.executable, "-c", TRAINING, self._importable()], check=True, timeout=900,
                               env=env)
                self._flags(saved, [f"-fprofile-use={profiles}", "-fprofile-partial-training",
                                    "-Wno-missing-profile"], [])
                self.force, self.compiler = True, compiler
                super().run()
            return True
        except Exception as exc:
            if built:
                print(f"carbonbook: profile-guided build failed ({type(exc).__name__}: {exc}); "
                      "building without it", file=sys.stderr)
            self._flags(saved, [], [])
            self.force, self.compiler = True, compiler
            return False
        finally:
            self._strict = False

    @staticmethod
    def _flags(saved: list[tuple[Extension, list[str], list[str]]], compiling: list[str],
               linking: list[str]) -> None:
        """Each extension's own flags (``saved``) and ``compiling`` and ``linking`` after them."""
        for ext, compile_args, link_args in saved:
            ext.extra_compile_args = compile_args + compiling
            ext.extra_link_args = link_args + linking

    def _importable(self) -> str:
        """Where the package just built imports from: the source tree (an in-place or editable
        build) or the build directory. The training puts it first on its path itself: an
        isolated build's start-up drops from the path any directory a site .pth names, which
        an earlier editable install of this tree makes of ``src``."""
        if not self.inplace:
            return os.path.abspath(self.build_lib)
        package = self.get_finalized_command("build_py").get_package_dir("carbonbook")
        return os.path.abspath(os.path.dirname(package))


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
