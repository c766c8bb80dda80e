"""What devices see: freshness statements (docs/formats.md §7), and device authentication
by per-device-type or per-device bearer tokens; tokens revoked take effect everywhere."""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

import pytest

from secure_fota.crypto.freshness import open_statement
from secure_fota.devtools.harness import run_fota
from secure_fota.keys.directory import load_device_keys
from secure_fota.policy.verifier import check_freshness, open_checked
from secure_fota.wire import FRESHNESS_HEADER
from tests.integration.server.conftest import (
    DATABASES,
    Harness,
    RealRelease,
    fake_release,
    harness,
    seed_upload,
    unique_type,
    wait_until,
)


def publish(api: Harness, device_type: str, seq: int) -> tuple[bytes, bytes]:
    manifest, binary = fake_release(seq)
    response = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=seq,
        device_type=device_type,
        manifest=manifest,
        binary=binary,
    )
    assert response.status_code == 200, response.text
    return manifest, binary


def test_freshness_statement_on_200_and_304(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tls_dir: Path,
    key_dir: Path,
    real_release: RealRelease,
):
    keys = load_device_keys(key_dir)
    with harness(
        request, tmp_path, tls=tls_dir, freshness_key_file=key_dir / "freshness_key.pem"
    ) as api:
        manifest = real_release.manifest.read_bytes()
        response = seed_upload(
            api.http,
            api.credentials.uploader,
            seq=real_release.seq,
            device_type=real_release.device_type,
            manifest=manifest,
            binary=real_release.binary.read_bytes(),
        )
        assert response.status_code == 200
        nonce = secrets.token_hex(16)
        before = int(time.time())
        response = api.http.get(
            "/update/newest/manifest",
            params={"deviceType": real_release.device_type, "nonce": nonce},
        )
        assert response.status_code == 200
        token = response.headers[FRESHNESS_HEADER]
        statement = open_statement(token, keys.freshness)
        assert statement.device_type == real_release.device_type
        assert statement.seq == real_release.seq
        assert statement.manifest_sha256 == hashlib.sha256(manifest).hexdigest()
        assert statement.nonce == nonce
        assert before - 1 <= statement.iat <= time.time() + 1
        # the device-side check of the policy layer accepts it
        claims = open_checked(response.content, keys).claims
        check_freshness(
            token,
            response.content,
            claims,
            keys,
            nonce=nonce,
            device_type=real_release.device_type,
        )
        # 304 carries a statement too, bound to the new nonce
        other = secrets.token_hex(32)
        response = api.http.get(
            "/update/newest/manifest",
            params={"deviceType": real_release.device_type, "nonce": other},
            headers={"if-none-match": response.headers["etag"]},
        )
        assert response.status_code == 304
        assert open_statement(response.headers[FRESHNESS_HEADER], keys.freshness).nonce == other
        assert statement.answer == "newest"
        # the versioned newest poll signs the same answer
        response = api.http.get(
            f"/api/v1/device-types/{real_release.device_type}/newest/manifest",
            params={"nonce": nonce},
        )
        assert open_statement(response.headers[FRESHNESS_HEADER], keys.freshness).seq == 7
        # a release by id is no answer to "what is newest": no statement, a nonce is refused
        # (a mirror could pair such a statement with an old manifest, issue 14)
        response = api.http.get(
            f"/api/v1/device-types/{real_release.device_type}/releases/7/manifest",
            params={"nonce": nonce},
        )
        assert response.status_code == 422
        assert response.json()["field"] == "nonce"
        assert FRESHNESS_HEADER not in response.headers
        # "no release" is signed too: answer none, no seq, no digest
        response = api.http.get(
            "/update/newest/manifest", params={"deviceType": "no-such-type", "nonce": nonce}
        )
        assert response.status_code == 404
        none = open_statement(response.headers[FRESHNESS_HEADER], keys.freshness)
        assert (none.answer, none.device_type, none.nonce) == ("none", "no-such-type", nonce)
        assert none.seq is None and none.manifest_sha256 is None
        # without a nonce (seed clients) there is no statement
        response = api.http.get(
            "/update/newest/manifest", params={"deviceType": real_release.device_type}
        )
        assert FRESHNESS_HEADER not in response.headers
        response = api.http.get(
            "/update/newest/binary",
            params={"deviceType": real_release.device_type, "nonce": nonce},
        )
        assert FRESHNESS_HEADER not in response.headers


