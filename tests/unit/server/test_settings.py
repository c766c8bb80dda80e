"""Server settings: layering, validation, masking (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from secure_fota.errors import ConfigError
from secure_fota.server.settings import (
    SETTINGS_ENV,
    load_settings,
    settings_from_environment,
)


def test_defaults_work_without_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FOTA_PORT", "FOTA_DATABASE_URL", "FOTA_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.data_dir == Path("fota-data")
    assert settings.effective_database_url().startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url().endswith("fota-data/fota.db")
    assert settings.max_upload_size == 16 * 1024 * 1024
    assert settings.device_auth == "open"
    assert settings.cache_ttl == 0.5


def test_file_env_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('port = 1111\nworkers = 3\ns3_bucket = "b"\n')
    monkeypatch.setenv("FOTA_WORKERS", "5")
    settings = load_settings(config, port=2222, host=None)
    assert settings.port == 2222
    assert settings.workers == 5
    assert settings.s3_bucket == "b"
    assert settings.host == "127.0.0.1"


@pytest.mark.parametrize(
    "values",
    [
        {"cache_ttl": 2},
        {"max_upload_size": 10},
        {"device_auth": "maybe"},
        {"storage": "ftp"},
        {"s3_prefix": "../x"},
        {"nonsense": 1},
    ],
)
def test_invalid_values(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_settings(None, **values)


def test_masking_and_handing_over(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        None,
        s3_secret_access_key="s3cr3t",
        database_url="postgresql://u:pw@h/db",
        tls_p12_password="p12",
    )
    masked = settings.masked()
    assert masked["s3_secret_access_key"] == "**********"
    assert masked["tls_p12_password"] == "**********"
    assert masked["database_url"] == "postgresql://u:***@h/db"
    monkeypatch.setenv("FOTA_PORT", "9")  # the parent's values win over a worker's environment
    again = settings_from_environment({SETTINGS_ENV: settings.to_environment()})
    assert again == settings
    assert again.s3_secret_access_key is not None
    assert again.s3_secret_access_key.get_secret_value() == "s3cr3t"
    with pytest.raises(ConfigError):
        settings_from_environment({SETTINGS_ENV: "[1]"})
