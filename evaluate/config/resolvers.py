"""OmegaConf resolvers that ragtune's config files may use.

``${package_data:PACKAGE,RELATIVE/PATH}`` is the absolute path of a file or folder shipped inside
an installed package (``rag/corpus/data/...``), so a preset can point at data that ships with the
code wherever the package is installed and whatever the working directory (``${hydra:...}``
interpolations do not resolve under ``compose()``, and a relative path depends on the cwd).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DATA = "package_data"


class PackageDataError(ValueError):
    """A ``${package_data:...}`` interpolation names no installed package or no shipped file."""


def package_data(package: str, relative: str) -> str:
    """Absolute path of ``relative`` inside the installed ``package``; it must exist."""
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise PackageDataError(
            f"${{{PACKAGE_DATA}:{package},{relative}}}: no installed package {package!r}"
        ) from None
    path = Path(str(root.joinpath(*Path(relative).parts)))
    if not path.exists():
        raise PackageDataError(
            f"${{{PACKAGE_DATA}:{package},{relative}}}: {path} does not exist "
            "(is the package installed with its data files?)"
        )
    return str(path)


def register_resolvers() -> None:
    """Register the resolvers once per process (safe to call again)."""
    if not OmegaConf.has_resolver(PACKAGE_DATA):
        OmegaConf.register_new_resolver(PACKAGE_DATA, package_data)
