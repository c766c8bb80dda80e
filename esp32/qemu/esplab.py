"""Shared pieces of the QEMU scripts (probe.py, e2e.py): the ESP-IDF environment build.sh wrote,
firmware builds, signing and flash images, eFuse files, and a QEMU runner that reads the serial
log line by line.

Standard library only, so any python3 can run it; ESP-IDF's tools (idf.py, esptool, espsecure)
run in the ESP-IDF Python environment that build.sh created.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAB = Path(os.environ.get("ESP_LAB", "/work/esp32-lab"))
IDF_TAG = os.environ.get("ESP_IDF_TAG", "v5.2.6")
FLASH_SIZE = 4 * 1024 * 1024
EFUSE_FILE_SIZE = 1024
# EFUSE_RD_MAC_SPI_SYS_3 (BLOCK1 word 3) at file offset 0x24: WAFER_VERSION_MINOR_LOW (bits 18..20)
# = 3, chip revision v0.3, what QEMU assumes when it is given no eFuse file
EFUSE_CHIP_REV_OFFSET = 0x24
EFUSE_CHIP_REV_V0_3 = 3 << 18
# BLOCK4..BLOCK9 (KEY0..KEY5), 32 bytes each, in the file QEMU keeps them in (offset from BLOCK0)
EFUSE_KEY_BLOCKS = [(f"KEY{i}", 0x9C - 0x2C + 0x20 * i) for i in range(6)]


class LabError(RuntimeError):
    pass


def idf_env() -> dict[str, str]:
    env_file = LAB / f"env-{IDF_TAG}.sh"
    if not env_file.exists():
        raise LabError(f"{env_file} missing: run `make esp32-qemu` (esp32/qemu/build.sh) first")
    env = dict(os.environ)
    for line in env_file.read_text().splitlines():
        m = re.match(r"export (\w+)=(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2).replace("$PATH", env.get("PATH", ""))
    return env


def idf_python(env: dict[str, str]) -> str:
    return f"{env['IDF_PYTHON_ENV_PATH']}/bin/python"


def run(
    cmd: Sequence[str | Path], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> None:
    """Run a command, its output appended to log; raise LabError with the tail on failure."""
    with log.open("a") as f:
        f.write(f"$ {' '.join(map(str, cmd))}\n")
        f.flush()
        r = subprocess.run(
            [str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
    if r.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise LabError(
            f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed (rc={r.returncode}), log {log}:\n{tail}"
        )


def build_idf_project(
    project: Path, build: Path, defaults: list[Path], env: dict[str, str], log: Path, jobs: int = 2
) -> None:
    """Configure (once) and build an ESP-IDF project for esp32c3 into build/ (incremental)."""
    env = dict(env, SDKCONFIG_DEFAULTS=";".join(str(d) for d in defaults))
    # ESP-IDF applies defaults only to options an existing sdkconfig lacks: when the defaults
    # change, configure afresh
    stamp = "\n".join(f"{d}\n{d.read_text()}" for d in defaults)
    if (build / ".defaults").exists() and (build / ".defaults").read_text() != stamp:
        shutil.rmtree(build)
    idf = [
        idf_python(env),
        f"{env['IDF_PATH']}/tools/idf.py",
        "-DCMAKE_C_COMPILER_WORKS=1",
        "-DCMAKE_CXX_COMPILER_WORKS=1",
        "-B",
        str(build),
        "-DSDKCONFIG=" + str(build / "sdkconfig"),
    ]
    if not (build / "build.ninja").exists():
        run([*idf, "set-target", "esp32c3"], log, env=env, cwd=project)
        (build / ".defaults").write_text(stamp)
    run(["nice", "-n", "5", "ninja", "-C", build, f"-j{jobs}", "all"], log, env=env)


def espsecure(args: Sequence[str | Path], env: dict[str, str], log: Path) -> None:
    run([idf_python(env), "-m", "espsecure", *args], log, env=env)


def esptool(args: Sequence[str | Path], env: dict[str, str], log: Path) -> None:
    run([idf_python(env), "-m", "esptool", *args], log, env=env)


def merge_flash(out: Path, parts: list[tuple[int, Path]], env: dict[str, str], log: Path) -> None:
    args: list[str | Path] = [
        "--chip",
        "esp32c3",
        "merge_bin",
        "--fill-flash-size",
        "4MB",
        "-o",
        out,
    ]
    args += ["--flash_mode", "dio", "--flash_freq", "80m", "--flash_size", "4MB"]
    for offset, path in parts:
        args += [hex(offset), path]
    esptool(args, env, log)


def blank_efuses(path: Path) -> None:
    """A virgin chip's eFuses (revision v0.3): nothing burnt, so the first boot provisions."""
    data = bytearray(EFUSE_FILE_SIZE)
    data[EFUSE_CHIP_REV_OFFSET : EFUSE_CHIP_REV_OFFSET + 4] = EFUSE_CHIP_REV_V0_3.to_bytes(
        4, "little"
    )
    path.write_bytes(bytes(data))