def test_no_freshness_key_means_no_statement(
    request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path
):
    with harness(request, tmp_path, tls=tls_dir) as api:
        device_type = unique_type()
        publish(api, device_type, 1)
        response = api.http.get(
            "/update/newest/manifest",
            params={"deviceType": device_type, "nonce": secrets.token_hex(16)},
        )
        assert response.status_code == 200
        assert FRESHNESS_HEADER not in response.headers


def test_device_type_tokens(request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path):
    with harness(
        request,
        tmp_path,
        tls=tls_dir,
        device_auth="device-type-token",
        device_tokens={"fleet-a": ("type-a", False), "unit-7": ("type-a", True)},
    ) as api:
        publish(api, "type-a", 1)
        publish(api, "type-b", 1)
        url = "/update/newest/manifest"
        response = api.http.get(url, params={"deviceType": "type-a"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        # uploader credentials are not device credentials
        response = api.http.get(
            url, params={"deviceType": "type-a"}, auth=("uploader", "uploader-password-123")
        )
        assert response.status_code == 401
        response = api.http.get(
            url, params={"deviceType": "type-a"}, headers=api.credentials.uploader
        )
        assert response.status_code == 403
        for name in ("fleet-a", "unit-7"):
            headers = {"authorization": f"Bearer {api.credentials.device_tokens[name]}"}
            assert (
                api.http.get(url, params={"deviceType": "type-a"}, headers=headers).status_code
                == 200
            )
            response = api.http.get(
                "/update/newest/binary", params={"deviceType": "type-a"}, headers=headers
            )
            assert response.status_code == 200
            response = api.http.get(url, params={"deviceType": "type-b"}, headers=headers)
            assert response.status_code == 403
            response = api.http.get(
                "/api/v1/device-types/type-a/releases/1/binary", headers=headers
            )
            assert response.status_code == 200
        response = api.http.get(
            url, params={"deviceType": "type-a"}, headers={"authorization": "Bearer fota_nope"}
        )
        assert response.status_code == 401
        # operations endpoints stay open
        assert api.http.get("/healthz").status_code == 200


@pytest.mark.parametrize("database", DATABASES)
def test_per_device_tokens_and_revocation(
    request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path, database: str
):
    with harness(
        request,
        tmp_path,
        database=database,
        tls=tls_dir,
        device_auth="device-token",
        device_tokens={"fleet-a": ("type-a", False), "unit-7": ("type-a", True)},
    ) as api:
        publish(api, "type-a", 1)
        url, params = "/update/newest/manifest", {"deviceType": "type-a"}
        shared = {"authorization": f"Bearer {api.credentials.device_tokens['fleet-a']}"}
        own = {"authorization": f"Bearer {api.credentials.device_tokens['unit-7']}"}
        assert api.http.get(url, params=params, headers=shared).status_code == 403
        assert api.http.get(url, params=params, headers=own).status_code == 200
        # revoke through the CLI, against the same database, while the server runs
        result = run_fota(
            "server",
            "token",
            "revoke",
            "unit-7",
            "--data-dir",
            str(api.settings.data_dir),
            env={"FOTA_DATABASE_URL": api.settings.effective_database_url()},
        )
        assert result.returncode == 0, result.stderr
        assert wait_until(
            lambda: api.http.get(url, params=params, headers=own).status_code == 401, 2.0
        )
