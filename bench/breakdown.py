"""Where the default server's time per request goes, on 127.0.0.1 (docs/PERFORMANCE.md §2,
"What remains per request").

CPU time of the server's processes per answered request under `wrk -t1 -c32` (keep-alive),
interleaved --repeats times, for:

* fota over TLS:   poll-200, poll-nonce (a freshness statement signed per poll), range16
* fota over plain HTTP (`--insecure-http-for-localhost-only`, the same data): poll-200, range16
* bare over TLS and plain HTTP: bench/bare_app.py under granian (the same bytes and about the
  same headers, nothing else): what granian's HTTP/1.1, TLS and ASGI bridge cost alone

and py-spy samples of the fota worker during TLS poll-200 and range16, grouped by what the
Python code was doing. Differences give the breakdown: TLS = (fota TLS - fota plain),
HTTP/ASGI of granian = bare plain, our Python = fota plain - bare plain, signing = poll-nonce -
poll-200.

    .venv/bin/python bench/breakdown.py [--duration 5] [--repeats 3] [--no-py-spy]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import MB, log, median
from server import BINARY_PATH, NONCE, POLL_PATH, RANGE16_LUA, wrk

from secure_fota.devtools.harness import free_port

#: py-spy frames of our app -> group (first match from the innermost frame outwards)
GROUPS = [
    ("freshness", "app: signing the freshness statement"),
    ("prometheus_client", "app: metrics (counter and histogram)"),
    ("metrics.py", "app: metrics (counter and histogram)"),
    ("cache.py", "app: cache lookups (newest, release, image; generation check)"),
    ("generation.py", "app: cache lookups (newest, release, image; generation check)"),
    ("fastpath_binary.py", "app: fast path (parse, plan, headers, slice)"),
    ("fastpath.py", "app: fast path (parse, plan, headers, slice)"),
    ("delivery.py", "app: fast path (parse, plan, headers, slice)"),
    ("ranges.py", "app: fast path (parse, plan, headers, slice)"),
    ("head_limits.py", "app: request-head limits middleware"),
    ("proxy_headers", "app: forwarded-headers middleware"),
    ("starlette", "app: FastAPI/Starlette"),
    ("fastapi", "app: FastAPI/Starlette"),
]


def group_of(stack: str) -> str:
    """What one py-spy sample (its frames, outermost first) was doing."""
    if not stack.strip():
        return "no Python frame (native code holding the thread)"
    frames = stack.split(";")
    if any("secure_fota/" in frame or "proxy_headers" in frame for frame in frames):
        for frame in reversed(frames):
            group = next((name for key, name in GROUPS if key in frame), None)
            if group is not None:
                return group
        return "app: dispatch and the rest of our code"
    if any("aiosqlite" in frame for frame in frames):
        return "aiosqlite's connection thread (waiting)"
    if any("granian/" in frame for frame in frames):
        return "granian: Rust HTTP/1.1, TLS, ASGI bridge and event loop (no app frame)"
    return "other Python"


def start_plain_fota(fx: common.Fixtures, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = common.start(
        [
            str(common.BIN / "fota"), "server", "run", "--insecure-http-for-localhost-only",
            "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port),
        ],
        log_file=common.WORK / "logs" / "breakdown-plain.log",
        env={
            "FOTA_FRESHNESS_KEY_FILE": str(fx.keys / "freshness_key.pem"),
            "FOTA_GC_ON_START": "false", "FOTA_MIGRATE_ON_START": "false",
            "FOTA_LOG_LEVEL": "warning",
        },
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", process)
    return process, url


def start_bare(
    fx: common.Fixtures, manifest: Path, *, tls: bool
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [
        str(common.BIN / "granian"), "--interface", "asgi", "--http", "1", "--no-ws",
        "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
        "--working-dir", str(Path(__file__).resolve().parent), "--log-level", "warning",
    ]  # fmt: skip
    if tls:
        argv += ["--ssl-certificate", str(fx.tls / "server.pem")]
        argv += ["--ssl-keyfile", str(fx.tls / "server.key")]
    process = common.start(
        [*argv, "bare_app:app"],
        log_file=common.WORK / "logs" / f"bare-{'tls' if tls else 'plain'}.log",
        env={"BARE_MANIFEST": str(manifest), "PYTHONPATH": str(Path(__file__).resolve().parent)},
    )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    if tls:
        common.wait_https(url + "/m", fx.ca, process=process)
    else:
        wait_http(url + "/m", process)
    return process, url


def wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 40
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


def measure(url: str, pids, kind: str, args: argparse.Namespace) -> dict[str, float]:  # type: ignore[no-untyped-def]
    script = None
    if kind == "range16":
        script = (RANGE16_LUA, [str(args.image_size), str(16 * 1024)])
    before = common.cpu_seconds(pids())
    result = wrk(url, duration=args.duration, connections=32, script=script)
    cpu = common.cpu_seconds(pids()) - before
    requests = result["rps"] * max(1, round(args.duration))
    result["cpu_us_per_request"] = cpu / requests * 1e6 if requests else float("nan")
    return result


def py_spy(pid: int, url: str, kind: str, args: argparse.Namespace) -> dict[str, float]:
    """Share of the worker's samples per group while wrk runs ``kind``."""
    out = common.WORK / "results" / f"py-spy-{kind}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            str(common.BIN / "py-spy"), "record", "--pid", str(pid), "--rate", "250",
            "--duration", str(int(args.duration)), "--format", "raw", "--output", str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(common.WORK / "logs" / f"py-spy-{kind}.log").open("w"),
    )  # fmt: skip
    time.sleep(0.3)
    script = (RANGE16_LUA, [str(args.image_size), str(16 * 1024)]) if kind == "range16" else None
    rps = wrk(url, duration=args.duration, connections=32, script=script)["rps"]
    spy.wait(timeout=args.duration + 30)
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        total += int(number)
        counts[group_of(stack)] += int(number)
    seconds = total / 250
    return {
        "rps": rps,
        "python_samples_s": seconds,
        **{group: count / 250 for group, count in counts.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-py-spy", action="store_true")
    args = parser.parse_args()
    fx = common.fixtures()
    manifest, binary = fx.release(MB)
    args.image_size = binary.stat().st_size
    env = {"FOTA_LOG_LEVEL": "warning"}
    results: dict[str, object] = {"machine": common.machine(), "args": vars(args)}
    with common.cleanup():
        server = common.start_server(fx, "breakdown", env=env)
        common.upload(fx, server.url, manifest)
        plain, plain_url = start_plain_fota(fx, server.data)
        bare_tls, bare_tls_url = start_bare(fx, manifest, tls=True)
        bare_plain, bare_plain_url = start_bare(fx, manifest, tls=False)
        pids = {
            "fota-tls": server.pids,
            "fota-plain": lambda: common.descendants(plain.pid),
            "bare-tls": lambda: common.descendants(bare_tls.pid),
            "bare-plain": lambda: common.descendants(bare_plain.pid),
        }
        cases = [
            ("fota-tls", "poll-200", server.url + POLL_PATH),
            ("fota-tls", "poll-nonce", f"{server.url}{POLL_PATH}&nonce={NONCE}"),
            ("fota-tls", "range16", server.url + BINARY_PATH),
            ("fota-plain", "poll-200", plain_url + POLL_PATH),
            ("fota-plain", "range16", plain_url + BINARY_PATH),
            ("bare-tls", "poll-200", bare_tls_url + "/m"),
            ("bare-tls", "range16", bare_tls_url + "/r"),
            ("bare-plain", "poll-200", bare_plain_url + "/m"),
            ("bare-plain", "range16", bare_plain_url + "/r"),
        ]
        runs: dict[str, list[dict[str, float]]] = {f"{t}/{k}": [] for t, k, _ in cases}
        for repeat in range(args.repeats):
            for target, kind, url in cases if repeat % 2 == 0 else list(reversed(cases)):
                result = measure(url, pids[target], kind, args)
                runs[f"{target}/{kind}"].append(result)
                log(
                    f"#{repeat} {target} {kind}: {result['rps']:.0f} req/s, "
                    f"{result['cpu_us_per_request']:.1f} us CPU/request, errors {result['errors']:.0f}"
                )
        results["runs"] = runs
        if not args.no_py_spy and shutil.which(str(common.BIN / "py-spy")):
            # the busiest process of the tree is the worker (not the supervisor, not
            # multiprocessing's resource tracker)
            worker = sorted(server.pids(), key=lambda pid: common.cpu_seconds([pid]))
            spied = {}
            for kind, url in (
                ("poll-200", server.url + POLL_PATH),
                ("range16", server.url + BINARY_PATH),
            ):
                spied[kind] = py_spy(worker[-1], url, kind, args)
                log(f"py-spy {kind}: {spied[kind]}")
            results["py_spy"] = spied
    common.save("breakdown", results)
    rows = []
    for key, values in runs.items():
        rows.append(
            [
                key,
                f"{median([v['rps'] for v in values]):,.0f}",
                f"{median([v['cpu_us_per_request'] for v in values]):.1f}",
                int(sum(v["errors"] for v in values)),
            ]
        )
    print(common.table(["target/test", "req/s", "server CPU µs per request", "errors"], rows))
    if "py_spy" in results:
        for kind, spied in results["py_spy"].items():  # type: ignore[union-attr]
            total = spied["python_samples_s"]
            print(
                f"\npy-spy, fota over TLS, {kind}: {spied['rps']:.0f} req/s; Python busy {total:.2f} s of {args.duration:.0f} s"
            )
            for group, seconds in sorted(spied.items(), key=lambda item: -item[1]):
                if group not in ("rps", "python_samples_s"):
                    print(f"  {group}: {seconds / total:.0%}")


if __name__ == "__main__":
    main()
