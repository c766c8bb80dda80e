"""Every mistake a user can make with ``fota`` is one line: ``error: ...`` with the next step,
the right exit status, nothing else on standard error and never a traceback.

Each case runs the real ``fota`` in a child process (the way a user meets it) against real
parts: PostgreSQL and MariaDB on 127.0.0.1, moto's S3 server, real key and certificate files.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secure_fota.keys.generate import generate_key_set
from secure_fota.keys.tls import generate_tls
from secure_fota.server.preflight import check_tls_pair
from tests.conftest import shared_fixture
from tests.integration.server.conftest import MotoServer, moto_server  # noqa: F401 -- fixture

FOTA = [sys.executable, "-m", "secure_fota.cli.main"]
PG_DOWN = "postgresql://fota@127.0.0.1:1/fota"
PG_NO_DB = "postgresql://postgres@127.0.0.1:5432/fota_no_such_database"
PG_NO_ROLE = "postgresql://fota_no_such_role@127.0.0.1:5432/postgres"
MY_DOWN = "mysql://root@127.0.0.1:1/fota"
MY_NO_DB = "mysql://root@127.0.0.1:3306/fota_no_such_database"
MY_DENIED = "mysql://fota_nobody:wrong@127.0.0.1:3306/fota"
PASSWORD = "a-password-of-length\n"


@dataclass
class Case:
    args: list[str]
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)
    stdin: str = ""


def _db_cases() -> dict[str, Case]:
    urls = {
        "pg-unreachable": (PG_DOWN, "Connect call failed"),
        "pg-no-database": (PG_NO_DB, 'database "fota_no_such_database" does not exist'),
        "pg-no-role": (PG_NO_ROLE, 'role "fota_no_such_role" does not exist'),
        "mariadb-unreachable": (MY_DOWN, "Can't connect to MySQL server"),
        "mariadb-no-database": (MY_NO_DB, "Unknown database 'fota_no_such_database'"),
        "mariadb-access-denied": (MY_DENIED, "Access denied for user 'fota_nobody'"),
        "unsupported-url": ("oracle://x/y", "unsupported database 'oracle'"),
    }
    commands = {
        "db-upgrade": ["server", "db", "upgrade"],
        "user-add": ["server", "user", "add", "alice", "--role", "uploader", "--password-stdin"],
        "run": ["server", "run", "--port", "0", "--insecure-http-for-localhost-only"],
    }
    return {
        f"{command}-{name}": Case(
            [*args, "--data-dir", "{tmp}/data"],
            1,
            says,
            env={"FOTA_DATABASE_URL": url, "FOTA_DB_CONNECT_TIMEOUT": "3"},
            stdin=PASSWORD,
        )
        for command, args in commands.items()
        for name, (url, says) in urls.items()
    }


RUN = ["server", "run", "--data-dir", "{tmp}/data", "--port", "0"]
RELEASE = [
    "author", "release", "{app}", "--seq", "7", "--device-type", "sensor", "--name", "app",
    "--keys", "{keys}", "--out", "{tmp}/dist",
]  # fmt: skip
INIT = [
    "device", "init", "--state", "{tmp}/dev", "--device-type", "sensor", "--keys", "{keys}",
    "--server", "https://127.0.0.1:9", "--firmware", "{app}", "--seq", "1",
]  # fmt: skip
UPLOAD = [
    "author", "upload", "{tmp}", "--seq", "7", "--device-type", "sensor", "--name", "app",
    "--server", "https://127.0.0.1:9", "--token-env", "FOTA_TEST_TOKEN",
]  # fmt: skip
FLEET = ["fleet", "simulate", "--server", "https://127.0.0.1:9", "--device-type", "sensor"]

CASES: dict[str, Case] = {
    **_db_cases(),
    # TLS files of `fota server run`
    "tls-key-of-another-cert": Case(
        [*RUN, "--tls-cert", "{tls}/server.pem", "--tls-key", "{tls2}/server.key"],
        1,
        "does not belong to the certificate",
    ),
    "tls-cert-is-a-key": Case(
        [*RUN, "--tls-cert", "{tls}/server.key", "--tls-key", "{tls}/server.key"],
        1,
        "holds no PEM certificate",
    ),
    "tls-key-is-a-cert": Case(
        [*RUN, "--tls-cert", "{tls}/server.pem", "--tls-key", "{tls}/server.pem"],
        1,
        "not a PEM private key",
    ),
    "tls-cert-missing": Case(
        [*RUN, "--tls-cert", "{tmp}/nope.pem", "--tls-key", "{tls}/server.key"],
        1,
        "does not exist",
    ),
    "tls-cert-is-a-directory": Case(
        [*RUN, "--tls-cert", "{tls}", "--tls-key", "{tls}/server.key"], 2, "is a directory"
    ),
    "tls-cert-without-key": Case([*RUN, "--tls-cert", "{tls}/server.pem"], 2, "go together"),
    "tls-p12-not-pkcs12": Case([*RUN, "--tls-p12", "{tls}/server.pem"], 1, "PKCS#12"),
    "freshness-key-missing": Case([*RUN, "--freshness-key", "{tmp}/nope.pem"], 1, "freshness key"),
    "freshness-key-wrong-kind": Case(
        [*RUN, "--freshness-key", "{keys}/manifest_signing_key.pem"], 1, "freshness key"
    ),
    "server-config-missing": Case(
        ["server", "config", "show", "--config", "{tmp}/nope.toml"], 1, "nope.toml"
    ),
    "server-config-not-toml": Case(
        ["server", "config", "show", "--config", "{tls}/server.pem"], 1, "server.pem"
    ),
    "server-setting-invalid": Case(
        ["server", "config", "show"], 1, "port", env={"FOTA_PORT": "eighty"}
    ),
    # --ca that is not a certificate
    "ca-not-a-cert-device-init": Case(
        [*INIT, "--ca", "{keys}/manifest_signing_pub.pem"], 2, "--ca: "
    ),
    "ca-not-a-cert-fleet": Case([*FLEET, "--ca", "{keys}/freshness_pub.pem"], 2, "--ca: "),
    "ca-not-a-cert-upload": Case(
        [*UPLOAD[:2], "{dist}", *UPLOAD[3:], "--ca", "{tls}/server.key"],
        2,
        "--ca: ",
        env={"FOTA_TEST_TOKEN": "t"},
    ),
    # releases
    "release-seq-zero": Case([*RELEASE[:4], "0", *RELEASE[5:]], 2, "--seq: must be positive"),
    "release-firmware-missing": Case([*RELEASE[:2], "{tmp}/nope.bin", *RELEASE[3:]], 1, "nope.bin"),
    "release-keys-missing": Case([*RELEASE[:-3], "{tmp}/nokeys", *RELEASE[-2:]], 1, "nokeys"),
    "release-not-an-image": Case(
        [*RELEASE[:2], "{keys}/manifest_signing_pub.pem", *RELEASE[3:]], 1, "app image"
    ),
    "release-bad-expiry": Case([*RELEASE, "--expires", "soon"], 2, "duration"),
    "release-out-is-a-file": Case([*RELEASE[:-1], "{app}"], 2, "is a file"),
    "upload-token-env-unset": Case(UPLOAD, 2, "FOTA_TEST_TOKEN is not set"),
    "upload-server-down": Case(
        [*UPLOAD[:2], "{dist}", *UPLOAD[3:], "--ca", "{tls}/ca.pem"],
        1,
        "cannot reach the update server",
        env={"FOTA_TEST_TOKEN": "t"},
    ),
    "verify-wrong-keys": Case(
        ["author", "verify", "{dist}/app-7.manifest", "--keys", "{tls}"], 1, "tls"
    ),
    # devices
    "device-init-wrong-chip": Case(
        [*INIT[:-4], "--chip", "esp32c3", *INIT[-4:]], 2, "image is for esp32"
    ),
    "device-check-no-device": Case(["device", "check", "--state", "{tmp}/nodevice"], 1, "nodevice"),
    "device-check-server-down": Case(
        ["device", "check", "--state", "{device}"], 1, "cannot reach the update server"
    ),
    # usage mistakes
    "unknown-option": Case(["author", "release", "--colour"], 2, "No such option '--colour'"),
    "missing-option": Case(["keys", "tls", "--out", "{tmp}/t"], 2, "Missing option '--host'"),
    "bad-choice": Case(
        ["keys", "generate", "--out", "{tmp}/k", "--secure-boot", "v3"], 2, "'v3' is not one of"
    ),
    "unknown-command": Case(["serve"], 2, "No such command 'serve'"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("mistakes")
    keys, tls, tls2 = root / "keys", root / "tls", root / "tls2"
    generate_key_set(keys)
    generate_tls(tls, ["127.0.0.1"])
    generate_tls(tls2, ["127.0.0.1"])
    app = root / "app.bin"
    app.write_bytes(shared_fixture("firmware", "esp32_hello_world_idf5.2.2.bin").read_bytes())
    values = {"keys": str(keys), "tls": str(tls), "tls2": str(tls2), "app": str(app)}
    dist = root / "dist"
    release = [a.format(tmp=str(root), **values) for a in RELEASE]
    device = root / "device"
    init = [a.format(tmp=str(root), **values) for a in INIT]
    init[init.index("--state") + 1] = str(device)
    for args in (release, [*init, "--ca", str(tls / "ca.pem")]):
        done = subprocess.run([*FOTA, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    return {**values, "dist": str(dist), "device": str(device)}


def run_fota(case: Case, files: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    args = [a.format(tmp=str(tmp), **files) for a in case.args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTA_")}
    env.update(case.env)
    return subprocess.run(
        [*FOTA, *args],
        input=case.stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_line_per_mistake(name: str, files: dict[str, str], tmp_path: Path) -> None:
    case = CASES[name]
    done = run_fota(case, files, tmp_path)
    errors = [line for line in done.stderr.splitlines() if not line.startswith(("warning", "WARN"))]
    assert "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: "), done.stderr
    assert case.says in errors[0], done.stderr
    assert done.returncode == case.code, done.stderr


def test_missing_s3_bucket_is_one_line(
    moto_server: MotoServer,  # noqa: F811 -- the fixture imported above
    files: dict[str, str],
    tmp_path: Path,
) -> None:
    case = Case(
        [*RUN, "--insecure-http-for-localhost-only"],
        1,
        "S3 bucket 'fota-no-such-bucket' does not exist",
        env={
            "FOTA_STORAGE": "s3",
            "FOTA_S3_ENDPOINT_URL": moto_server.endpoint,
            "FOTA_S3_BUCKET": "fota-no-such-bucket",
            "FOTA_S3_ACCESS_KEY_ID": "testing",
            "FOTA_S3_SECRET_ACCESS_KEY": "testing",
        },
    )
    done = run_fota(case, files, tmp_path)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert "Traceback" not in done.stderr and len(errors) == 1, done.stderr
    assert case.says in errors[0] and "create it" in errors[0]
    assert done.returncode == 1


def test_server_without_freshness_key_warns_loudly(files: dict[str, str], tmp_path: Path) -> None:
    # the database is unreachable, so the server stops right after its start-up warnings
    case = Case(
        [*RUN, "--insecure-http-for-localhost-only"], 1, "", env={"FOTA_DATABASE_URL": PG_DOWN}
    )
    done = run_fota(case, files, tmp_path)
    assert "WARNING: no freshness key" in done.stderr
    assert "--freshness-key" in done.stderr


def _certificate(key_file: Path, not_before: datetime.datetime, days: int) -> bytes:
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("offset_days", "days", "says"),
    [(-400, 397, "EXPIRED"), (30, 397, "not valid before"), (-390, 397, "renew it soon")],
)
def test_certificate_dates_warn_at_start(
    files: dict[str, str], tmp_path: Path, offset_days: int, days: int, says: str
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    key = Path(files["tls"]) / "server.key"
    cert = tmp_path / "cert.pem"
    cert.write_bytes(_certificate(key, now + datetime.timedelta(days=offset_days), days))
    warnings = check_tls_pair(cert, key, None, now=now)
    assert len(warnings) == 1 and says in warnings[0]
    assert check_tls_pair(Path(files["tls"]) / "server.pem", key, None, now=now) == []
    # and the real server says it before it stops (here: on the unreachable database)
    case = Case(
        [*RUN, "--tls-cert", str(cert), "--tls-key", str(key)],
        1,
        "",
        env={"FOTA_DATABASE_URL": PG_DOWN},
    )
    done = run_fota(case, files, tmp_path)
    assert says in done.stderr and "Traceback" not in done.stderr
