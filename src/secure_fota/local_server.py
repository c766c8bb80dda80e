"""Run ``fota server`` as a child process on a loopback port (demo, tests, benchmarks).

The server is the real one, started through its command line exactly as a user would, with
its own data directory; :class:`LocalServer` waits until ``/healthz`` answers over TLS and
stops the process (and only it) when done.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from secure_fota.errors import ConfigError
from secure_fota.tls_client import client_context

__all__ = ["LocalServer", "fota_command", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fota_command(*args: str, stdin: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run ``fota ARGS`` with this interpreter; return its output or raise ConfigError."""
    result = subprocess.run(
        [sys.executable, "-m", "secure_fota.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"`fota {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


class LocalServer:
    """``fota server run`` on 127.0.0.1 with TLS, its database migrated and users added."""

    def __init__(
        self,
        data_dir: Path,
        *,
        tls_cert: Path,
        tls_key: Path,
        ca_file: Path,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        log: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.ca_file = ca_file
        self.env = dict(env or {})
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = log or data_dir.parent / "server.log"
        self._args = [
            "server", "run", "--data-dir", str(data_dir), "--host", "127.0.0.1",
            "--port", str(self.port), "--tls-cert", str(tls_cert), "--tls-key", str(tls_key),
            "--workers", str(workers), *extra_args,
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None

    def admin(self, *args: str, stdin: str | None = None) -> str:
        """Run a ``fota server`` administration command on this server's data directory."""
        return fota_command(
            "server", *args, "--data-dir", str(self.data_dir), stdin=stdin, env=self.env
        )

    def add_user(self, name: str, password: str, role: str = "uploader") -> None:
        self.admin("user", "add", name, "--role", role, "--password-stdin", "--replace",
                   stdin=password + "\n")  # fmt: skip

    def start(self, timeout: float = 30.0) -> str:
        """Start the server and wait until it answers; return its base URL."""
        self.admin("db", "upgrade")
        with self.log.open("ab") as log:  # the child keeps its own descriptor
            self._process = subprocess.Popen(
                [sys.executable, "-m", "secure_fota.cli.main", *self._args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        try:
            self._wait_until_healthy(self._process, timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_until_healthy(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        context = client_context(self.ca_file)
        while True:
            if process.poll() is not None:
                raise ConfigError(f"the server exited at start; see {self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", verify=context, timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ConfigError(f"the server did not answer within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """``kill -9``: no clean shutdown (fault-injection tests)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
