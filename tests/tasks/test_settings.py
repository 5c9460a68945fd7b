"""Settings: the seed's defaults, derived DB_URL, and start-up errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.settings import (
    Settings,
    SettingsError,
    load_settings,
    require_auth_token,
    require_flower_credentials,
)


def test_seed_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RENDER_STORAGE", "DB_URL", "AUTH_TOKEN", "DEFAULT_FPS", "DEFAULT_PRESET"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.render_storage == Path("/data")
    assert s.db_url == "sqlite:////data/db.sqlite3"
    assert s.auth_token == "change-me"
    assert s.origins == ["http://localhost:5173"]
    opts = s.default_options()
    assert (opts.fps, opts.min_shot, opts.max_shot, opts.xfade, opts.crf, opts.preset) == (
        30,
        2.5,
        8.0,
        0.5,
        18,
        "medium",
    )


def test_db_url_follows_render_storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DB_URL", raising=False)
    monkeypatch.setenv("RENDER_STORAGE", str(tmp_path))
    assert load_settings().db_url == f"sqlite:///{tmp_path}/db.sqlite3"
    monkeypatch.setenv("DB_URL", "postgresql://localhost/test")
    assert load_settings().db_url == "postgresql://localhost/test"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("DEFAULT_FPS", "120"),
        ("DEFAULT_CRF", "abc"),
        ("DEFAULT_PRESET", "turbo"),
        ("DEFAULT_XFADE", "3"),
        ("DEFAULT_XFADE", "-1"),
        ("DEFAULT_RESOLUTION", "1921x1080"),
        ("MAX_UPLOAD_MB", "0"),
        ("EVENTS_TOKEN_TTL", "901"),
        ("EVENTS_TOKEN_TTL", "3600"),
        ("MAX_JSON_MB", "0"),
        ("PROJECT_MAX_MB", "-1"),
        # Pillow will not read the header of a bigger picture, so the cap could not be told.
        ("MAX_IMAGE_PIXELS", "178956971"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=f"invalid settings: {var}: "):
        load_settings()


def test_the_events_token_lives_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTS_TOKEN_TTL", raising=False)
    assert load_settings().events_token_ttl == 300
    monkeypatch.setenv("EVENTS_TOKEN_TTL", "900")  # the cap itself is allowed
    assert load_settings().events_token_ttl == 900


def test_inconsistent_defaults_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_MIN_SHOT", "9")
    monkeypatch.setenv("DEFAULT_MAX_SHOT", "3")
    with pytest.raises(SettingsError, match="DEFAULT_MIN_SHOT"):
        load_settings()


def test_the_default_token_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTH_TOKEN", raising=False)
    with pytest.raises(SettingsError, match="AUTH_TOKEN is the default 'change-me'"):
        require_auth_token(load_settings())
    monkeypatch.setenv("AUTH_TOKEN", "a-long-secret,change-me")  # not even beside another
    with pytest.raises(SettingsError, match="AUTH_TOKEN"):
        require_auth_token(load_settings())
    monkeypatch.setenv("AUTH_TOKEN", "")
    with pytest.raises(SettingsError, match="AUTH_TOKEN must hold at least one token"):
        load_settings()
    monkeypatch.setenv("AUTH_TOKEN", "a-long-secret")
    require_auth_token(load_settings())


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "FLOWER_BASIC_AUTH is not set"),
        ("admin:", "FLOWER_BASIC_AUTH is missing a user or a password"),
        (":secret", "FLOWER_BASIC_AUTH is missing a user or a password"),
        ("ops:s3cret,admin:change-me", "FLOWER_BASIC_AUTH is the default password"),
    ],
)
def test_flower_needs_its_own_credentials(value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        require_flower_credentials(Settings(flower_basic_auth=value))
    require_flower_credentials(Settings(flower_basic_auth="ops:s3cret"))


def test_user_options_override_service_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_CRF", "23")
    s = load_settings()
    assert s.render_options(None).crf == 23
    assert s.render_options({"crf": 30, "fps": 24}).fps == 24
