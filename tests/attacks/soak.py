"""A bounded soak test: simulated devices poll a real `fota server run` (TLS, SQLite, freshness
statements) while releases are uploaded, yanked and re-uploaded; the server's memory is
sampled throughout.

    python -m tests.attacks.soak            # short: 200 devices, 30 s (what `make test` runs)
    python -m tests.attacks.soak --long     # 2,000 devices, 5 minutes (docs/SECURITY.md)
    python -m tests.attacks.soak --devices 500 --duration 60 --poll-interval 5
    python -m tests.attacks.soak --http-server uvicorn   # default: fota server run's default

Every device verifies each manifest and freshness statement with the fleet's keys and
downloads every new release by id (``fota fleet simulate``). Passes when there are no
errors and no rejections, every device ends on the newest release, and the server's
resident memory at the end is within a bound of its level after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secure_fota.author.release import ReleaseFiles, ReleaseRequest, build_release
from secure_fota.device.fleet import FleetConfig, simulate
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.keys.directory import load_author_keys
from secure_fota.keys.generate import generate_key_set
from tests.attacks.infra import (
    ADMIN,
    ADMIN_PASSWORD,
    UPLOADER,
    UPLOADER_PASSWORD,
    Authority,
    ServerProcess,
)
from tests.http_servers import HTTP_SERVERS, server_env

DEVICE_TYPE = "soak-sensor"
#: resident memory may grow this much after warm-up (allocator noise, caches of a few MB)
RSS_GROWTH_LIMIT_KIB = 48 * 1024
#: poll intervals the fleet keeps running after the last upload, whatever the duration
CONVERGE_POLLS = 4
#: how far past its duration a soak may run to give the fleet those polls (seconds)
MAX_OVERRUN = 30.0


@dataclass
class SoakResult:
    devices: int
    duration: float
    poll_interval: float
    report: dict[str, Any] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    newest: int = 0
    rss_kib: list[tuple[float, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        rss = [kib for _, kib in self.rss_kib]
        warm = [kib for at, kib in self.rss_kib if at >= 0.2 * self.duration] or rss
        return {
            "devices": self.devices,
            "duration_s": round(self.report.get("duration", 0.0), 1),
            "poll_interval_s": self.poll_interval,
            "polls": self.report.get("polls"),
            "polls_per_second": self.report.get("polls_per_second"),
            "not_modified": self.report.get("not_modified"),
            "updates": self.report.get("updates"),
            "downloaded_mib": round(self.report.get("downloaded_bytes", 0) / 2**20, 1),
            "errors": self.report.get("errors"),
            "withdrawn": self.report.get("withdrawn"),
            "retried": self.report.get("retried"),
            "rejected": self.report.get("rejected"),
            "latency_ms": self.report.get("latency_ms"),
            "newest": self.newest,
            "devices_on_newest": sum(
                1 for seq in self.report.get("final_seqs", {}).values() if seq == self.newest
            ),
            "actions": self.actions,
            "server_rss_mib": {
                "start": round(rss[0] / 1024, 1) if rss else None,
                "after_warmup": round(warm[0] / 1024, 1) if warm else None,
                "end": round(rss[-1] / 1024, 1) if rss else None,
                "max": round(max(rss) / 1024, 1) if rss else None,
            },
            "server_rss_mib_every_30s": [
                round(kib / 1024, 1) for at, kib in self.rss_kib if int(at) % 30 == 0
            ][:: max(1, len([1 for at, _ in self.rss_kib if int(at) % 30 == 0]) // 12)],
            "problems": self.problems,
        }


def _release(keys: Path, out: Path, seq: int) -> ReleaseFiles:
    image = out / f"app-{seq}.bin"
    image.write_bytes(
        build_app_image(
            ImageSpec(version=f"1.{seq}.0", size=16 * 1024, seed=seq, project_name="soak")
        )
    )
    folder = out / f"r{seq}"
    folder.mkdir()
    return build_release(
        ReleaseRequest(
            firmware=image, seq=seq, device_type=DEVICE_TYPE, fw_name="app", out_dir=folder
        ),
        load_author_keys(keys, secure_boot_version="v1"),
        now=int(time.time()),
    )


def _upload(server: ServerProcess, files: ReleaseFiles, seq: int) -> int:
    with server.http() as http:
        return http.post(
            "/uploadFile",
            auth=(UPLOADER, UPLOADER_PASSWORD),
            data={"id": str(seq), "deviceType": DEVICE_TYPE, "fwName": "app"},
            files={
                "manifestFile": ("m", files.manifest.read_bytes()),
                "firmwareFile": ("b", files.binary.read_bytes()),
            },
        ).status_code


def _churn(
    server: ServerProcess,
    releases: dict[int, ReleaseFiles],
    result: SoakResult,
    stop_at: float,
    started: float,
) -> None:
    """Upload the next release, yank it ("a bad release"), re-upload it identically (an
    idempotent retry, stays yanked), publish the fix under a new id; until ``stop_at``."""
    seq = 2
    step = max(2.0, result.poll_interval)
    base = f"/api/v1/device-types/{DEVICE_TYPE}/releases"
    while time.monotonic() + 3 * step < stop_at:
        bad, fix = seq + 1, seq + 2
        if bad not in releases or fix not in releases:
            break
        time.sleep(step)
        status = _upload(server, releases[bad], bad)
        result.actions.append(f"{time.monotonic() - started:.0f}s upload {bad}: {status}")
        time.sleep(step)
        with server.http() as http:
            status = http.post(f"{base}/{bad}/yank", auth=(ADMIN, ADMIN_PASSWORD)).status_code
        result.actions.append(f"{time.monotonic() - started:.0f}s yank {bad}: {status}")
        status = _upload(server, releases[bad], bad)
        result.actions.append(f"{time.monotonic() - started:.0f}s re-upload {bad}: {status}")
        time.sleep(step)
        status = _upload(server, releases[fix], fix)
        result.actions.append(f"{time.monotonic() - started:.0f}s upload {fix}: {status}")
        result.newest = fix
        seq = fix


def run_soak(
    devices: int,
    duration: float,
    poll_interval: float,
    root: Path | None = None,
    *,
    env: dict[str, str] | None = None,
) -> SoakResult:
    with tempfile.TemporaryDirectory(prefix="fota-soak-") as temp:
        base = root or Path(temp)
        keys = base / "keys"
        generate_key_set(keys)
        ca = Authority.create("soak CA")
        cert, key = ca.issue(base / "tls", ["127.0.0.1"])
        server = ServerProcess(
            base,
            cert=cert,
            key=key,
            ca=ca.write_ca(base / "ca.pem"),
            env={
                "FOTA_FRESHNESS_KEY_FILE": str(keys / "freshness_key.pem"),
                "FOTA_CACHE_TTL": "0.5",
                **(env or {}),
            },
        )
        server.setup().start()
        result = SoakResult(devices, duration, poll_interval)
        try:
            out = base / "releases"
            out.mkdir()
            rounds = int(duration // (3 * max(2.0, poll_interval))) + 2
            releases = {seq: _release(keys, out, seq) for seq in range(2, 2 * rounds + 3)}
            assert _upload(server, releases[2], 2) == 200
            result.newest = 2
            started = time.monotonic()
            stop_at = started + 0.7 * duration  # the last third lets every device converge
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.is_set():
                    result.rss_kib.append((time.monotonic() - started, server.rss_kib()))
                    sampling.wait(1.0)

            # The fleet runs for ``duration``, and at least CONVERGE_POLLS poll intervals after
            # the last upload (a loaded machine can finish the churn late), at most
            # ``duration + MAX_OVERRUN``: every device must have had time to poll and update.
            stop = threading.Event()

            def churn_then_stop() -> None:
                _churn(server, releases, result, stop_at, started)
                converged_by = time.monotonic() + CONVERGE_POLLS * max(2.0, poll_interval)
                time.sleep(max(0.0, max(started + duration, converged_by) - time.monotonic()))
                stop.set()

            sampler = threading.Thread(target=sample, daemon=True)
            churn = threading.Thread(target=churn_then_stop, daemon=True)
            sampler.start()
            churn.start()
            report = asyncio.run(
                simulate(
                    FleetConfig(
                        server=server.url,
                        device_type=DEVICE_TYPE,
                        devices=devices,
                        duration=duration + MAX_OVERRUN,
                        poll_interval=poll_interval,
                        ca_file=base / "ca.pem",
                        keys_dir=keys,
                        installed_seq=1,
                        timeout=30,
                    ),
                    stop=stop,
                )
            )
            churn.join(MAX_OVERRUN)
            sampling.set()
            sampler.join(5)
            result.report = report.summary()
        finally:
            server.stop()
    _judge(result)
    return result


def _judge(result: SoakResult) -> None:
    report = result.report
    if report.get("errors"):
        result.problems.append(f"{report['errors']} errors: {report.get('error_samples')}")
    if report.get("rejected"):
        result.problems.append(f"{report['rejected']} rejections")
    behind = {k: v for k, v in report.get("final_seqs", {}).items() if v != result.newest}
    if behind:
        on = sorted(set(behind.values()))
        result.problems.append(
            f"{len(behind)} devices not on release {result.newest} (on {on}; "
            f"actions: {result.actions[-3:]})"
        )
    if any(not line.endswith(": 200") for line in result.actions):
        result.problems.append("an upload or yank failed")
    warm = [kib for at, kib in result.rss_kib if at >= 0.2 * result.duration]
    if len(warm) >= 2 and warm[-1] - warm[0] > RSS_GROWTH_LIMIT_KIB:
        result.problems.append(f"server memory grew from {warm[0]} to {warm[-1]} KiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="2,000 devices for 5 minutes")
    parser.add_argument("--devices", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--poll-interval", type=float)
    parser.add_argument(
        "--http-server", choices=HTTP_SERVERS, help="fota server run --http-server (default: its)"
    )
    args = parser.parse_args(argv)
    devices = args.devices or (2000 if args.long else 200)
    duration = args.duration or (300.0 if args.long else 30.0)
    interval = args.poll_interval or (10.0 if args.long else 2.0)
    env = server_env(args.http_server) if args.http_server else None
    result = run_soak(devices, duration, interval, env=env)
    print(json.dumps(result.summary(), indent=2))
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
