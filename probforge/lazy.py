"""Lazy package exports (PEP 562): a package names its public objects without importing them.

The ``probforge`` command line registers every package's subcommands on start-up; if the
packages' ``__init__`` modules imported their submodules (and so torch) eagerly, ``probforge
--help`` would take seconds. A package instead lists ``name -> "module"`` (or ``"module:attr"``
for an alias) and installs the two functions this module builds; ``from pgm import Factor``
then imports ``pgm.factor`` on first use, exactly as before. Type checkers read the same names
from an ``if TYPE_CHECKING:`` block of real imports in the package.

Examples
--------
>>> import sys, types
>>> from probforge.lazy import lazy_exports
>>> pkg = types.ModuleType("demo_pkg")
>>> sys.modules["demo_pkg"] = pkg
>>> pkg.__getattr__, pkg.__dir__ = lazy_exports("demo_pkg", {"sqrt": "math", "j": "json:dumps"})
>>> pkg.sqrt(4.0), pkg.j([1])
(2.0, '[1]')
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package with lazy exports.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping
        Public name -> ``"module"`` (the attribute of the same name) or ``"module:attr"``.

    Returns
    -------
    (getattr, dir)
        Assign them to the package's ``__getattr__`` and ``__dir__``. A name is imported on first
        access and cached in the package's namespace.
    """
    table = dict(exports)

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attr = target.partition(":")
        value = getattr(importlib.import_module(module_name), attr or name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