def efuse_key_blocks(path: Path) -> dict[str, bytes]:
    """The non-empty KEY0..KEY5 blocks of a QEMU eFuse file, as stored (byte-reversed keys)."""
    data = path.read_bytes()
    return {
        name: data[off : off + 32] for name, off in EFUSE_KEY_BLOCKS if any(data[off : off + 32])
    }


class Qemu:
    """qemu-system-riscv32 -M esp32c3 with the serial console captured to a log file.

    wait_for() scans the lines printed since the last match (or since start), so a test can
    assert the device's steps in order; every line is also kept with its host time.
    """

    def __init__(
        self,
        env: dict[str, str],
        flash: Path,
        efuse: Path,
        log: Path,
        *,
        icount: int | None = 3,
        nic: str | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        cmd = [env["ESP_QEMU"], "-nographic", "-L", env["ESP_QEMU_BIOS"], "-machine", "esp32c3"]
        if icount is not None:
            # guest time advances with executed instructions (2**icount ns each), not host time
            cmd += ["-icount", str(icount)]
        cmd += ["-drive", f"file={flash},if=mtd,format=raw"]
        cmd += ["-drive", f"file={efuse},if=none,format=raw,id=efuse"]
        cmd += ["-global", "driver=nvram.esp32c3.efuse,property=drive,value=efuse"]
        cmd += ["-nic", nic] if nic else ["-nic", "none"]
        cmd += list(extra)
        self.cmd = cmd
        self.log_path = log
        self.lines: list[tuple[float, str]] = []
        self.pos = 0
        self.started = time.monotonic()
        self._cond = threading.Condition()
        self._log = log.open("a")
        self._log.write(f"# {' '.join(cmd)}\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            t = time.monotonic() - self.started
            self._log.write(f"[{t:8.2f}] {line}\n")
            self._log.flush()
            with self._cond:
                self.lines.append((t, line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float, *, fail: str | None = None) -> re.Match[str]:
        """The first line from the current position matching pattern; a line matching fail, the
        emulator's exit, or the timeout (host seconds) raise LabError."""
        rx, bad = re.compile(pattern), re.compile(fail) if fail else None
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self.pos < len(self.lines):
                    line = self.lines[self.pos][1]
                    self.pos += 1
                    m = rx.search(line)
                    if m:
                        return m
                    if bad and bad.search(line):
                        raise LabError(
                            f"unexpected device line: {line!r} (waiting for /{pattern}/)"
                        )
                if self.proc.poll() is not None:
                    raise LabError(
                        f"QEMU exited (rc={self.proc.returncode}) while waiting for /{pattern}/"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabError(
                        f"timeout after {timeout:.0f} s waiting for /{pattern}/ (log {self.log_path})"
                    )
                self._cond.wait(min(left, 1.0))

    def seen(self, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        with self._cond:
            return [line for _, line in self.lines if rx.search(line)]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=5)
        self._log.write(f"# QEMU killed at {time.monotonic() - self.started:.2f} s\n")
        self._log.close()


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
