"""The deployment files as the tests read them (compose.yaml, docker/Dockerfile), and running
the commands they start outside containers. Shared by the deployment and operations tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from tasks.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


def local(argv: list[str]) -> list[str]:
    """A compose command as this venv runs it: the same program and arguments."""
    program, *rest = argv
    if program == "python":
        return [sys.executable, *rest]
    return [sys.executable, "-m", program, *rest]


def with_option(argv: list[str], option: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(option) + 1] = value
    return out


def answers(url: str, **kw: Any) -> bool:
    try:
        return httpx.get(url, timeout=2, **kw).status_code < 500
    except httpx.HTTPError:
        return False
