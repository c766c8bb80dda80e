"""Boot a saved emulated chip (flash + eFuse files) with no update server and watch it idle.

The e2e run keeps the chip as QEMU's kill left it (`$ESP_LAB/e2e/after-kill/`). Booted again
without the server, the firmware's update check fails and the update task sleeps for the poll
interval (`vTaskDelay`) with nothing else to do: the FreeRTOS tick is then the only thing that
wakes the CPU from WFI. This runs that for a while, on a copy of the files, with one or more QEMU
binaries, and counts the checks that came round and the panics, so two builds of QEMU (with and
without a patch) can be compared on the same chip (esp32/README.md, "End to end in QEMU").

    restart.py --state DIR [--qemu NAME=PATH ...] [--seconds 120] [--icount SHIFT] [--log FILE]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from esplab import Qemu, idf_env

PANIC = re.compile(r"Guru Meditation Error: (.*)")
CHECK = re.compile(r"secure_ota_app: update check: (\S+)")
DEV_MS = re.compile(r"^[IWE] \((\d+)\)")


def run_one(env: dict[str, str], name: str, qemu: str, state: Path, seconds: float, icount: int | None) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="restart-") as tmp:
        work = Path(tmp)
        for f in ("flash.bin", "efuse.bin"):
            shutil.copy2(state / f, work / f)
        # restrict=on: the guest reaches nothing on the host, so every check fails fast or times out
        q = Qemu(
            dict(env, ESP_QEMU=qemu), work / "flash.bin", work / "efuse.bin", work / "serial.log",
            icount=icount, nic="user,model=open_eth,restrict=on",
        )
        try:
            time.sleep(seconds)
        finally:
            q.kill()
        lines = [line for _, line in q.lines]
        serial = (work / "serial.log").read_text()
    checks = [(DEV_MS.match(x), CHECK.search(x)) for x in lines if CHECK.search(x)]
    panics = [PANIC.search(x) for x in lines if PANIC.search(x)]
    last_ms = max((int(m.group(1)) for m in (DEV_MS.match(x) for x in lines) if m), default=0)
    out = [
        f"{name}: {qemu}",
        f"  {seconds:.0f} s host time, {'-icount ' + str(icount) if icount is not None else 'host time'}; "
        f"last device timestamp {last_ms / 1000:.2f} s",
        f"  update checks that came round: {len(checks)}"
        + (" at " + ", ".join(f"{int(m.group(1)) / 1000:.1f} s" for m, _ in checks if m) if checks else ""),
        f"  panics: {len(panics)}" + ("".join(f"\n    {p.group(1).strip()}" for p in panics)),
    ]
    tail = [x for x in serial.splitlines() if x.strip()][-12:]
    out += ["  serial log, last lines:"] + ["    " + x for x in tail]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="folder with flash.bin and efuse.bin")
    parser.add_argument("--qemu", action="append", default=[], metavar="NAME=PATH", help="QEMU binaries to compare")
    parser.add_argument("--seconds", type=float, default=120.0, help="host seconds per run (default 120)")
    parser.add_argument("--icount", type=int, metavar="SHIFT", help="QEMU -icount SHIFT (default: host time)")
    parser.add_argument("--log", type=Path, help="write the report here too")
    args = parser.parse_args()
    if not 5 <= args.seconds <= 3600:
        parser.error("--seconds: 5..3600")
    for f in ("flash.bin", "efuse.bin"):
        if not (args.state / f).is_file():
            parser.error(f"--state: {args.state / f} missing")
    env = idf_env()
    qemus = [q.split("=", 1) for q in args.qemu] or [["built", env["ESP_QEMU"]]]
    if any(len(q) != 2 for q in qemus):
        parser.error("--qemu NAME=PATH")
    report = [f"esp32/qemu/restart.py on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, state {args.state}"]
    for name, path in qemus:
        report += run_one(env, name, path, args.state, args.seconds, args.icount)
    text = "\n".join(report) + "\n"
    print(text, end="")
    if args.log:
        args.log.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
