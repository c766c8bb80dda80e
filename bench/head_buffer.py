"""One connection sends a huge request header; how do the server's memory and the other
clients fare? (issue 14, class 3; docs/PERFORMANCE.md "Request heads")

For each HTTP server (uvicorn, granian) `fota server run` starts with one worker and the
release of a 64 KiB image; --pollers keep-alive TLS clients poll its newest manifest. After a
quiet --quiet seconds, one TLS connection sends `GET /healthz` and then one header of --size
MiB (no line end), as fast as the server takes it. Reported per server: polls/s before and
during the attack (until the attacker is done, at least one second), the longest gap between
two answers, the peak growth of the server's resident memory (all its processes, sampled
every 20 ms), how many bytes the server took and what it answered.

    .venv/bin/python bench/head_buffer.py [--servers uvicorn,granian] [--size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import MB, log, median

from secure_fota.devtools.head_flood import Poller, send_head, tree_rss_kib

POLL_PATH = f"/update/newest/manifest?deviceType={common.DEVICE_TYPE}"


class RssPeak:
    """The highest resident memory of a process tree while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_kib(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def attack_once(server: common.Server, ca: Path, *, size: int, pollers: int, quiet: float) -> dict:
    with Poller(server.url + POLL_PATH, ca, clients=pollers) as poller:
        time.sleep(0.5)  # connections up
        quiet_start = time.monotonic()
        time.sleep(quiet)
        start = time.monotonic()
        rss_before = tree_rss_kib(server.process.pid)
        with RssPeak(server.process.pid) as peak:
            head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            result = send_head(server.port, ca, head, flood=size, timeout=60)
            done = time.monotonic()
            time.sleep(max(0.0, start + 1.0 - done))
        stop = time.monotonic()
    return {
        "polls_per_s_before": poller.rate(quiet_start, start),
        "polls_per_s_during": poller.rate(start, stop),
        "longest_gap_s": poller.longest_gap(start, stop),
        "rss_growth_mib": (peak.peak - rss_before) / 1024,
        "taken_mib": result.sent / MB,
        "attack_s": done - start,
        "status": result.status,
        "poll_errors": poller.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="uvicorn,granian")
    parser.add_argument("--size", type=int, default=64, help="MiB of header value (64-120)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pollers", type=int, default=2)
    parser.add_argument("--quiet", type=float, default=2.0, help="seconds of polls before")
    args = parser.parse_args()
    fx = common.fixtures()
    manifest, _ = fx.release(64 * 1024)
    rows, results = [], {}
    with common.cleanup():
        for name in args.servers.split(","):
            server = common.start_server(fx, f"head-{name}", env={"FOTA_HTTP_SERVER": name})
            common.upload(fx, server.url, manifest)
            runs = []
            for _ in range(args.repeats):
                runs.append(
                    attack_once(
                        server, fx.ca, size=args.size * MB, pollers=args.pollers, quiet=args.quiet
                    )
                )
                log(f"{name}: {runs[-1]}")
            common.stop(server.process)
            results[name] = runs

            def m(key: str, runs: list[dict] = runs) -> float:
                return median([run[key] for run in runs])

            statuses = sorted({str(run["status"]) for run in runs})
            rows.append(
                [
                    name,
                    f"{m('polls_per_s_before'):,.0f}",
                    f"{m('polls_per_s_during'):,.0f}",
                    f"{m('longest_gap_s'):.2f}",
                    f"+{m('rss_growth_mib'):.1f}",
                    f"{m('taken_mib'):.1f}",
                    f"{m('attack_s'):.2f}",
                    "/".join(statuses),
                ]
            )
    common.save("head_buffer", {"args": vars(args), "machine": common.machine(), **results})
    print(
        common.table(
            [
                "server",
                "polls/s before",
                "polls/s during",
                "longest gap (s)",
                "RSS (MiB)",
                "taken (MiB)",
                "attack (s)",
                "answer",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
