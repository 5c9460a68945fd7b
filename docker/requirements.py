"""Print the requirements of pyproject.toml, one a line, for the image's cached layer.

    python requirements.py pyproject.toml [EXTRA ...]

The Dockerfile installs these before it copies the source, so the layer of dependencies is
rebuilt only when pyproject.toml changes, not on every edit of the code. An extra that
pyproject.toml does not declare is an error (a typo must not build an image without it).
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    declared = project.get("optional-dependencies", {})
    out = list(project.get("dependencies", []))
    for extra in extras:
        if extra not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise SystemExit(f"error: pyproject.toml has no extra {extra!r} (it has: {known})")
        out += declared[extra]
    return out


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python requirements.py pyproject.toml [EXTRA ...]")
    # Extras may come as one space- or comma-separated build argument.
    extras = [e for arg in argv[1:] for e in arg.replace(",", " ").split() if e]
    print("\n".join(requirements(Path(argv[0]), extras)))


if __name__ == "__main__":
    main(sys.argv[1:])
