"""Broker URLs: Celery spells a unix socket `redis+socket://`, redis-py `unix://`."""

from __future__ import annotations

import redis


def redis_client_url(url: str) -> str:
    if url.startswith("redis+socket://"):
        return "unix://" + url.removeprefix("redis+socket://")
    return url


def ping(url: str, timeout: float = 2.0) -> None:
    """Raise if the broker does not answer within `timeout` seconds."""
    if not url:
        raise ConnectionError("REDIS_URL is not set")
    client = redis.Redis.from_url(
        redis_client_url(url), socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()
