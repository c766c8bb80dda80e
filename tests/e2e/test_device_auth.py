"""Device authentication end to end, in each of the server's device_auth modes: `fota device`
and `fota fleet simulate` send the device-type token or the device token they were given
(`--token-env`), and the server lets exactly the right ones in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from secure_fota.devtools.harness import LocalServer, fota_command, run_fota
from tests.e2e.conftest import DEVICE_TYPE, Fleet, start_server


@pytest.fixture(params=["open", "device-type-token", "device-token"])
def auth_fleet(
    request: pytest.FixtureRequest, tmp_path: Path, keys_and_tls: tuple[Path, Path]
) -> Iterator[tuple[str, Fleet, LocalServer]]:
    keys, tls = keys_and_tls
    server = start_server(tmp_path, keys, tls, extra_env={"FOTA_DEVICE_AUTH": request.param})
    try:
        fleet = Fleet(
            root=tmp_path, keys=keys, ca=tls / "ca.pem", url=server.url, data=server.data_dir
        )
        fleet.publish("1.1.0", 2)
        yield request.param, fleet, server
    finally:
        server.stop()


def _token(fleet: Fleet, name: str, *shared: str) -> str:
    out = fota_command(
        "server", "token", "create", name, "--role", "device", "--device-type", DEVICE_TYPE,
        *shared, "--data-dir", str(fleet.data),
    )  # fmt: skip
    return out.strip().split()[-1]


#: a per-device token is named like the device it belongs to; the server refuses it for any
#: other device id (the fleet simulator's single device with --device-id-prefix unit)
OWN_DEVICE = "unit-00000"


def _init(fleet: Fleet, state: Path, token: str | None, device_id: str | None = None) -> None:
    args = [
        "device", "init", "--state", str(state), "--device-type", DEVICE_TYPE,
        "--keys", str(fleet.keys), "--server", fleet.url, "--ca", str(fleet.ca),
        "--firmware", str(fleet.image("1.0.0")), "--seq", "1",
        *(["--device-id", device_id] if device_id else []),
    ]  # fmt: skip
    env = {}
    if token is not None:
        args += ["--token-env", "DEVICE_TOKEN"]
        env["DEVICE_TOKEN"] = token
    result = run_fota(*args, env=env)
    assert result.returncode == 0, result.stderr


def _check(state: Path, *json_flag: str) -> tuple[int, str, str]:
    result = run_fota("device", "check", "--state", str(state), *json_flag)
    return result.returncode, result.stdout, result.stderr


def _fleet(fleet: Fleet, token: str | None, *, own: bool = False) -> tuple[int, dict[str, object]]:
    out = fleet.root / f"fleet-{token is not None}-{own}.json"
    devices = ["--devices", "1", "--device-id-prefix", "unit"] if own else ["--devices", "20"]
    args = [
        "fleet", "simulate", "--server", fleet.url, "--ca", str(fleet.ca),
        "--device-type", DEVICE_TYPE, *devices, "--duration", "1.5",
        "--poll-interval", "0.5", "--out", str(out),
    ]  # fmt: skip
    env = {}
    if token is not None:
        args += ["--token-env", "FLEET_TOKEN"]
        env["FLEET_TOKEN"] = token
    result = run_fota(*args, env=env)
    return result.returncode, json.loads(out.read_text())


def test_each_mode_lets_in_exactly_the_right_devices(
    auth_fleet: tuple[str, Fleet, LocalServer],
) -> None:
    mode, fleet, _server = auth_fleet
    shared, own = _token(fleet, "fleet", "--shared"), _token(fleet, OWN_DEVICE)
    accepted = {
        "open": [None, shared, own],
        "device-type-token": [shared, own],
        "device-token": [own],
    }[mode]
    refused = {"open": [], "device-type-token": [None], "device-token": [None, shared]}[mode]
    for number, token in enumerate(accepted):
        state = fleet.root / f"ok-{number}"
        _init(fleet, state, token, OWN_DEVICE if token == own else None)
        code, stdout, stderr = _check(state, "--json")
        assert code == 0, stderr + stdout
        assert json.loads(stdout)["result"] == "update-available"
        if token is not None:
            assert (state / "device_token").stat().st_mode & 0o777 == 0o600
        code, summary = _fleet(fleet, token, own=token == own)
        assert code == 0 and summary["errors"] == 0 and summary["manifests"], summary
    for number, token in enumerate(refused):
        state = fleet.root / f"refused-{number}"
        _init(fleet, state, token)
        code, stdout, stderr = _check(state)
        assert code != 0, stdout
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, (stdout, stderr)
        assert ("401" in stderr) if token is None else ("403" in stderr), stderr
        code, summary = _fleet(fleet, token)
        assert code == 1 and summary["errors"] > 0 and summary["manifests"] == 0, summary
    if mode != "open":  # a device's own token does not let another device id in
        state = fleet.root / "impostor"
        _init(fleet, state, own, "unit-99999")
        code, stdout, stderr = _check(state)
        assert code != 0 and "403" in stderr, (stdout, stderr)


def test_an_unset_token_variable_is_one_line() -> None:
    result = run_fota(
        "fleet", "simulate", "--server", "https://127.0.0.1:9", "--device-type", "x",
        "--token-env", "FOTA_NO_SUCH_VARIABLE",
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr
        == "error: --token-env: environment variable FOTA_NO_SUCH_VARIABLE is not set\n"
    )
