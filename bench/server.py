"""Update server against nginx, device-facing, in one run on 127.0.0.1.

Starts `fota server run` (N workers, the release of a 1 MiB image uploaded) and nginx
(bench/nginx-static.conf: N workers, sendfile on, the same ECDSA P-256 certificate, the same
manifest and binary files served as static files), then runs every test against both,
interleaved, --repeats times, and reports medians and the median of the per-repeat ratios:

* poll-200     keep-alive TLS polls of the newest manifest              wrk -t1 -cC
* poll-304     the same with If-None-Match (up to date)                 wrk -t1 -cC
* poll-nonce   fota only: polls with a nonce (a freshness statement signed per poll)
* newconn      a new TLS connection per poll, full handshake            wrk + Connection: close
* newconn-s    the same, one sequential client per core                 openssl s_time -new
* resume       a new connection per poll, TLS session resumption        openssl s_time -reuse
* download     1 MiB binary, keep-alive                                 wrk -t1 -c4 (MB/s)
* range        4 KiB Range requests of the binary by release id         wrk -t1 -cC
* range16      16 KiB Range requests by release id, chunk after chunk   wrk -t1 -cC -s range16.lua
               through the whole image (the ESP32 component's resumable download)
* newest-range16  the same on the seed's /update/newest/binary?deviceType=T
* newest-download the whole image from /update/newest/binary, keep-alive wrk -t1 -c4 (MB/s)
* latency      p50/p99 of 304 polls at a fixed offered rate             bench/rate.py

Any non-2xx/3xx answer, socket error or timeout is counted as an error and reported.

    .venv/bin/python bench/server.py [--workers 1,2] [--duration 10] [--repeats 3]
        [--tests poll-200,poll-304,...] [--rate 1000] [--access-log]
        [--http-server default|uvicorn|granian[,...]]

``--http-server`` lists the HTTP servers `fota server run` is measured with, each a target of
its own on the same data (default: only what `fota server run` uses without the option).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import rate as rate_client
from common import MB, log, median

from secure_fota.devtools.harness import free_port

ALL_TESTS = [
    "poll-200", "poll-304", "poll-nonce", "newconn", "newconn-s", "resume", "download", "range",
    "range16", "newest-range16", "newest-download", "latency",
]  # fmt: skip
NONCE = "0123456789abcdef0123456789abcdef"
BINARY_PATH = f"/api/v1/device-types/{common.DEVICE_TYPE}/releases/1/binary"
NEWEST_BINARY_PATH = f"/update/newest/binary?deviceType={common.DEVICE_TYPE}"
POLL_PATH = f"/update/newest/manifest?deviceType={common.DEVICE_TYPE}"
#: wrk script: 16 KiB Range requests, one chunk after the other through an image of args[1]
#: bytes, as a device downloads it (each connection starts at another chunk)
RANGE16_LUA = Path(__file__).resolve().parent / "range16.lua"
_UNITS = {
    "": 1,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "B": 1,
    "KB": 2**10,
    "MB": 2**20,
    "GB": 2**30,
}


def _number(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", text.strip())
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    url: str,
    *,
    duration: float,
    connections: int,
    headers: list[str] = (),  # type: ignore[assignment]
    threads: int = 1,
    script: tuple[Path, list[str]] | None = None,
) -> dict[str, float]:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for header in headers:
        argv += ["-H", header]
    tail: list[str] = []
    if script is not None:
        argv += ["-s", str(script[0])]
        tail = ["--", *script[1]]
    out = subprocess.run(
        [*argv, url, *tail], capture_output=True, text=True, check=True, timeout=duration + 60
    ).stdout
    result = {
        "rps": 0.0,
        "bytes_per_s": 0.0,
        "errors": 0.0,
        "p50_ms": float("nan"),
        "p99_ms": float("nan"),
    }
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(line.split()[1])
        elif line.startswith("Transfer/sec:"):
            result["bytes_per_s"] = _number(line.split()[1])
        elif line.startswith("Non-2xx or 3xx responses:"):
            result["errors"] += float(line.split(":")[1])
        elif line.startswith("Socket errors:"):
            result["errors"] += sum(float(x) for x in re.findall(r"\d+", line))
        elif line.startswith(("50%", "99%")):
            key = "p50_ms" if line.startswith("50%") else "p99_ms"
            value = line.split()[1]
            unit = re.sub(r"[0-9.]", "", value)
            result[key] = (
                float(value[: -len(unit)]) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[unit]
            )
    return result


def s_time(
    host_port: str, path: str, ca: Path, *, duration: float, reuse: bool, clients: int
) -> dict[str, float]:
    """Connections per second of ``clients`` parallel `openssl s_time` loops (HTTP/1.0 GET)."""
    argv = [
        "openssl", "s_time", "-connect", host_port, "-www", path, "-CAfile", str(ca),
        "-verify", "1", "-time", str(int(duration)), "-reuse" if reuse else "-new",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(clients)
    ]
    total, errors = 0.0, 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=duration + 60)
        found = re.findall(r"(\d+) connections in (\d+) real seconds", out)
        if not found or proc.returncode:
            errors += 1
            log(f"s_time failed: {out[-500:]}")
            continue
        count, seconds = found[-1]
        total += int(count) / max(1, int(seconds))
        if reuse and "r" not in out.split("session id reuse", 1)[-1]:
            log("s_time -reuse: no session was resumed")
            errors += 1
    return {"rps": total, "errors": errors}


def start_more(
    fx: common.Fixtures, server: common.Server, http_server: str, workers: int, env: dict[str, str]
):  # type: ignore[no-untyped-def]
    """Another `fota server run --http-server HTTP_SERVER` on the same data directory."""
    port = free_port()
    process = common.start(
        [
            str(common.BIN / "fota"), "server", "run", "--http-server", http_server,
            "--data-dir", str(server.data), "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers),
            "--tls-cert", str(fx.tls / "server.pem"), "--tls-key", str(fx.tls / "server.key"),
        ],
        log_file=common.WORK / "logs" / f"{http_server}-{workers}w.log",
        env={
            "FOTA_FRESHNESS_KEY_FILE": str(fx.keys / "freshness_key.pem"),
            "FOTA_GC_ON_START": "false", "FOTA_MIGRATE_ON_START": "false", **env,
        },
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    common.wait_https(url + "/healthz", fx.ca, process=process)
    time.sleep(1.0)
    return process, url


class Target:
    def __init__(self, name: str, url: str, pids, etag: str) -> None:  # type: ignore[no-untyped-def]
        self.name, self.url, self._pids, self.etag = name, url, pids, etag

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("https://")

    def cpu(self) -> float:
        return common.cpu_seconds(self._pids())


def _etag(url: str, ca: Path) -> str:
    import httpx

    response = httpx.get(url, verify=common.ssl.create_default_context(cafile=str(ca)))
    response.raise_for_status()
    return response.headers["etag"]


def run_test(
    test: str, target: Target, fx: common.Fixtures, args: argparse.Namespace
) -> dict[str, float] | None:
    d, c = args.duration, args.connections
    poll = target.url + POLL_PATH
    if test == "poll-200":
        return wrk(poll, duration=d, connections=c)
    if test == "poll-304":
        return wrk(poll, duration=d, connections=c, headers=[f"If-None-Match: {target.etag}"])
    if test == "poll-nonce":
        if target.name.startswith("nginx"):
            return None
        return wrk(f"{poll}&nonce={NONCE}", duration=d, connections=c)
    if test == "newconn":
        return wrk(poll, duration=d, connections=c, headers=["Connection: close"])
    if test in ("newconn-s", "resume"):
        return s_time(
            target.host_port,
            POLL_PATH,
            fx.ca,
            duration=d,
            reuse=test == "resume",
            clients=args.clients,
        )
    if test in ("download", "newest-download"):
        path = BINARY_PATH if test == "download" else NEWEST_BINARY_PATH
        return wrk(target.url + path, duration=d, connections=4)
    if test == "range":
        return wrk(
            target.url + BINARY_PATH, duration=d, connections=c, headers=["Range: bytes=4096-8191"]
        )
    if test in ("range16", "newest-range16"):
        path = BINARY_PATH if test == "range16" else NEWEST_BINARY_PATH
        script = (RANGE16_LUA, [str(args.image_size), str(16 * 1024)])
        return wrk(target.url + path, duration=d, connections=c, script=script)
    if test == "latency":
        result = asyncio.run(
            rate_client.run(
                poll,
                ca=str(fx.ca),
                rate=args.rate,
                duration=d,
                connections=c,
                headers=[f"If-None-Match: {target.etag}"],
                expect=304,
            )  # fmt: skip
        )
        return {k: float(v) for k, v in result.items() if isinstance(v, int | float)}
    raise ValueError(test)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--clients", type=int, default=2, help="parallel s_time loops")
    parser.add_argument("--rate", type=float, default=1000, help="offered rate of the latency test")
    parser.add_argument("--tests", default=",".join(ALL_TESTS))
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="keep fota's per-request access log (default: off, as nginx's)",
    )
    parser.add_argument("--image-mib", type=int, default=1)
    parser.add_argument("--name", default="server")
    parser.add_argument(
        "--http-server",
        default="default",
        help="comma-separated HTTP servers of `fota server run` to measure, each on the same "
        "data: default (no --http-server option), uvicorn, granian",
    )
    parser.add_argument(
        "--granian",
        action="store_true",
        help="the same as --http-server uvicorn,granian (the comparison of 2026-11-25)",
    )
    args = parser.parse_args()
    if args.granian:
        args.http_server = "uvicorn,granian"
    http_servers = args.http_server.split(",")
    tests = args.tests.split(",")
    fx = common.fixtures()
    manifest, binary = fx.release(args.image_mib * MB)
    args.image_size = binary.stat().st_size
    results: dict[str, object] = {"machine": common.machine(), "args": vars(args), "runs": {}}
    env = {} if args.access_log else {"FOTA_LOG_LEVEL": "warning"}
    with common.cleanup():
        for workers in [int(w) for w in args.workers.split(",")]:
            first = http_servers[0]
            server = common.start_server(
                fx,
                f"{args.name}-{workers}w",
                workers=workers,
                env=env if first == "default" else {**env, "FOTA_HTTP_SERVER": first},
            )
            common.upload(fx, server.url, manifest)
            nginx = common.start_nginx(
                f"{args.name}-{workers}w", "nginx-static.conf",
                {
                    "workers": str(workers), "port": str(free_port()),
                    "cert": str(fx.tls / "server.pem"), "key": str(fx.tls / "server.key"),
                    "manifest": str(manifest), "binary": str(binary),
                    "device_type": common.DEVICE_TYPE, "seq": "1",
                },
                ca=fx.ca,
            )  # fmt: skip
            targets = [
                Target(
                    f"{'fota' if first == 'default' else first}-{workers}w",
                    server.url,
                    server.pids,
                    _etag(server.url + POLL_PATH, fx.ca),
                ),
                Target(
                    f"nginx-{workers}w", nginx.url, nginx.pids, _etag(nginx.url + POLL_PATH, fx.ca)
                ),
            ]
            more = []
            for http_server in http_servers[1:]:
                started = start_more(fx, server, http_server, workers, env)
                more.append(started[0])
                targets.append(
                    Target(
                        f"{http_server}-{workers}w",
                        started[1],
                        lambda p=started[0]: common.descendants(p.pid),
                        _etag(started[1] + POLL_PATH, fx.ca),
                    )
                )
            assert hashlib.sha256(manifest.read_bytes()).hexdigest() in targets[0].etag
            for test in tests:
                runs: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
                for repeat in range(args.repeats):
                    for target in targets if repeat % 2 == 0 else list(reversed(targets)):
                        cpu0, t0 = target.cpu(), time.perf_counter()
                        result = run_test(test, target, fx, args)
                        if result is None:
                            continue
                        result["server_cpu_share"] = (target.cpu() - cpu0) / (
                            time.perf_counter() - t0
                        )
                        runs[target.name].append(result)
                        log(
                            f"{workers}w {test} {target.name} #{repeat}: "
                            + ", ".join(f"{k}={v:.4g}" for k, v in result.items())
                        )
                results["runs"][f"{workers}w/{test}"] = runs  # type: ignore[index]
            common.stop(server.process)
            common.stop(nginx.process)
            for process in more:
                common.stop(process)
    common.save(args.name, results)
    print(report(results))


def summarize(
    runs: dict[str, list[dict[str, float]]], name: str, key: str
) -> tuple[float, float, float]:
    """Median of ``name``'s runs, median of its per-repeat ratios to nginx, errors."""
    nginx = next(runs[n] for n in runs if n.startswith("nginx"))
    ours = runs[name]
    ratios = [x[key] / y[key] for x, y in zip(ours, nginx, strict=False) if y[key]]
    errors = sum(r["errors"] for r in ours)
    return median([r[key] for r in ours]), median(ratios) if ratios else float("nan"), errors


