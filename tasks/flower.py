"""Flower, the Celery dashboard, against the service's broker and behind basic auth.

    python -m tasks.flower        # what `make flower` and compose.yaml's `flower` run

The broker is `REDIS_URL`; when it is empty (a laptop's `make serve`), the embedded Redis
that `make serve` started under `RENDER_STORAGE/redis/` is found by its config file. The
credentials are `FLOWER_BASIC_AUTH` (`user:password` pairs, comma-separated), handed to
Flower in this process rather than on a command line that `ps` would show; without them (or
with the old default password) Flower does not start.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.app import make_celery
from tasks.settings import Settings, SettingsError, load_settings, require_flower_credentials


def embedded_redis_url(storage: Path) -> str | None:
    """The socket URL of the embedded Redis that `make serve` runs on this storage, if any."""
    config = storage / "redis" / "redis.conf"
    try:
        lines = config.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if key == "unixsocket" and Path(value).is_socket():
            return f"redis+socket://{value}"
    return None


def flower_argv(settings: Settings) -> list[str]:
    return [
        "flower",
        f"--address={settings.flower_address}",
        f"--port={settings.flower_port}",
        f"--basic-auth={settings.flower_basic_auth}",
    ]


def broker_settings(settings: Settings) -> Settings:
    if settings.redis_url:
        return settings
    found = embedded_redis_url(settings.render_storage)
    if found is None:
        raise SettingsError(
            "REDIS_URL is empty and no embedded Redis runs under "
            f"{settings.render_storage / 'redis'}: start `make serve` first, or set REDIS_URL"
        )
    return settings.model_copy(update={"redis_url": found})


def main() -> int:
    try:
        settings = load_settings()
        # Fail closed: Flower can stop workers and revoke or apply tasks.
        require_flower_credentials(settings)
        settings = broker_settings(settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"Flower on http://{settings.flower_address}:{settings.flower_port} "
        f"(broker {settings.redis_url})",
        file=sys.stderr,
        flush=True,
    )
    return int(make_celery(settings).start(flower_argv(settings)) or 0)


if __name__ == "__main__":
    sys.exit(main())
