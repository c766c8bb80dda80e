"""Flash-encryption probe: is an encrypted write in Espressif's QEMU right? (`make esp32-qemu-probe`)

The probe app (probe/) boots on a virgin emulated ESP32-C3 with flash encryption (development
mode): the bootloader burns a random XTS-AES key into the eFuses and encrypts the flash in
place; then the app writes 2 KiB of known plaintext with esp_partition_write into an encrypted
partition, which is the call secure_ota's resumable download makes into the OTA slot, and reads it back.

On the host, the key is read back from QEMU's eFuse file and espsecure (Espressif's tool,
independent of QEMU) decrypts the flash file:
  * control: the bootloader region, encrypted in place by the bootloader (ROM code path), must
    decrypt to the bootloader binary we built; this proves key and tool;
  * probe: the probe partition must decrypt to the pattern the app wrote. Lines that do not are
    listed with their flash addresses.

    probe.py [--qemu LABEL=PATH ...] [--log FILE]
Without --qemu, the QEMU built by build.sh (with our patches) is used.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from esplab import (
    HERE,
    LAB,
    LabError,
    Qemu,
    blank_efuses,
    build_idf_project,
    efuse_key_blocks,
    espsecure,
    fresh_dir,
    idf_env,
    merge_flash,
)

PROBE_OFFSET = 0x120000
PROBE_BYTES = 2048
LINE = 16


def pattern() -> bytes:
    """What fe_probe.c writes (see fill_pattern there)."""
    data = bytearray(((i // LINE) * 7 + (i % LINE) * 13 + 0x5A) & 0xFF for i in range(PROBE_BYTES))
    for n in range(PROBE_BYTES // LINE):
        data[n * LINE : n * LINE + 4] = n.to_bytes(4, "little")
    return bytes(data)


def decrypt(
    flash: Path, key: Path, offset: int, size: int, work: Path, env: dict[str, str], log: Path
) -> bytes:
    region, out = work / f"enc-{offset:x}.bin", work / f"dec-{offset:x}.bin"
    with flash.open("rb") as f:
        f.seek(offset)
        region.write_bytes(f.read(size))
    espsecure(
        [
            "decrypt_flash_data",
            "--aes_xts",
            "--keyfile",
            key,
            "--address",
            hex(offset),
            "--output",
            out,
            region,
        ],
        env,
        log,
    )
    return out.read_bytes()


def probe_one(
    label: str, qemu: str, fw: Path, work: Path, env: dict[str, str], report: list[str]
) -> bool:
    work = fresh_dir(work)
    log = work / "tools.log"
    flash, efuse = work / "flash.bin", work / "efuse.bin"
    merge_flash(
        flash,
        [
            (0x0, fw / "bootloader/bootloader.bin"),
            (0xD000, fw / "partition_table/partition-table.bin"),
            (0x20000, fw / "fe_probe.bin"),
        ],
        env,
        log,
    )
    blank_efuses(efuse)
    t0 = time.monotonic()
    q = Qemu(dict(env, ESP_QEMU=qemu), flash, efuse, work / "serial.log", icount=None)
    try:
        q.wait_for(r"Flash encryption completed", 300)
        readback = q.wait_for(r"fe_probe: readback: .*", 300).group(0)
        q.wait_for(r"fe_probe: probe done", 60)
    finally:
        q.kill()
    report.append(f"== {label}: {qemu}")
    report += [f"   device: {line}" for line in q.seen(r"flash_encrypt: |fe_probe: ")][:12]
    report.append(f"   device: {readback}  (QEMU run {time.monotonic() - t0:.0f} s)")
    keys = efuse_key_blocks(efuse)
    if len(keys) != 1:
        raise LabError(f"expected one burnt key block, found {sorted(keys)}")
    ((name, block),) = keys.items()
    key = work / "flash_encryption_key.bin"
    key.write_bytes(
        block[::-1]
    )  # eFuse blocks hold the key byte-reversed (espefuse burn_key reverses it)
    report.append(f"   host: eFuse {name} holds the XTS-AES-128 key the bootloader generated")

    boot = (fw / "bootloader/bootloader.bin").read_bytes()
    size = (len(boot) + 127) // 128 * 128
    ok_control = decrypt(flash, key, 0x0, size, work, env, log)[: len(boot)] == boot
    report.append(
        f"   control: bootloader region 0x0..0x{size:x} decrypts to bootloader.bin: {'yes' if ok_control else 'NO'}"
    )

    want = pattern()
    got = decrypt(flash, key, PROBE_OFFSET, PROBE_BYTES, work, env, log)
    bad = [
        n
        for n in range(PROBE_BYTES // LINE)
        if got[n * LINE : (n + 1) * LINE] != want[n * LINE : (n + 1) * LINE]
    ]
    addrs = [PROBE_OFFSET + n * LINE for n in bad]
    bit5 = sum(1 for a in addrs if a & 0x20)
    report.append(
        f"   probe: {len(bad)} of {PROBE_BYTES // LINE} lines of the probe partition decrypt wrongly"
    )
    if bad:
        report.append(
            f"   probe: of these, {bit5} have address bit 5 set; all lines with bit 5 set: {PROBE_BYTES // LINE // 2}"
        )
        report.append("   probe: first addresses: " + " ".join(f"0x{a:x}" for a in addrs[:16]))
        # what the wrong lines hold: a stale register line (the one 32 bytes before)?
        stale = sum(
            1
            for n in bad
            if n >= 2 and got[n * LINE : (n + 1) * LINE] == want[(n - 2) * LINE : (n - 1) * LINE]
        )
        report.append(f"   probe: {stale} of them hold the plaintext of the line 32 bytes before")
    return ok_control and not bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--qemu", action="append", default=[], metavar="LABEL=PATH", help="QEMU binaries to probe"
    )
    parser.add_argument("--log", type=Path, help="write the report here too")
    parser.add_argument(
        "--expect-defect",
        action="append",
        default=[],
        metavar="LABEL",
        help="this QEMU is expected to fail",
    )
    args = parser.parse_args()
    env = idf_env()
    qemus = [q.split("=", 1) for q in args.qemu] or [["patched", env["ESP_QEMU"]]]
    src = fresh_dir(LAB / "probe" / "src")
    shutil.copytree(HERE / "probe", src, dirs_exist_ok=True)
    build = LAB / "probe" / "build"
    t0 = time.monotonic()
    build_idf_project(
        src, build, [src / "sdkconfig.defaults"], env, LAB / "logs" / "probe-build.log"
    )
    report = [
        f"flash-encryption probe (esp32/qemu/probe.py), ESP-IDF {env['IDF_PATH']}, build {time.monotonic() - t0:.0f} s"
    ]
    verdicts = []
    for label, path in qemus:
        ok = probe_one(label, path, build, LAB / "probe" / label, env, report)
        expected_bad = label in args.expect_defect
        report.append(
            f"   verdict: {'encrypted writes correct' if ok else 'encrypted writes WRONG'}"
            + (" (expected: unpatched model)" if expected_bad and not ok else "")
        )
        verdicts.append(ok != expected_bad)
    text = "\n".join(report) + "\n"
    sys.stdout.write(text)
    if args.log:
        args.log.write_text(text)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as e:
        sys.exit(f"probe: {e}")
