"""``fota demo``: the whole secure update flow, end to end, in a throwaway workspace.

Keys and a development CA are generated, the update server starts on a free loopback port
(SQLite + local files, TLS), two real app images are built, released and uploaded, a
simulated ESP32 updates from 1.0.0 to 1.1.0 (through an interrupted, resumed download), and
then three attacks are mounted and refused. Every outcome is checked: the demo fails loudly
if anything behaves otherwise than described.

The user's steps are run as the real ``fota`` commands, in the workspace folder, exactly as
printed (copy them into a shell in that folder to repeat them); only the attacker's forgeries
are made in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from secure_fota.author.release import ReleaseRequest, build_release
from secure_fota.author.upload import Credentials, UploadTarget, upload_release
from secure_fota.device.fleet import FleetConfig, FleetReport, simulate
from secure_fota.device.updater import Device
from secure_fota.devtools.harness import LocalServer, fota_argv
from secure_fota.errors import FotaError
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.keys.directory import FRESHNESS_KEY, load_author_keys
from secure_fota.keys.tls import CA_FILE, CERT_FILE, KEY_FILE
from secure_fota.server.fleet import in_stage
from secure_fota.wire import API_V1

__all__ = ["DemoFailed", "run_demo"]

DEVICE_TYPE = "greenhouse-sensor"
UPLOADER = "ci-uploader"
OPERATOR = "fleet-operator"
PASSWORD = "demo-password-not-for-production"  # noqa: S105 -- a throwaway demo account


class DemoFailed(FotaError):
    """A step of the demo did not behave as the story says."""


@dataclass
class _Workspace:
    root: Path
    #: the fleet operator's admin bearer token (``fota server token create``), once made
    operator_token: str = ""

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def ca(self) -> Path:
        return self.tls / CA_FILE

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def server(self) -> Path:
        return self.root / "server-data"

    @property
    def device(self) -> Path:
        return self.root / "device"


@contextlib.contextmanager
def _server(ws: _Workspace, story: _Story) -> Iterator[str]:
    server = LocalServer(
        ws.server,
        tls_cert=ws.tls / CERT_FILE,
        tls_key=ws.tls / KEY_FILE,
        ca_file=ws.ca,
        extra_args=["--freshness-key", str(ws.keys / FRESHNESS_KEY)],
        log_file=ws.root / "server.log",
    )
    story.command(
        f"fota server run --data-dir server-data --port {server.port} "
        "--tls-cert tls/server.pem --tls-key tls/server.key "
        "--freshness-key keys/freshness_key.pem &"
    )
    story.command(
        f"fota server user add {UPLOADER} --role uploader --password-stdin "
        '--data-dir server-data <<< "$FOTA_UPLOAD_PASSWORD"'
    )
    server.add_user(UPLOADER, PASSWORD)
    server.add_user(OPERATOR, PASSWORD, role="admin")
    with server:
        yield server.url


def _fota(ws: _Workspace, story: _Story, *args: str) -> str:
    """Show ``fota ARGS`` and run it in the workspace, as printed; its output, or DemoFailed."""
    story.command(shlex.join(["fota", *args]))
    env = {**os.environ, "FOTA_UPLOAD_PASSWORD": PASSWORD, "FOTA_TOKEN": ws.operator_token}
    done = subprocess.run(
        fota_argv(*args),
        cwd=ws.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise DemoFailed(f"`fota {shlex.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


class _Story:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.number = 0

    def step(self, title: str) -> None:
        self.number += 1
        self.console.print(f"\n[bold cyan]{self.number}. {title}[/bold cyan]")

    def command(self, command: str) -> None:
        # one line however wide: a command is copied, not read
        self.console.print(Text(f"   $ {command}", style="dim"), soft_wrap=True)

    def say(self, text: str) -> None:
        self.console.print(f"   {text}")

    def ok(self, text: str) -> None:
        self.console.print(f"   [green]✔[/green] {text}")

    def blocked(self, text: str) -> None:
        self.console.print(f"   [red]✘ refused[/red] {text}")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailed(message)


def run_demo(
    workspace: Path | None = None, console: Console | None = None, *, keep: bool = False
) -> None:
    """Run the demo; raise :class:`DemoFailed` if any outcome differs from the story. A
    temporary workspace is removed afterwards unless ``keep``; a given ``workspace`` is kept."""
    out = console or Console(highlight=False)
    story = _Story(out)
    started = time.monotonic()
    root = (workspace or Path(tempfile.mkdtemp(prefix="fota-demo-"))).resolve()
    ws = _Workspace(root)
    ws.releases.mkdir(parents=True, exist_ok=True)
    out.print(
        Panel.fit(
            "secure-fota demo: sign, encrypt, serve and install firmware on a simulated ESP32, "
            "then watch three attacks fail and a staged rollout stop itself.\n"
            f"Workspace: {root} (the commands run in it)",
            border_style="cyan",
        )
    )
    try:
        _run(ws, story)
    finally:
        if workspace is None and not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            out.print(f"workspace kept in {root} (FOTA_UPLOAD_PASSWORD={PASSWORD})", soft_wrap=True)
    out.print(
        Panel.fit(
            f"[green]demo complete in {time.monotonic() - started:.1f} s[/green]: "
            "1 update installed,\n3 attacks refused, and none of them changed the device;\n"
            "a rollout with failing devices aborted itself in stage 1, a fixed one reached 100 %.",
            border_style="green",
        )
    )


def _release(
    ws: _Workspace, image: Path, seq: int, device_type: str = DEVICE_TYPE, name: str = "sensor-app"
) -> tuple[Path, Path]:
    files = build_release(
        ReleaseRequest(
            firmware=image,
            seq=seq,
            device_type=device_type,
            fw_name=name,
            out_dir=ws.releases,
            expires_in=30 * 86400,
        ),
        load_author_keys(ws.keys, secure_boot_version="v1"),
        now=int(time.time()),
    )
    return files.manifest, files.binary


def _upload(target: UploadTarget, ws: _Workspace, seq: int, name: str = "sensor-app") -> None:
    upload_release(target, out_dir=ws.releases, fw_name=name, seq=seq, device_type=DEVICE_TYPE)


def _publish(
    ws: _Workspace, story: _Story, url: str, image: str, seq: int, *, hold: bool = False
) -> None:
    _fota(
        ws, story,
        "author", "publish", image, "--seq", str(seq), "--device-type", DEVICE_TYPE,
        "--name", "sensor-app", "--keys", "keys", "--out", "releases", "--expires", "30d",
        "--server", url, "--ca", "tls/ca.pem", "--user", UPLOADER,
        *(["--new-device-type"] if seq == 1 else []), *(["--hold"] if hold else []),
    )  # fmt: skip


def _rollout_create(ws: _Workspace, story: _Story, url: str, seq: int) -> dict[str, Any]:
    args = [
        "rollout", "create", f"{DEVICE_TYPE}/{seq}", "--stages", "20,100",
        "--max-failure-rate", "10%", "--min-devices", "5", "--stage-wait", "1s",
        "--server", url, "--ca", "tls/ca.pem", "--json",
    ]  # fmt: skip
    created = json.loads(_fota(ws, story, *args))
    _expect(isinstance(created, dict) and "id" in created, f"unexpected answer {created}")
    return cast(dict[str, Any], created)


def _run(ws: _Workspace, story: _Story) -> None:
    story.step("Generate the key set and a development TLS certificate")
    _fota(ws, story, "keys", "generate", "--out", "keys")
    _fota(ws, story, "keys", "tls", "--out", "tls", "--host", "127.0.0.1", "--host", "localhost")
    story.ok(
        "secure boot (ECDSA P-256), manifest signing (RSA-3072), manifest encryption "
        "(RSA-4096), image encryption (RSA-3072), freshness (P-256), flash encryption key"
    )

    story.step("Start the update server (SQLite + local files, TLS, freshness statements)")
    with _server(ws, story) as url:
        story.ok(f"listening on {url}")
        target = UploadTarget(url, Credentials(user=UPLOADER, password=PASSWORD), ca_file=ws.ca)

        story.step("Build two real ESP32 app images: 1.0.0 and 1.1.0")
        v1, v2 = ws.root / "app-1.0.0.bin", ws.root / "app-1.1.0.bin"
        v1.write_bytes(
            build_app_image(
                ImageSpec(version="1.0.0", project_name="greenhouse", size=192 * 1024, seed=1)
            )
        )
        v2.write_bytes(
            build_app_image(
                ImageSpec(version="1.1.0", project_name="greenhouse", size=200 * 1024, seed=2)
            )
        )
        story.ok("valid headers, checksums, appended SHA-256 and esp_app_desc_t")

        story.step("Release and upload 1.0.0 as release greenhouse-sensor/1")
        _publish(ws, story, url, "app-1.0.0.bin", 1)
        story.ok("signed for secure boot, pre-encrypted, manifest signed then encrypted, uploaded")

        story.step("Provision a device running 1.0.0")
        _fota(
            ws, story,
            "device", "init", "--state", "device", "--device-type", DEVICE_TYPE,
            "--chip", "esp32", "--keys", "keys", "--server", url, "--ca", "tls/ca.pem",
            "--firmware", "app-1.0.0.bin", "--seq", "1",
        )  # fmt: skip
        device = Device(ws.device)
        story.ok(
            f"device holds only its keys; runs {device.status()['version']} from the factory slot"
        )

        story.step("Release and upload 1.1.0 as release greenhouse-sensor/2")
        _publish(ws, story, url, "app-1.1.0.bin", 2)
        check = device.check_for_update()
        _expect(check.result == "update-available", f"expected an update, got {check.to_dict()}")
        story.ok(
            f"device check: update available, release "
            f"{DEVICE_TYPE}/{check.claims.seq if check.claims else '?'} "
            "(manifest decrypted, signature, freshness nonce and policy verified)"
        )

        story.step("The device updates; the link drops half way and the download resumes")
        try:
            _fota(ws, story, "device", "update", "--state", "device", "--interrupt-after", "102400")
        except DemoFailed as exc:
            story.say(f"[yellow]link lost[/yellow]: {str(exc).splitlines()[-1]}")
        _fota(ws, story, "device", "update", "--state", "device")
        device = Device(ws.device)
        status = device.status()
        _expect(status["version"] == "1.1.0" and status["seq"] == 2, f"unexpected state {status}")
        story.ok(
            f"resumed with an HTTP Range request, verified enc_sha256, decrypted, checked "
            f"image_sha256 and the secure boot signature, wrote {status['running_slot']}, "
            "rebooted, self-test passed, confirmed"
        )
        _attacks(ws, story, target, device)
        _rollouts(ws, story, url)


def _attacks(ws: _Workspace, story: _Story, target: UploadTarget, device: Device) -> None:
    before = device.status()

    story.step("Attack 1: an uploader credential is stolen; a tampered binary is uploaded")
    v3 = ws.root / "app-1.2.0.bin"
    v3.write_bytes(
        build_app_image(
            ImageSpec(version="1.2.0", project_name="greenhouse", size=200 * 1024, seed=3)
        )
    )
    _, binary = _release(ws, v3, 3)
    data = bytearray(binary.read_bytes())
    data[-100] ^= 0x01
    binary.write_bytes(bytes(data))
    _upload(target, ws, 3)
    _attack(story, device, before, "enc_digest_mismatch")

    story.step("Attack 2: the old release 1.0.0 is replayed under a new server id")
    for suffix in (".manifest", ".bin"):
        shutil.copyfile(
            ws.releases / f"sensor-app-1{suffix}", ws.releases / f"sensor-app-4{suffix}"
        )
    _upload(target, ws, 4)
    _attack(story, device, before, "rollback")

    story.step("Attack 3: a genuine release for another device type is pushed to this fleet")
    other = ws.root / "other"
    other.mkdir()
    files = build_release(
        ReleaseRequest(
            firmware=v3,
            seq=5,
            device_type="irrigation-pump",
            fw_name="sensor-app",
            out_dir=other,
        ),
        load_author_keys(ws.keys, secure_boot_version="v1"),
        now=int(time.time()),
    )
    for path in (files.manifest, files.binary):
        shutil.copyfile(path, ws.releases / path.name)
    _upload(target, ws, 5)
    _attack(story, device, before, "wrong_device_type")


def _attack(story: _Story, device: Device, before: dict[str, object], reason: str) -> None:
    result = device.perform_update()
    _expect(
        result.result == "rejected" and result.reason is not None and result.reason.value == reason,
        f"expected rejection {reason}, got {result.to_dict()}",
    )
    after = device.status()
    _expect(after == before, f"the device changed: {before} -> {after}")
    story.blocked(f"reason [bold]{reason}[/bold]: {result.detail}")
    story.ok(
        f"device unchanged: release {after['seq']} ({after['version']}) "
        f"on {after['running_slot']}, "
        f"eFuse secure_version {after['secure_version']}"
    )


def _operator(ws: _Workspace, url: str, method: str, path: str, **options: Any) -> Any:
    verify = ssl.create_default_context(cafile=str(ws.ca))
    with httpx.Client(verify=verify, auth=(OPERATOR, PASSWORD), timeout=30) as http:
        response = http.request(method, f"{url}{API_V1}{path}", **options)
    _expect(response.is_success, f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


def _fleet_until(
    url: str, ws: _Workspace, prefix: str, done: Any, *, fail_self_test: float = 0.0
) -> FleetReport:
    """40 simulated devices on release 2 until ``done()`` (at most 40 s)."""
    stop = threading.Event()
    config = FleetConfig(
        server=url,
        device_type=DEVICE_TYPE,
        devices=40,
        duration=40,
        poll_interval=0.3,
        ca_file=ws.ca,
        keys_dir=ws.keys,
        installed_seq=2,
        device_id_prefix=prefix,
        reports=True,
        fail_self_test=fail_self_test,
    )
    result: list[FleetReport] = []
    runner = threading.Thread(
        target=lambda: result.append(asyncio.run(simulate(config, stop=stop)))
    )
    runner.start()
    deadline = time.monotonic() + 40
    try:
        while time.monotonic() < deadline and not done():
            time.sleep(0.3)
    finally:
        stop.set()
        runner.join()
    return result[0]


def _progress(state: dict[str, Any]) -> str:
    return "; ".join(
        f"stage {s['stage']} ({s['percent']}%): {s['confirmed']} confirmed, "
        f"{s['failed'] + s['silent']} failed"
        for s in state["progress"]
        if s["offered"] or s["stage"] <= state["stage"]
    )


def _rollouts(ws: _Workspace, story: _Story, url: str) -> None:
    story.step("The fleet operator gets an admin token and yanks the three bad uploads")
    ws.operator_token = _fota(
        ws, story, "server", "token", "create", OPERATOR, "--role", "admin",
        "--data-dir", "server-data",
    ).strip()  # fmt: skip
    story.say("(the demo keeps it in FOTA_TOKEN, which the next commands read)")
    for seq in (3, 4, 5):
        _fota(ws, story, "release", "yank", f"{DEVICE_TYPE}/{seq}", "--yes",
              "--server", url, "--ca", "tls/ca.pem")  # fmt: skip
    story.ok("release 2 (1.1.0) is the newest again")

    story.step(
        "1.2.0 is held and rolled out in stages to a fleet of 40 devices; 25 % of them fail "
        "their self-test"
    )
    v4 = ws.root / "app-1.2.0-rc.bin"
    v4.write_bytes(
        build_app_image(
            ImageSpec(version="1.2.0", project_name="greenhouse", size=200 * 1024, seed=4)
        )
    )
    _publish(ws, story, url, v4.name, 6, hold=True)
    bad = _rollout_create(ws, story, url, 6)
    report = _fleet_until(
        url,
        ws,
        "bad",
        lambda: _operator(ws, url, "GET", f"/rollouts/{bad['id']}")["state"] != "running",
        fail_self_test=0.25,
    )
    state = _operator(ws, url, "GET", f"/rollouts/{bad['id']}")
    _expect(state["state"] == "aborted" and state["stage"] == 1, f"expected an abort: {state}")
    updated = [i for i, seq in report.final_seqs.items() if seq != 2]
    _expect(
        all(in_stage(f"bad-{i:05d}", 20) for i in updated),
        "a device outside stage 1 was updated",
    )
    story.blocked(f"rollout {bad['id']} aborted itself: {state['note']}")
    untouched = sum(1 for i in report.final_seqs if not in_stage(f"bad-{i:05d}", 20))
    story.ok(f"{_progress(state)}; the {untouched} devices outside stage 1 were never offered "
             "release 6 and stay on 1.1.0")  # fmt: skip

    story.step("A fixed 1.2.1 (#7) is rolled out the same way and reaches the whole fleet")
    v5 = ws.root / "app-1.2.1.bin"
    v5.write_bytes(
        build_app_image(
            ImageSpec(version="1.2.1", project_name="greenhouse", size=200 * 1024, seed=5)
        )
    )
    _publish(ws, story, url, v5.name, 7, hold=True)
    good = _rollout_create(ws, story, url, 7)
    report = _fleet_until(
        url,
        ws,
        "good",
        lambda: _operator(ws, url, "GET", f"/rollouts/{good['id']}")["state"] == "completed",
    )
    state = _operator(ws, url, "GET", f"/rollouts/{good['id']}")
    _expect(state["state"] == "completed", f"expected the rollout to complete: {state}")
    story.ok(f"rollout {good['id']} completed: {_progress(state)}")
    story.ok(
        f"{sum(1 for seq in report.final_seqs.values() if seq == 7)} of 40 devices confirmed "
        "1.2.1 (each report signed by the device's own key; success counts only on confirmed)"
    )
