"""Running secure-fota for real on this machine: the ``fota`` command line in a child process,
and an update server on a free loopback port, for the demo, the benchmarks and the tests.

* :func:`fota_argv`, :func:`run_fota`, :func:`fota_command`: ``fota ARGS`` with this
  interpreter, exactly as a user runs it.
* :class:`LocalServer`: ``fota server run`` in a child process with its own data directory,
  started when ``/healthz`` (or another path) answers over TLS, stopped (or killed) alone.
* :class:`ThreadedServer`: any ASGI app (``create_app(settings)``, the author's local service)
  under uvicorn in a thread of this process, when a test needs the app's own state.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from secure_fota.errors import ConfigError
from secure_fota.tls_client import client_context
from secure_fota.wire import HEALTH

__all__ = [
    "LocalServer",
    "ThreadedServer",
    "fota_argv",
    "fota_command",
    "free_port",
    "run_fota",
]

_LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


# -- the command line ------------------------------------------------------------------------


def fota_argv(*args: str) -> list[str]:
    """The argument vector of ``fota ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "secure_fota.cli.main", *args]


def run_fota(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``fota ARGS`` (``env`` on top of this process's environment); whatever it exits
    with, return its exit status and output."""
    return subprocess.run(
        fota_argv(*args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def fota_command(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> str:
    """Run ``fota ARGS``; return its output, or raise ConfigError with its error output."""
    result = run_fota(*args, stdin=stdin, env=env, timeout=timeout)
    if result.returncode != 0:
        raise ConfigError(f"`fota {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


# -- servers ---------------------------------------------------------------------------------


def _answers(url: str, verify: Any) -> bool:
    try:
        return httpx.get(url, verify=verify, timeout=1).is_success
    except httpx.HTTPError:
        return False


class _Running:
    """Started on entering a ``with`` block, stopped on leaving it."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalServer(_Running):
    """``fota server run`` on 127.0.0.1 in a child process, with its own data directory.

    ``tls_cert``/``tls_key`` are given as options (or other TLS options in ``extra_args``);
    ``ca_file`` is what the readiness check trusts (it may appear only once the server runs,
    as its development CA does). The child's output goes to ``log_file``. ``new_session``
    starts it as a process group leader (a benchmark stops its workers with it).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ca_file: Path,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        log_file: Path | None = None,
        ready_path: str = HEALTH,
        preexec: Callable[[], None] | None = None,
        new_session: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.ca_file = ca_file
        self.env = dict(env or {})
        self.port = port or free_port()
        self.url = f"https://{_LOOPBACK}:{self.port}"
        self.log_file = log_file or data_dir.parent / "server.log"
        self._ready_url = self.url + ready_path
        self._preexec = preexec
        self._new_session = new_session
        tls = ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)] if tls_cert else []
        self._args = [
            "server", "run", "--data-dir", str(data_dir), "--host", _LOOPBACK,
            "--port", str(self.port), *tls, "--workers", str(workers), *extra_args,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ConfigError("the server is not running")
        return self.process.pid

    def admin(self, *args: str, stdin: str | None = None) -> str:
        """Run a ``fota server`` administration command on this server's data directory."""
        return fota_command(
            "server", *args, "--data-dir", str(self.data_dir), stdin=stdin, env=self.env
        )

    def add_user(self, name: str, password: str, role: str = "uploader") -> None:
        self.admin("user", "add", name, "--role", role, "--password-stdin", "--replace",
                   stdin=password + "\n")  # fmt: skip

    def start(self, timeout: float = 30.0) -> Self:
        """Start the server (again, after :meth:`kill`: same port and data) and wait until it
        answers. It applies the database migrations itself before it serves."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                fota_argv(*self._args),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                preexec_fn=self._preexec,  # noqa: PLW1509 -- e.g. setrlimit, before exec
                start_new_session=self._new_session,
            )
        try:
            self._wait_until_ready(self.process, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise ConfigError(f"the server exited at start; see {self.log_file}")
            if self.ca_file.exists() and _answers(self._ready_url, client_context(self.ca_file)):
                return
            if time.monotonic() > deadline:
                raise ConfigError(f"the server did not answer within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 15) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL); return its exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        """``kill -9``: no clean shutdown (fault-injection tests). Started with ``new_session``,
        the whole process group goes at once (workers included, as when a service manager kills
        the service); otherwise only the main process, and its workers exit on their own."""
        if self.process is not None:
            if self._new_session:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()
            self.process = None

    def log_tail(self, size: int = 4000) -> str:
        """The end of the server's output."""
        if not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")[-size:]


class ThreadedServer(_Running):
    """``app`` under uvicorn in a thread of this process, on a 127.0.0.1 port bound before it
    starts; https with ``certfile``/``keyfile``. ``options`` go to ``uvicorn.Config``."""

    def __init__(
        self,
        app: Any,
        *,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        log_level: str = "warning",
        **options: Any,
    ) -> None:
        import uvicorn

        self.app = app
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((_LOOPBACK, 0))
        self.port = int(self._sock.getsockname()[1])
        scheme = "https" if certfile else "http"
        self.url = f"{scheme}://{_LOOPBACK}:{self.port}"
        if certfile:
            options.update(ssl_certfile=str(certfile), ssl_keyfile=str(keyfile))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, **options))
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self, timeout: float = 30.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("uvicorn did not start (see its log)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(15)
        self._sock.close()