GOALS = {
    "poll-200": 0.5,
    "poll-304": 0.5,
    "newconn": 0.8,
    "newconn-s": 0.8,
    "resume": 0.8,
    "download": 0.8,
    "newest-download": 0.8,
    "range": 0.8,
    "range16": 0.5,
    "newest-range16": 0.5,
}


def report(results: dict[str, object]) -> str:
    rows = []
    for key, runs in results["runs"].items():  # type: ignore[union-attr]
        workers, test = key.split("/")
        names = sorted(runs, key=lambda n: ("nginx" in n, "granian" in n))
        metrics = (
            ["p50_ms", "p99_ms"]
            if test == "latency"
            else ["bytes_per_s" if test.endswith("download") else "rps"]
        )
        for metric in metrics:
            for name in names:
                if not runs[name]:
                    continue
                value, ratio, errors = summarize(runs, name, metric)
                scale, unit = (MB, "MiB/s") if metric == "bytes_per_s" else (1, "req/s")
                if test == "latency":
                    label, shown = (
                        f"latency {metric[:3]} ms @ {results['args']['rate']:.0f}/s",
                        f"{value:.2f}",
                    )  # type: ignore[index]
                else:
                    label, shown = f"{test} {unit}", f"{value / scale:,.0f}"
                cpu = median([r["server_cpu_share"] for r in runs[name]])
                per_core = f"{value / scale / cpu:,.0f}" if test != "latency" and cpu > 0 else ""
                goal = GOALS.get(test)
                verdict = ""
                if goal is not None and not name.startswith("nginx"):
                    verdict = ("met" if ratio >= goal else "missed") + f" (>= {goal})"
                rows.append(
                    [
                        workers,
                        label,
                        name.split("-")[0],
                        shown,
                        f"{cpu:.2f}",
                        per_core,
                        "" if name.startswith("nginx") else f"{ratio:.2f}",
                        verdict,
                        int(errors),
                    ]
                )
    return common.table(
        [
            "workers",
            "test",
            "server",
            "median",
            "server CPU (cores)",
            "per server core",
            "/ nginx",
            "goal",
            "errors",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
