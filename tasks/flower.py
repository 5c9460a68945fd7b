"""Flower, the Celery dashboard, against the service's broker and behind basic auth.

    python -m tasks.flower        # what `make flower` and compose.yaml's `flower` run

The broker is `REDIS_URL`; when it is empty (a laptop's `make serve`), the embedded Redis
that `make serve` started under `RENDER_STORAGE/redis/` is found by its config file. The
credentials are `FLOWER_BASIC_AUTH` (`user:password` pairs, comma-separated), handed to
Flower in this process rather than on a command line that `ps` would show.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.app import make_celery
from tasks.settings import DEFAULT_TOKEN, Settings, SettingsError, load_settings


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
    argv = ["flower", f"--address={settings.flower_address}", f"--port={settings.flower_port}"]
    if settings.flower_basic_auth:
        argv.append(f"--basic-auth={settings.flower_basic_auth}")
    return argv


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
        settings = broker_settings(load_settings())
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if DEFAULT_TOKEN in settings.flower_basic_auth:
        print(
            "warning: FLOWER_BASIC_AUTH holds the default password: anyone who reaches Flower "
            "can revoke tasks and stop workers; set your own user:password",
            file=sys.stderr,
        )
    print(
        f"Flower on http://{settings.flower_address}:{settings.flower_port} "
        f"(broker {settings.redis_url})",
        file=sys.stderr,
        flush=True,
    )
    return int(make_celery(settings).start(flower_argv(settings)) or 0)


if __name__ == "__main__":
    sys.exit(main())
