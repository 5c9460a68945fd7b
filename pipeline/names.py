"""Safe file and directory names: the one check every user-supplied name goes through."""

from __future__ import annotations

import re

# Letters, digits, dot, dash, underscore and space; no leading dot (hidden files) and no
# separators, so a name can never climb out of the directory it is joined to. Matched with
# fullmatch: `$` alone also matches before a trailing newline ("pic.jpg\n").
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. -]{0,254}$")


def check_safe_name(name: str) -> str:
    """Return `name` unchanged if it is a plain file name, else raise ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("must be a non-empty file name")
    if "/" in name or "\\" in name:
        raise ValueError(f"{name!r} must be a plain file name without slashes")
    if name in {".", ".."} or ".." in name:
        raise ValueError(f"{name!r} must not contain '..'")
    if name.startswith("."):
        raise ValueError(f"{name!r} must not be a hidden file")
    if "\x00" in name or not _SAFE_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} may only use letters, digits, '.', '-', '_' and spaces (at most 255)"
        )
    return name
