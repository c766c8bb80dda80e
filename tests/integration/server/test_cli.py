"""``fota server``: configuration, users, tokens, and ``run`` with its TLS choices."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from secure_fota.devtools.harness import LocalServer, run_fota
from secure_fota.server.db.migrate import head_revision
from secure_fota.server.settings import load_settings
from tests.integration.server.conftest import fake_release, harness, seed_upload


def test_fota_lists_server_and_stays_lazy():
    result = run_fota("--help")
    assert result.returncode == 0
    assert "server" in result.stdout
    code = (
        "import sys, secure_fota.cli.main, secure_fota.author.release, secure_fota.policy.verifier;"
        "import secure_fota.crypto.freshness, secure_fota.formats.manifest;"
        "print(sorted(m for m in sys.modules if m.startswith(('secure_fota.server', 'fastapi', "
        "'sqlalchemy', 'uvicorn'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_config_show_masks_secrets_and_layers_sources(tmp_path: Path):
    config = tmp_path / "server.toml"
    config.write_text(
        "[server]\n"
        'storage = "s3"\n'
        's3_bucket = "from-file"\n'
        "port = 9000\n"
        'database_url = "postgresql://fota:file-password@db.example/fota"\n'
    )
    result = run_fota(
        "server",
        "config",
        "show",
        "--json",
        "--config",
        str(config),
        "--data-dir",
        str(tmp_path / "d"),
        env={"FOTA_S3_SECRET_ACCESS_KEY": "very-secret-value", "FOTA_PORT": "9100"},
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert "very-secret-value" not in result.stdout
    assert "file-password" not in result.stdout
    assert values["s3_secret_access_key"] == "**********"
    assert values["database_url"] == "postgresql://fota:***@db.example/fota"
    assert values["s3_bucket"] == "from-file"
    assert values["port"] == 9100  # environment beats the file
    assert values["data_dir"] == str(tmp_path / "d")  # the option beats both
    text = run_fota("server", "config", "show", "--data-dir", str(tmp_path / "d"))
    assert "device_auth" in text.stdout


def test_bad_configuration_is_one_line(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("max_upload_size = 'big'\nunknown_setting = 1\n")
    result = run_fota("server", "config", "show", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid server configuration")
    assert "unknown_setting" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_fota("server", "config", "show", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 1
    assert "not found" in result.stderr


def test_users_and_tokens(tmp_path: Path, fota_main):
    data = ["--data-dir", str(tmp_path)]

    result = fota_main(
        "server",
        "user",
        "add",
        "alice",
        "--role",
        "admin",
        "--password-stdin",
        *data,
        stdin="a-long-password\n",
    )
    assert result.returncode == 0, result.stderr
    result = fota_main(
        "server",
        "user",
        "add",
        "alice",
        "--role",
        "admin",
        "--password-stdin",
        *data,
        stdin="a-long-password\n",
    )
    assert result.returncode == 1
    assert "already exists" in result.stderr
    result = fota_main(
        "server",
        "user",
        "add",
        "bob",
        "--role",
        "uploader",
        "--password-stdin",
        *data,
        stdin="short\n",
    )
    assert result.returncode == 2
    result = fota_main(
        "server",
        "user",
        "add",
        "../x",
        "--role",
        "uploader",
        "--password-stdin",
        *data,
        stdin="a-long-password\n",
    )
    assert result.returncode == 2
    listing = fota_main("server", "user", "list", *data).stdout
    assert listing.split() == ["alice", "admin"]
    assert "argon2" not in listing

    result = fota_main("server", "token", "create", "ci", "--role", "uploader", *data)
    assert result.returncode == 0
    token = result.stdout.strip()
    assert token.startswith("fota_")
    assert len(token) > 40
    assert "shown only this once" in result.stderr
    result = fota_main("server", "token", "create", "unit", "--role", "device", *data)
    assert result.returncode == 2  # a device token needs --device-type
    result = fota_main(
        "server", "token", "create", "unit", "--role", "device", "--device-type", "s1", *data
    )
    assert result.returncode == 0
    listing = fota_main("server", "token", "list", *data).stdout
    assert token not in listing
    assert "unit\tdevice\ts1 (device)" in listing
    assert fota_main("server", "token", "revoke", "ci", *data).returncode == 0
    assert "ci\tuploader\t-\trevoked" in fota_main("server", "token", "list", *data).stdout
    assert fota_main("server", "user", "remove", "alice", *data).returncode == 0
    assert fota_main("server", "user", "remove", "alice", *data).returncode == 1
    result = fota_main("server", "db", "upgrade", *data)
    assert result.returncode == 0
    assert f"revision {head_revision()}" in result.stdout


def test_run_refuses_plain_http_off_loopback(tmp_path: Path):
    result = run_fota(
        "server",
        "run",
        "--data-dir",
        str(tmp_path),
        "--host",
        "0.0.0.0",  # noqa: S104 -- refused, never bound
        "--insecure-http-for-localhost-only",
    )
    assert result.returncode == 1
    assert "refusing plain HTTP" in result.stderr
    result = run_fota(
        "server", "run", "--data-dir", str(tmp_path), env={"FOTA_TLS_DEV_CERTIFICATE": "false"}
    )
    assert result.returncode == 1
    assert "no TLS certificate configured" in result.stderr
    result = run_fota("server", "run", "--data-dir", str(tmp_path), "--tls-cert", "x.pem")
    assert result.returncode == 2


def _get(url: str, verify: ssl.SSLContext | bool) -> int | None:
    try:
        return httpx.get(url, verify=verify, timeout=5).status_code
    except httpx.TransportError:
        return None


@pytest.mark.slow
def test_run_with_development_certificate_then_p12(tmp_path: Path, tls_dir: Path):
    data = tmp_path / "data"
    quiet = {"FOTA_LOG_LEVEL": "warning"}
    # ready once /healthz answers over TLS, trusting the development CA the server made
    with LocalServer(data, ca_file=data / "tls" / "ca.pem", env=quiet) as server:
        verify = ssl.create_default_context(cafile=str(server.ca_file))
        assert _get(f"https://localhost:{server.port}/readyz", verify) == 200

    key = serialization.load_pem_private_key((tls_dir / "server.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((tls_dir / "server.pem").read_bytes())
    p12 = tmp_path / "server.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"fota", key, cert, None, serialization.BestAvailableEncryption(b"p12-password")
        )
    )
    with LocalServer(
        data,
        ca_file=tls_dir / "ca.pem",
        extra_args=["--tls-p12", str(p12)],
        env={**quiet, "FOTA_TLS_P12_PASSWORD": "p12-password"},
    ) as server:
        verify = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
        assert _get(f"{server.url}/healthz", verify) == 200


def test_credentials_over_plain_http_are_refused(request: pytest.FixtureRequest, tmp_path: Path):
    with harness(request, tmp_path, tls=None) as api:
        manifest, binary = fake_release(1)
        response = seed_upload(
            api.http,
            api.credentials.uploader,
            seq=1,
            device_type="plain",
            manifest=manifest,
            binary=binary,
        )
        assert response.status_code == 403
        assert "TLS" in response.json()["error"]
        # devices in open mode may poll over plain HTTP (artifacts are signed end to end)
        assert (
            api.http.get("/update/newest/manifest", params={"deviceType": "x"}).status_code == 404
        )
    settings = load_settings(None, data_dir=tmp_path / "2", allow_insecure_http=True)
    assert settings.allow_insecure_http
