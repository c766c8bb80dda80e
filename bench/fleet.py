"""Fleet: `fota fleet simulate` with 1k, 5k and 10k devices against one `fota server run`.

Every device polls with a nonce and checks the manifest and the freshness statement as a real
device does (--keys), holds its own keep-alive connection (--max-connections = devices) and
is up to date (--installed-seq 1), so the steady load is 304 polls with a signed freshness
statement. The poll interval is chosen so that the fleet offers --rate polls/s in total.
Measured on the server: CPU seconds per poll, RSS before and under load, established
connections (ss), hence RSS per connected device; from the fleet: sustained polls/s, p50/p99
latency (client side, including the simulator's own queueing), errors; from the server's
/metrics histogram: the share of polls answered within 100 ms and the p99 bucket. CPU per
poll is taken in the steady state (after every device has connected once). From CPU per poll:
how many devices one core serves at one poll per minute.

The simulator (httpx, TLS in Python) sustains ~200 polls/s on one core of this machine, so
the fleet offers --rate polls/s (default 100) and the duration grows with the interval.

    .venv/bin/python bench/fleet.py [--devices 1000,5000,10000] [--duration 30] [--rate 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import BIN, log


def established(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return len([line for line in out.splitlines() if line.strip()])


def poll_histogram(url: str, ca: Path) -> dict[float, float]:
    """Cumulative bucket counts (le -> count) of the poll route's server-side durations."""
    import httpx

    text = httpx.get(
        f"{url}/metrics", verify=common.ssl.create_default_context(cafile=str(ca))
    ).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if (
            line.startswith("fota_http_request_duration_seconds_bucket{")
            and '"/update/newest/manifest"' in line
        ):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def server_latency(before: dict[float, float], after: dict[float, float]) -> tuple[float, str]:
    """Share of polls within 100 ms and the bucket holding the 99th percentile."""
    delta = {le: after.get(le, 0) - before.get(le, 0) for le in after}
    total = delta.get(float("inf"), 0)
    if not total:
        return float("nan"), "-"
    p99 = next(le for le in sorted(delta) if delta[le] >= 0.99 * total)
    return delta.get(0.1, 0) / total, f"<= {p99 * 1000:g} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", default="1000,5000,10000")
    parser.add_argument(
        "--duration", type=float, default=30, help="at least; 1.5 poll intervals + 10 s if longer"
    )
    parser.add_argument(
        "--rate", type=float, default=100, help="polls/s offered by the whole fleet"
    )
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    fx = common.fixtures()
    manifest, _ = fx.release(100 * 1024)
    results: dict[str, object] = {"machine": common.machine(), "args": vars(args), "runs": {}}
    with common.cleanup():
        server = common.start_server(
            fx, "fleet", workers=args.workers, env={"FOTA_LOG_LEVEL": "warning"}
        )
        common.upload(fx, server.url, manifest)
        for devices in [int(d) for d in args.devices.split(",")]:
            time.sleep(6)  # let the previous fleet's connections close (uvicorn keep-alive 5 s)
            pids = server.pids()
            rss0, cpu0 = common.rss_kib(pids), common.cpu_seconds(pids)
            interval = devices / args.rate
            duration = max(args.duration, 1.5 * interval + 10)
            samples: list[tuple[float, float, int, int]] = []
            stop = threading.Event()
            steady = time.perf_counter() + interval + 5  # every device has polled once by then
            histogram: list[dict[float, float]] = []

            def sample() -> None:
                while not stop.wait(1.0):
                    now = time.perf_counter()
                    pids_now = server.pids()
                    samples.append(
                        (
                            now,
                            common.cpu_seconds(pids_now),
                            common.rss_kib(pids_now),
                            established(server.port),
                        )
                    )
                    if not histogram and now >= steady:
                        histogram.append(poll_histogram(server.url, fx.ca))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "fleet.json"
                started = time.perf_counter()
                proc = subprocess.run(
                    [
                        str(BIN / "fota"), "fleet", "simulate", "--server", server.url,
                        "--ca", str(fx.ca), "--device-type", common.DEVICE_TYPE,
                        "--devices", str(devices), "--duration", str(duration),
                        "--poll-interval", f"{interval:.3f}", "--keys", str(fx.keys),
                        "--installed-seq", "1", "--max-connections", str(devices),
                        "--out", str(out),
                    ],
                    capture_output=True, text=True, check=False, timeout=duration + 300,
                )  # fmt: skip
                wall = time.perf_counter() - started
                stop.set()
                sampler.join()
                if not out.exists():
                    raise RuntimeError(f"fleet simulate failed: {proc.stderr[-2000:]}")
                summary = json.loads(out.read_text())
            cpu = common.cpu_seconds(server.pids()) - cpu0
            after = poll_histogram(server.url, fx.ca)
            window = [x for x in samples if x[0] >= steady]
            if len(window) >= 2:
                steady_cpu = window[-1][1] - window[0][1]
                steady_polls = (
                    (after[float("inf")] - histogram[0][float("inf")]) if histogram else 0
                )
                # polls counted from the histogram window, which starts with the first sample
            else:
                steady_cpu, steady_polls = cpu, summary["polls"]
            within, p99_bucket = server_latency(histogram[0] if histogram else {}, after)
            peak_rss = max((x[2] for x in samples), default=rss0)
            peak_conns = max((x[3] for x in samples), default=0)
            polls = summary["polls"]
            cpu_per_poll = steady_cpu / steady_polls if steady_polls else float("nan")
            run = {
                "devices": devices,
                "poll_interval_s": interval,
                "polls": polls,
                "polls_per_s": summary["polls_per_second"],
                "p50_ms": summary["latency_ms"]["p50"],
                "p99_ms": summary["latency_ms"]["p99"],
                "errors": summary["errors"],
                "rejected": summary["rejected"],
                "server_cpu_s": cpu,
                "server_cpu_share": cpu / wall,
                "steady_polls": steady_polls,
                "server_within_100ms": within,
                "server_p99_bucket": p99_bucket,
                "server_cpu_us_per_poll": cpu_per_poll * 1e6,
                "rss_idle_mib": rss0 / 1024,
                "rss_peak_mib": peak_rss / 1024,
                "connections_peak": peak_conns,
                "rss_kib_per_connection": (peak_rss - rss0) / peak_conns
                if peak_conns
                else float("nan"),
                "devices_per_core_at_1_per_min": 60 / cpu_per_poll
                if steady_polls
                else float("nan"),
                "error_samples": summary.get("error_samples", [])[:5],
            }
            results["runs"][str(devices)] = run  # type: ignore[index]
            log(f"fleet {devices}: {json.dumps(run)}")
    common.save("fleet", results)
    print(report(results))


def report(results: dict[str, object]) -> str:
    rows = []
    for run in results["runs"].values():  # type: ignore[union-attr]
        rows.append([
            f"{run['devices']:,}", f"{run['poll_interval_s']:.1f}", f"{run['polls_per_s']:,.0f}",
            f"{run['p50_ms']:.1f}", f"{run['p99_ms']:.1f}", run["server_p99_bucket"],
            f"{100 * run['server_within_100ms']:.2f} %", run["errors"], f"{run['connections_peak']:,}",
            f"{run['rss_idle_mib']:.0f} -> {run['rss_peak_mib']:.0f}", f"{run['rss_kib_per_connection']:.1f}",
            f"{run['server_cpu_us_per_poll']:.0f}", f"{run['devices_per_core_at_1_per_min']:,.0f}",
        ])  # fmt: skip
    return common.table(
        ["devices", "poll interval s", "polls/s", "fleet p50 ms", "fleet p99 ms", "server p99",
         "server <= 100 ms", "errors", "connections",
         "server RSS MiB", "RSS KiB / connection", "server CPU us / poll", "devices / core @ 1/min"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
