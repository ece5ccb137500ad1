"""probforge: probabilistic graphical models, samplers and deep generative models on torch.

This package is the shared core: :mod:`probforge.ops` (semirings, contraction, log-space
primitives, generators, devices), :mod:`probforge.errors` and the ``probforge`` command line.
The model packages ``samplers``, ``pgm`` and ``generative`` build on it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("probforge")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
