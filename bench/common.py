"""Shared helpers for the benchmarks in bench/: fixtures, processes, statistics.

Everything runs on 127.0.0.1 and every process a benchmark starts is started in its own
process group and stopped (TERM, then KILL) when the benchmark ends, also on error.
Fixtures (keys, TLS files, images, releases) live in build/bench/ and are reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from secure_fota.devtools.harness import LocalServer, fota_command

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
WORK = ROOT / "build" / "bench"
RESULTS = WORK / "results"
PY = str(BIN / "python")
DEVICE_TYPE = "bench-sensor"
USER, PASSWORD = "bench-uploader", "bench-password-123"
MB = 1024 * 1024

_started: list[subprocess.Popen[bytes]] = []


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fota(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    return fota_command(*args, stdin=stdin, env=env, timeout=300)


# ---- fixtures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixtures:
    root: Path
    keys: Path
    tls: Path

    @property
    def ca(self) -> Path:
        return self.tls / "ca.pem"

    def image(self, size: int) -> Path:
        """A valid ESP32 app image of ``size`` bytes (built once)."""
        path = self.root / "images" / f"app-{size}.bin"
        if not path.exists():
            from secure_fota.formats.app_image_builder import ImageSpec, build_app_image

            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(build_app_image(ImageSpec(size=size, version="1.0.0", seed=size)))
        return path

    def release(self, size: int, seq: int = 1) -> tuple[Path, Path]:
        """(manifest, binary) of a release of a ``size``-byte image (built once)."""
        out = self.root / "releases" / f"{size}-{seq}"
        manifest, binary = out / f"app-{seq}.manifest", out / f"app-{seq}.bin"
        if not manifest.exists():
            out.mkdir(parents=True, exist_ok=True)
            fota(
                "author", "release", str(self.image(size)), "--seq", str(seq),
                "--device-type", DEVICE_TYPE, "--name", "app", "--keys", str(self.keys),
                "--out", str(out),
            )  # fmt: skip
        return manifest, binary


def fixtures() -> Fixtures:
    sys.path.insert(0, str(ROOT / "src"))
    root = WORK / "fixtures"
    keys, tls = root / "keys", root / "tls"
    if not (keys / "freshness_key.pem").exists():
        shutil.rmtree(keys, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        fota("keys", "generate", "--out", str(keys))
    if not (tls / "server.key").exists():
        shutil.rmtree(tls, ignore_errors=True)
        fota("keys", "tls", "--out", str(tls), "--host", "127.0.0.1", "--host", "localhost")
    return Fixtures(root=root, keys=keys, tls=tls)


# ---- processes -----------------------------------------------------------------------------


def start(
    argv: Sequence[str], *, log_file: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    _started.append(process)
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # workers of a multi-process server live in the same group: make sure they are gone
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process in _started:
        _started.remove(process)


def stop_all() -> None:
    for process in list(_started):
        stop(process)


def wait_https(
    url: str, ca: Path, timeout: float = 40, process: subprocess.Popen[bytes] | None = None
) -> None:
    import httpx

    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, verify=context, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


def descendants(pid: int) -> list[int]:
    """pid and all its descendant processes (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the given processes."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_kib(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# ---- the update server ---------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    data: Path

    def pids(self) -> list[int]:
        return descendants(self.process.pid)


def prepare_server_data(data: Path, env: dict[str, str] | None = None) -> None:
    common = ["--data-dir", str(data)]
    fota("server", "db", "upgrade", *common, env=env)
    fota(
        "server", "user", "add", USER, "--role", "uploader", "--password-stdin", "--replace",
        *common, stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip


def start_server(
    fx: Fixtures,
    name: str,
    *,
    workers: int = 1,
    port: int | None = None,
    env: dict[str, str] | None = None,
    prepare: bool = True,
) -> Server:
    data = WORK / "servers" / name
    env = {"FOTA_FRESHNESS_KEY_FILE": str(fx.keys / "freshness_key.pem"), **(env or {})}
    if prepare:
        prepare_server_data(data, env)
    server = LocalServer(
        data,
        tls_cert=fx.tls / "server.pem",
        tls_key=fx.tls / "server.key",
        ca_file=fx.ca,
        env=env,
        workers=workers,
        port=port,
        log_file=WORK / "logs" / f"server-{name}.log",
        new_session=True,  # its workers stop with it (stop() kills the group)
    )
    server.start(timeout=40)
    process = server.process
    assert process is not None
    _started.append(process)
    if workers > 1:  # every worker must be up before we measure
        deadline = time.monotonic() + 30
        while len(descendants(process.pid)) < workers + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
    return Server(process=process, url=server.url, port=server.port, data=data)


def upload(fx: Fixtures, url: str, manifest: Path, seq: int = 1, *, new_type: bool = True) -> None:
    """``fota author upload`` of ``manifest``'s release (``new_type``: the first of its type)."""
    fota(
        "author", "upload", str(manifest.parent), "--seq", str(seq), "--device-type", DEVICE_TYPE,
        "--name", "app", "--server", url, "--user", USER, "--ca", str(fx.ca),
        *(["--new-device-type"] if new_type else []),
        env={"FOTA_UPLOAD_PASSWORD": PASSWORD},
    )  # fmt: skip


# ---- nginx ---------------------------------------------------------------------------------


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    prefix: Path
    port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return descendants(self.process.pid)


def start_nginx(name: str, template: str, values: dict[str, str], ca: Path | None = None) -> Nginx:
    """Run nginx in the foreground (``daemon off``) with its own prefix, pid file and logs."""
    prefix = WORK / "nginx" / name
    shutil.rmtree(prefix, ignore_errors=True)
    (prefix / "logs").mkdir(parents=True)
    (prefix / "tmp").mkdir()
    text = (ROOT / "bench" / template).read_text()
    values = {"prefix": str(prefix), **values}
    for key, value in values.items():
        text = text.replace("@" + key + "@", value)
    left = re.findall(r"@[a-z_]+@", text)
    if left:
        raise ValueError(f"{template}: unfilled {left}")
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    process = start(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")],
        log_file=prefix / "logs" / "stdout.log",
    )
    port = int(values["port"])
    if ca is not None:
        wait_https(f"https://127.0.0.1:{port}/healthz", ca, process=process)
    else:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"nginx {name} did not start: {(prefix / 'logs/error.log').read_text()}"
                )
            time.sleep(0.1)
    return Nginx(process=process, prefix=prefix, port=port)


# ---- statistics and reporting ---------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.1f} GiB"

    def version(argv: list[str]) -> str:
        with contextlib.suppress(OSError):
            out = subprocess.run(argv, capture_output=True, text=True, check=False)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        return "?"

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "nginx": version([NGINX, "-v"]),
        "wrk": version(["wrk", "-v"]),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def save(name: str, data: object) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    log(f"results: {path}")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def cleanup() -> Iterator[None]:
    """Stop every process started through :func:`start`, whatever happens."""

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    finally:
        stop_all()
        signal.signal(signal.SIGTERM, old)
