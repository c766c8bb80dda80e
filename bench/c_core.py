"""C core on the host: bench/c_core_bench.c against the same mbedTLS primitives alone.

Compiles bench/c_core_bench.c with the core's sources (esp32/components/secure_ota/core/src; the
bench sees only the public header, core/include/so_core.h) at -O2 without sanitizers against
Debian's mbedTLS 2.28 and cJSON, into build/bench/c_core_bench, and runs it on the fixtures'
4 MiB release.
Goal: the core within 1.2x of the primitives. Also times opening the same release's manifest
made for a key set whose manifest key is P-256 (``--manifest-encryption ec-p256``,
ECDH-ES+A256KW) against the RSA-4096 one, in the same repeats.

    .venv/bin/python bench/c_core.py [--repeats 31] [--image-mib 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import MB, ROOT, WORK, log

COMPONENT = ROOT / "esp32" / "components" / "secure_ota"


def build() -> Path:
    cc = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if cc is None or not Path("/usr/include/mbedtls/version.h").exists():
        raise SystemExit("needs a C compiler, libmbedtls-dev and libcjson-dev")
    out = WORK / "c_core_bench"
    sources = sorted(str(p) for p in (COMPONENT / "core" / "src").glob("*.c"))
    argv = [
        cc, "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L",
        "-I", str(COMPONENT / "core" / "include"), "-I", str(COMPONENT / "private_include"),
        "-I", "/usr/include/cjson", "-o", str(out), str(ROOT / "bench" / "c_core_bench.c"),
        *sources, "-lmbedcrypto", "-lcjson", "-lm",
    ]  # fmt: skip
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run(argv, check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--image-mib", type=int, default=4)
    args = parser.parse_args()
    fx = common.fixtures()
    manifest, binary = fx.release(args.image_mib * MB)
    ec_keys = fx.root / "keys-ec-p256"
    ec_out = fx.root / "releases" / "ec-p256"
    ec_manifest = ec_out / "app-1.manifest"
    if not ec_manifest.exists():
        shutil.rmtree(ec_keys, ignore_errors=True)
        common.fota("keys", "generate", "--out", str(ec_keys), "--manifest-encryption", "ec-p256")
        ec_out.mkdir(parents=True, exist_ok=True)
        common.fota(
            "author", "release", str(fx.image(args.image_mib * MB)), "--seq", "1",
            "--device-type", common.DEVICE_TYPE, "--name", "app", "--keys", str(ec_keys),
            "--out", str(ec_out),
        )  # fmt: skip
    program = build()
    out = subprocess.run(
        [str(program), str(fx.keys), str(manifest), str(binary), str(args.repeats),
         str(ec_keys), str(ec_manifest)],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    result = json.loads(out)
    log(json.dumps(result))
    common.save("c_core", {"machine": common.machine(), "result": result})
    rows = [
        ["decrypt + verify one manifest", result["manifest_open_ms"], result["manifest_floor_ms"]],
        ["SHA-256 of 4 MiB", result["sha256_4mib_core_ms"], result["sha256_4mib_mbedtls_ms"]],
        [
            f"whole image check ({args.image_mib} MiB release)",
            result["image_check_ms"],
            result["image_floor_ms"],
        ],
    ]
    print(common.table(
        ["operation", "core ms", "mbedTLS primitives alone ms", "ratio", "goal (<= 1.2x)"],
        [[r[0], f"{r[1]:.2f}", f"{r[2]:.2f}", f"{r[1] / r[2]:.2f}", "met" if r[1] / r[2] <= 1.2 else "missed"] for r in rows],
    ))  # fmt: skip
    rsa_ms, ec_ms = result["manifest_open_ms"], result["manifest_open_ec_ms"]
    print(common.table(
        ["manifest open (so_manifest_open)", "ms"],
        [["RSA-4096 (RSA-OAEP-256)", f"{rsa_ms:.2f}"], ["EC P-256 (ECDH-ES+A256KW)", f"{ec_ms:.2f}"],
         ["ratio", f"{rsa_ms / ec_ms:.1f}x"]],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
