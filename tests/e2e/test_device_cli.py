"""`fota device ...` through the real command line: JSON output and exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

from secure_fota.devtools.harness import run_fota
from tests.e2e.conftest import DEVICE_TYPE, Fleet


def device(*args: str) -> tuple[int, dict[str, object] | None, str]:
    result = run_fota("device", *args)
    output = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result.returncode, output, result.stderr


def test_device_commands(fleet: Fleet, tmp_path: Path) -> None:
    state = tmp_path / "cli-device"
    code, _, err = device(
        "init",
        "--state",
        str(state),
        "--device-type",
        DEVICE_TYPE,
        "--chip",
        "esp32",
        "--keys",
        str(fleet.keys),
        "--server",
        fleet.url,
        "--ca",
        str(fleet.ca),
        "--firmware",
        str(fleet.image("1.0.0")),
        "--seq",
        "1",
    )
    assert code == 0, err
    assert sorted(p.name for p in (state / "keys").iterdir()) == [
        "freshness_pub.pem",
        "manifest_encryption_key.pem",
        "manifest_signing_pub.pem",
        "pre_encryption_key.pem",
        "secure_boot_signing_pub.pem",
    ]  # no author private key reaches the device
    code, status, _ = device("status", "--state", str(state), "--json")
    assert code == 0 and status is not None
    assert (status["seq"], status["version"], status["running_slot"]) == (1, "1.0.0", "factory")

    code, check, _ = device("check", "--state", str(state), "--json")
    assert (code, check and check["result"]) == (0, "up-to-date")

    fleet.publish("1.1.0", 2)
    code, check, _ = device("check", "--state", str(state), "--json")
    assert code == 0 and check is not None
    assert check["result"] == "update-available" and check["reason"] is None
    assert check["claims"]["seq"] == 2  # type: ignore[index]

    code, update, _ = device("update", "--state", str(state), "--json")
    assert code == 0 and update is not None and update["result"] == "updated"
    code, status, _ = device("status", "--state", str(state), "--json")
    assert status is not None and (status["seq"], status["running_slot"]) == (2, "ota_0")

    foreign = fleet.release(fleet.image("1.2.0"), 3, device_type="another-type")
    fleet.upload(foreign)
    code, check, _ = device("update", "--state", str(state), "--json")
    assert code == 3
    assert check is not None and (check["result"], check["reason"]) == (
        "rejected",
        "wrong_device_type",
    )

    code, _, err = device("status", "--state", str(tmp_path / "nothing"))
    assert code == 1 and err.startswith("error: ") and "fota device init" in err
