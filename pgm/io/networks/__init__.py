"""Example networks shipped with probforge as package data.

=========== ===================================================================================
name        network
=========== ===================================================================================
``alarm``   ALARM patient-monitoring network, 37 variables (bnlearn repository; Beinlich et al.
            1989), file text as distributed by bnlearn / pgmpy
``asia``    Lauritzen & Spiegelhalter's chest-clinic network, 8 variables (bnlearn repository)
``sprinkler`` cloudy / sprinkler / rain / wet grass, 4 variables, CPTs of K. Murphy's Bayes Net
            Toolbox example
=========== ===================================================================================

Examples
--------
>>> from pgm.io.networks import bundled_network_path, bundled_networks
>>> bundled_networks()
['alarm', 'asia', 'sprinkler']
>>> bundled_network_path("asia").name
'asia.bif'
"""

from __future__ import annotations

from pathlib import Path

from probforge.errors import DataNotFoundError, ValidationError

__all__ = ["bundled_network_path", "bundled_networks"]

_DIRECTORY = Path(__file__).resolve().parent
_SUFFIXES = (".bif", ".uai")


def bundled_networks() -> list[str]:
    """Return the names of the bundled networks, sorted.

    Returns
    -------
    list of str
        Names accepted by :func:`bundled_network_path`.
    """
    return sorted(p.stem for p in _DIRECTORY.iterdir() if p.suffix in _SUFFIXES and p.is_file())


def bundled_network_path(name: str) -> Path:
    """Return the path of a bundled network file.

    Parameters
    ----------
    name : str
        A name from :func:`bundled_networks` (without extension), e.g. ``"asia"``.

    Returns
    -------
    pathlib.Path
        The file (``.bif`` or ``.uai``) inside the installed package.

    Raises
    ------
    probforge.errors.DataNotFoundError
        No network of that name is bundled; the message lists the available ones.

    Examples
    --------
    >>> from pgm.io import read_bif
    >>> from pgm.io.networks import bundled_network_path
    >>> read_bif(bundled_network_path("sprinkler")).parents["wetgrass"]
    ('sprinkler', 'rain')
    """
    if not isinstance(name, str):
        raise ValidationError("bundled network name", "must be a str",
                              found=f"{name!r} ({type(name).__name__})",
                              fix=f"use one of: {', '.join(bundled_networks())}")
    for suffix in _SUFFIXES:
        candidate = _DIRECTORY / f"{name}{suffix}"
        if name and "/" not in name and "\\" not in name and candidate.is_file():
            return candidate
    available = ", ".join(bundled_networks())
    raise DataNotFoundError(
        f"bundled network {name!r}",
        f"no such network is installed in {_DIRECTORY}",
        fix=f"use one of: {available}",
    )
