"""Fleet operations: what a staged rollout costs the update server.

Against one `fota server run` (1 worker, SQLite, TLS, freshness key):

* **polls** with a device id (`deviceId`, keep-alive, no nonce: the fast path at its cheapest,
  where any extra per-poll work shows most), by C concurrent clients over D device ids, for T
  seconds: without a rollout, then with an active rollout whose current stage holds half the
  fleet (every device id polled once before, so each offer is already recorded), alternated
  twice. Reported: polls/s seen by the clients and the server's CPU µs per poll (the clients, in
  Python, are the bottleneck, so the ratio of CPU per poll is the honest one).
* **reports**: R devices, each with its own P-256 key, send K signed reports each (signed
  beforehand), C at a time: reports/s and server CPU µs per report (ES256 verification, one
  transaction with a row lock).
* **abort**: a rollout with a 10 % threshold over 20 offered devices; failure reports one at a
  time until it aborts. Reported: the server's own measure (its log line: from the arrival of
  the report that crossed the threshold to the committed abort) and the client's round trip of
  that report against the ones before it.

    .venv/bin/python bench/rollout.py [--devices 2000] [--clients 16] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import DEVICE_TYPE, PASSWORD, USER, log

ADMIN, ADMIN_PASSWORD = "bench-admin", "bench-admin-password-1"


def seed_upload(url: str, fx: common.Fixtures, seq: int, *, hold: bool = False) -> None:
    manifest, binary = fx.release(8 * 1024, seq)
    with httpx.Client(verify=ssl.create_default_context(cafile=str(fx.ca)), timeout=60) as http:
        response = http.post(
            f"{url}/uploadFile",
            params={"hold": "1"} if hold else None,
            auth=(USER, PASSWORD),
            data={"id": str(seq), "deviceType": DEVICE_TYPE, "fwName": "app"},
            files={
                "manifestFile": ("m", manifest.read_bytes()),
                "firmwareFile": ("b", binary.read_bytes()),
            },
        )
    response.raise_for_status()


def admin(url: str, fx: common.Fixtures, method: str, path: str, **options: Any) -> Any:
    with httpx.Client(
        verify=ssl.create_default_context(cafile=str(fx.ca)),
        auth=(ADMIN, ADMIN_PASSWORD),
        timeout=60,
    ) as http:
        response = http.request(method, f"{url}/api/v1{path}", **options)
    response.raise_for_status()
    return response.json()


async def poll_load(url: str, ca: Path, ids: list[str], clients: int, duration: float) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    done = 0
    deadline = time.monotonic() + duration

    async def worker(index: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(verify=context, timeout=30) as http:
            position = index
            while time.monotonic() < deadline:
                device_id = ids[position % len(ids)]
                position += clients
                response = await http.get(
                    f"{url}/update/newest/manifest",
                    params={"deviceType": DEVICE_TYPE, "deviceId": device_id},
                )
                if response.status_code != 200:
                    raise RuntimeError(f"poll answered {response.status_code}")
                done += 1

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return done


async def poll_each_once(url: str, ca: Path, ids: list[str], clients: int) -> None:
    context = ssl.create_default_context(cafile=str(ca))

    async def worker(index: int) -> None:
        async with httpx.AsyncClient(verify=context, timeout=30) as http:
            for device_id in ids[index::clients]:
                response = await http.get(
                    f"{url}/update/newest/manifest",
                    params={"deviceType": DEVICE_TYPE, "deviceId": device_id},
                )
                response.raise_for_status()

    await asyncio.gather(*(worker(i) for i in range(clients)))


def measure_polls(
    server: common.Server, ca: Path, ids: list[str], clients: int, duration: float
) -> dict[str, float]:
    pids = server.pids()
    cpu = common.cpu_seconds(pids)
    started = time.monotonic()
    polls = asyncio.run(poll_load(server.url, ca, ids, clients, duration))
    elapsed = time.monotonic() - started
    used = common.cpu_seconds(pids) - cpu
    return {"polls": polls, "per_second": polls / elapsed, "cpu_us": used / polls * 1e6}


def sign_reports(devices: int, per_device: int) -> list[list[str]]:
    from cryptography.hazmat.primitives.asymmetric import ec

    from secure_fota.crypto.report import Event, Report, ReportSigner

    tokens: list[list[str]] = []
    for index in range(devices):
        signer = ReportSigner(ec.generate_private_key(ec.SECP256R1()))
        tokens.append([])
        for counter in range(1, per_device + 1):
            tokens[-1].append(
                signer.sign(
                    Report(
                        device_id=f"reporter-{index:05d}",
                        device_type=DEVICE_TYPE,
                        event=Event.CHECKING,
                        reason=None,
                        detail="",
                        seq=1,
                        secure_version=0,
                        version="1.0.0",
                        release=0,
                        counter=counter,
                        pub=signer.pub,
                    )
                )
            )
    return tokens


async def send_reports(url: str, ca: Path, queues: list[list[str]], clients: int) -> None:
    """Each device's reports in order, by one sender (devices interleave across senders)."""
    context = ssl.create_default_context(cafile=str(ca))

    async def worker(index: int) -> None:
        async with httpx.AsyncClient(verify=context, timeout=30) as http:
            for queue in queues[index::clients]:
                for token in queue:
                    response = await http.post(
                        f"{url}/api/v1/reports",
                        content=token.encode(),
                        headers={"content-type": "application/jose"},
                    )
                    if response.status_code != 200:
                        raise RuntimeError(
                            f"report answered {response.status_code}: {response.text}"
                        )

    await asyncio.gather(*(worker(i) for i in range(clients)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--reporters", type=int, default=300)
    parser.add_argument("--reports-each", type=int, default=4)
    args = parser.parse_args()
    fx = common.fixtures()
    results: dict[str, Any] = {"machine": common.machine(), "args": vars(args)}
    with common.cleanup():
        # a fresh server: no releases, rollouts or devices from an earlier run
        shutil.rmtree(common.WORK / "servers" / "rollout", ignore_errors=True)
        (common.WORK / "logs" / "server-rollout.log").unlink(missing_ok=True)
        server = common.start_server(fx, "rollout", env={"FOTA_ROLLOUT_TICK": "1"})
        common.fota(
            "server", "user", "add", ADMIN, "--role", "admin", "--password-stdin", "--replace",
            "--data-dir", str(server.data), stdin=ADMIN_PASSWORD + "\n",
        )  # fmt: skip
        url, ca = server.url, fx.ca
        ids = [f"bench-device-{i:05d}" for i in range(args.devices)]
        seed_upload(url, fx, 1)
        asyncio.run(poll_load(url, ca, ids, args.clients, 2.0))  # warm up
        rounds: dict[str, list[dict[str, float]]] = {"none": [], "rollout": []}
        seq = 1
        for round_ in range(2):
            rounds["none"].append(measure_polls(server, ca, ids, args.clients, args.duration))
            seq += 1
            seed_upload(url, fx, seq)
            rollout = admin(
                url, fx, "POST", "/rollouts",
                json={"device_type": DEVICE_TYPE, "seq": seq, "stages": [50, 100],
                      "stage_wait": 86400, "silent_deadline": 86400, "min_devices": 1_000_000},
            )  # fmt: skip
            time.sleep(1.0)
            asyncio.run(poll_each_once(url, ca, ids, args.clients))  # every offer recorded
            offered = admin(url, fx, "GET", f"/rollouts/{rollout['id']}")["progress"][0]["offered"]
            log(f"round {round_ + 1}: rollout {rollout['id']} offered to {offered} devices")
            rounds["rollout"].append(measure_polls(server, ca, ids, args.clients, args.duration))
            admin(url, fx, "POST", f"/rollouts/{rollout['id']}/abort")
            time.sleep(1.0)
        for kind, runs in rounds.items():
            log(
                f"polls, {kind}: "
                + ", ".join(f"{r['per_second']:.0f}/s {r['cpu_us']:.0f} us" for r in runs)
            )
        none_cpu = common.median([r["cpu_us"] for r in rounds["none"]])
        roll_cpu = common.median([r["cpu_us"] for r in rounds["rollout"]])
        none_rate = common.median([r["per_second"] for r in rounds["none"]])
        roll_rate = common.median([r["per_second"] for r in rounds["rollout"]])
        results["polls"] = {
            "rounds": rounds,
            "cpu_us_none": none_cpu,
            "cpu_us_rollout": roll_cpu,
            "rate_none": none_rate,
            "rate_rollout": roll_rate,
            "throughput_ratio": none_cpu / roll_cpu,
        }

        queues = sign_reports(args.reporters, args.reports_each)
        count = sum(len(q) for q in queues)
        pids = server.pids()
        cpu = common.cpu_seconds(pids)
        started = time.monotonic()
        asyncio.run(send_reports(url, ca, queues, args.clients))
        elapsed = time.monotonic() - started
        used = common.cpu_seconds(pids) - cpu
        results["reports"] = {
            "reports": count,
            "per_second": count / elapsed,
            "cpu_us": used / count * 1e6,
        }
        log(f"reports: {count} in {elapsed:.1f} s, {count / elapsed:.0f}/s, "
            f"{used / count * 1e6:.0f} us CPU each")  # fmt: skip

        results["abort"] = measure_abort(server, fx, seq + 1)
    path = common.save("rollout", results)
    log(f"saved {path}")
    print_table(results)


def measure_abort(server: common.Server, fx: common.Fixtures, seq: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec

    from secure_fota.crypto.report import Event, Report, ReportSigner

    url, ca = server.url, fx.ca
    seed_upload(url, fx, seq)
    rollout = admin(
        url, fx, "POST", "/rollouts",
        json={"device_type": DEVICE_TYPE, "seq": seq, "stages": [100], "stage_wait": 86400,
              "silent_deadline": 86400, "max_failure_rate": 0.1, "min_devices": 10},
    )  # fmt: skip
    time.sleep(1.0)
    ids = [f"abort-{seq}-{i:03d}" for i in range(20)]
    asyncio.run(poll_each_once(url, ca, ids, 4))
    verify = ssl.create_default_context(cafile=str(ca))
    trips = []
    with httpx.Client(verify=verify, timeout=30) as http:
        for device_id in ids:
            signer = ReportSigner(ec.generate_private_key(ec.SECP256R1()))
            token = signer.sign(
                Report(
                    device_id=device_id, device_type=DEVICE_TYPE, event=Event.ROLLED_BACK,
                    reason=None, detail="bench", seq=seq - 1, secure_version=0, version="1.0.0",
                    release=seq, counter=10_000, pub=signer.pub,
                )
            )  # fmt: skip
            started = time.perf_counter()
            response = http.post(
                f"{url}/api/v1/reports", content=token.encode(),
                headers={"content-type": "application/jose"},
            )  # fmt: skip
            trips.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            state = admin(url, fx, "GET", f"/rollouts/{rollout['id']}")
            if state["state"] == "aborted":
                break
    log_text = (common.WORK / "logs" / "server-rollout.log").read_text(errors="replace")
    found = re.findall(
        rf"rollout {rollout['id']} of .* aborted \(stage 1\) ([0-9.]+) ms after the report",
        log_text,
    )
    server_ms = float(found[-1]) if found else None
    log(f"abort: after {len(trips)} failure reports; server {server_ms} ms; client round trips "
        f"{', '.join(f'{t:.1f}' for t in trips)} ms")  # fmt: skip
    return {
        "failures_to_abort": len(trips),
        "server_ms": server_ms,
        "crossing_round_trip_ms": trips[-1],
        "other_round_trips_ms": trips[:-1],
        "note": state["note"],
    }


def print_table(results: dict[str, Any]) -> None:
    p, r, a = results["polls"], results["reports"], results["abort"]
    print(common.table(
        ["measure", "without rollout", "with active rollout", "ratio"],
        [
            ["polls/s (clients' view)", f"{p['rate_none']:.0f}", f"{p['rate_rollout']:.0f}",
             f"{p['rate_rollout'] / p['rate_none']:.2f}x"],
            ["server CPU µs per poll", f"{p['cpu_us_none']:.0f}", f"{p['cpu_us_rollout']:.0f}",
             f"{p['throughput_ratio']:.2f}x throughput"],
        ],
    ))  # fmt: skip
    print()
    print(f"reports: {r['per_second']:.0f}/s, {r['cpu_us']:.0f} µs server CPU each")
    others = a["other_round_trips_ms"]
    print(f"abort: {a['server_ms']} ms server-side after the crossing report arrived; "
          f"its round trip {a['crossing_round_trip_ms']:.1f} ms vs "
          f"{common.median(others) if others else 0:.1f} ms for the reports before it")  # fmt: skip


if __name__ == "__main__":
    main()
