"""Scale-out: two `fota server` processes sharing PostgreSQL and S3 behind nginx.

A fresh PostgreSQL database (127.0.0.1:5432, user postgres) and a moto S3 server
(`moto_server -H 127.0.0.1 -p PORT`) are shared by two `fota server run
--insecure-http-for-localhost-only` processes (1 worker each) on two ports; nginx
(bench/nginx-lb.conf) terminates TLS and balances over them, retrying idempotent requests on
the other instance (proxy_next_upstream). A release is uploaded through the balancer.

1. Throughput of 304 polls through the balancer with one upstream and with both (wrk, the
   same run, interleaved, medians), and the upstreams' CPU.
2. Restarts under load: a constant-rate client (bench/rate.py) polls through the balancer
   while each instance in turn is stopped (SIGTERM, graceful) and started again; every
   answer must be the expected 304 (no error, no timeout).

    .venv/bin/python bench/scaleout.py [--duration 10] [--repeats 3] [--rate 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import rate as rate_client
from common import BIN, MB, WORK, log, median
from server import POLL_PATH, wrk

from secure_fota.devtools.harness import free_port


def psql(statement: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", statement],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 40) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


def start_instance(name: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = common.start(
        [
            str(BIN / "fota"), "server", "run", "--data-dir", str(WORK / "servers" / name),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--insecure-http-for-localhost-only",
        ],
        log_file=WORK / "logs" / f"scaleout-{name}.log",
        env=env,
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/readyz", process)
    return process


def balancer(name: str, ports: list[int], fx: common.Fixtures, workers: int) -> common.Nginx:
    upstreams = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in ports)
    return common.start_nginx(
        name, "nginx-lb.conf",
        {
            "workers": str(workers), "port": str(free_port()), "upstreams": upstreams,
            "cert": str(fx.tls / "server.pem"), "key": str(fx.tls / "server.key"),
        },
        ca=None,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=300, help="polls/s during the restarts")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    fx = common.fixtures()
    manifest, _ = fx.release(1 * MB)
    database = f"fota_bench_{secrets.token_hex(4)}"
    results: dict[str, object] = {"machine": common.machine(), "args": vars(args)}
    psql(f"CREATE DATABASE {database}")
    try:
        with common.cleanup():
            s3_port = free_port()
            moto = common.start(
                [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                log_file=WORK / "logs" / "moto.log",
            )
            import boto3

            env = {
                "FOTA_DATABASE_URL": f"postgresql://postgres@127.0.0.1/{database}",
                "FOTA_STORAGE": "s3",
                "FOTA_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
                "FOTA_S3_BUCKET": "fota-bench",
                "FOTA_S3_ACCESS_KEY_ID": "bench",
                "FOTA_S3_SECRET_ACCESS_KEY": "bench-secret",
                "FOTA_FRESHNESS_KEY_FILE": str(fx.keys / "freshness_key.pem"),
                "FOTA_LOG_LEVEL": "warning",
            }
            deadline = time.monotonic() + 30
            while True:
                try:
                    boto3.client(
                        "s3", endpoint_url=env["FOTA_S3_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench-secret",  # noqa: S106 -- moto
                    ).create_bucket(Bucket="fota-bench")  # fmt: skip
                    break
                except Exception:
                    if moto.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            common.prepare_server_data(WORK / "servers" / "scaleout-a", env)
            ports = [free_port(), free_port()]
            instances = [
                start_instance(f"scaleout-{n}", p, env) for n, p in zip("ab", ports, strict=True)
            ]
            lb_one = balancer("lb-one", ports[:1], fx, 1)
            lb_two = balancer("lb-two", ports, fx, 1)
            common.upload(fx, lb_two.url, manifest)
            etag = rate_client_etag(lb_two.url + POLL_PATH, fx.ca)

            # 1. throughput, one upstream vs two
            runs: dict[str, list[dict[str, float]]] = {"one": [], "two": []}
            for repeat in range(args.repeats):
                order = [("one", lb_one), ("two", lb_two)]
                for label, lb in order if repeat % 2 == 0 else order[::-1]:
                    pids = [p for i in instances for p in common.descendants(i.pid)]
                    cpu0, t0 = common.cpu_seconds(pids), time.perf_counter()
                    result = wrk(lb.url + POLL_PATH, duration=args.duration, connections=args.connections,
                                 headers=[f"If-None-Match: {etag}"])  # fmt: skip
                    result["upstream_cpu_cores"] = (common.cpu_seconds(pids) - cpu0) / (
                        time.perf_counter() - t0
                    )
                    runs[label].append(result)
                    log(f"scale-out {label} #{repeat}: {result}")
            results["throughput"] = runs

            # 2. restart each instance under a constant load through the balancer
            outcome: dict[str, object] = {}

            def restarts() -> None:
                time.sleep(args.duration * 0.25)
                for index, name in enumerate("ab"):
                    started = time.perf_counter()
                    common.stop(instances[index])
                    instances[index] = start_instance(f"scaleout-{name}", ports[index], env)
                    outcome[f"restart_{name}_s"] = time.perf_counter() - started
                    time.sleep(args.duration * 0.2)

            restart_duration = max(args.duration * 2, 20)
            thread = threading.Thread(target=restarts)
            thread.start()
            load = asyncio.run(
                rate_client.run(
                    lb_two.url + POLL_PATH, ca=str(fx.ca), rate=args.rate,
                    duration=restart_duration, connections=args.connections,
                    headers=[f"If-None-Match: {etag}"], expect=304,
                )
            )  # fmt: skip
            thread.join()
            outcome.update(load)
            results["restarts"] = outcome
            log(f"restarts: {outcome}")
            for process in (*instances, lb_one.process, lb_two.process, moto):
                common.stop(process)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    common.save("scaleout", results)
    print(report(results))


def rate_client_etag(url: str, ca: Path) -> str:
    import httpx

    return httpx.get(url, verify=common.ssl.create_default_context(cafile=str(ca))).headers["etag"]


def report(results: dict[str, object]) -> str:
    runs = results["throughput"]
    one = median([r["rps"] for r in runs["one"]])  # type: ignore[index]
    two = median([r["rps"] for r in runs["two"]])  # type: ignore[index]
    ratios = [b["rps"] / a["rps"] for a, b in zip(runs["one"], runs["two"], strict=False)]  # type: ignore[index]
    cpu_one = median([r["upstream_cpu_cores"] for r in runs["one"]])  # type: ignore[index]
    cpu_two = median([r["upstream_cpu_cores"] for r in runs["two"]])  # type: ignore[index]
    errors = sum(r["errors"] for r in runs["one"] + runs["two"])  # type: ignore[index, operator]
    restarts = results["restarts"]
    lines = [
        common.table(
            ["through nginx", "304 polls/s (median)", "fota CPU (cores)", "two / one", "errors"],
            [
                ["one fota instance", f"{one:,.0f}", f"{cpu_one:.2f}", "", ""],
                [
                    "two fota instances",
                    f"{two:,.0f}",
                    f"{cpu_two:.2f}",
                    f"{median(ratios):.2f}",
                    int(errors),
                ],
            ],
        ),
        "",
        common.table(
            [
                "restarts under load",
                "requests",
                "completed",
                "errors",
                "p50 ms",
                "p99 ms",
                "max ms",
                "restart a s",
                "restart b s",
            ],
            [
                [
                    f"{restarts['offered_rate']:.0f}/s for {restarts['duration']:.0f} s",
                    restarts["requests"],  # type: ignore[index]
                    restarts["completed"],
                    restarts["errors"],
                    f"{restarts['p50_ms']:.1f}",  # type: ignore[index]
                    f"{restarts['p99_ms']:.1f}",
                    f"{restarts['max_ms']:.1f}",  # type: ignore[index]
                    f"{restarts.get('restart_a_s', float('nan')):.1f}",
                    f"{restarts.get('restart_b_s', float('nan')):.1f}",  # type: ignore[union-attr]
                ]
            ],
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
