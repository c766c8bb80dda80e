"""Compile every secure_ota source (and the example's main) against real ESP-IDF headers.

`make esp32-idf-check`. For each ESP-IDF release prepared by build.sh (v5.2.6 always; v5.5.5
when `ESP_IDF_TAG=v5.5.5 esp32/qemu/build.sh idf venv registry` has been run) and each
configuration below, the example is configured for esp32c3 by ESP-IDF itself (Kconfig, the
component manager, CMake) in a copy outside the repository, then each source file of the
component and of main/ is compiled with the exact command of the build's compile_commands.json
(IDF's own flags: -Werror=all -Wextra ...). Any error or warning in the project's files fails.

This is what keeps esp32/host/idf_stubs honest: the stubs are hand-written copies of ESP-IDF
declarations; this compiles the same sources against the real ones.

    python3 esp32/qemu/idf_check.py [--idf v5.2.6 ...] [--config NAME ...] [--log FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAB = Path(os.environ.get("ESP_LAB", "/work/esp32-lab"))

# name -> lines added after the example's sdkconfig.defaults
CONFIGS: dict[str, list[str]] = {
    # the example as shipped (Wi-Fi, Secure Boot V2, flash encryption, resumable, TLS 1.2 or 1.3)
    "defaults": [],
    "resumable-off": ["CONFIG_SECURE_OTA_RESUMABLE=n"],
    "tls-1.2-only": ["CONFIG_SECURE_OTA_TLS_1_2_ONLY=y"],
    # device reports off, and on with a configured device id
    "reports-off": ["CONFIG_SECURE_OTA_REPORTS=n"],
    "device-id": ['CONFIG_SECURE_OTA_DEVICE_ID="unit-7"'],
    # the id polls send needs no reports
    "reports-off-device-id": ["CONFIG_SECURE_OTA_REPORTS=n", 'CONFIG_SECURE_OTA_DEVICE_ID="unit-7"'],
    # the QEMU build: OpenCores Ethernet instead of Wi-Fi, metrics on (sdkconfig.qemu)
    "qemu": ["@sdkconfig.qemu"],
}
# upstream Mbed TLS (standing in for espressif/mbedtls) lacks mbedtls_gcm_context_soft, which
# IDF >= 5.3 needs with this option on; it concerns IDF's port, not secure_ota
UPSTREAM_MBEDTLS = ["CONFIG_MBEDTLS_GCM_SUPPORT_NON_AES_CIPHER=n"]
OUR_FILES = re.compile(r"/components/secure_ota/|/secure_ota_app/main/")


def idf_env(tag: str) -> dict[str, str]:
    env_file = LAB / f"env-{tag}.sh"
    if not env_file.exists():
        raise SystemExit(f"{env_file} missing: run ESP_IDF_TAG={tag} esp32/qemu/build.sh first")
    env = dict(os.environ)
    for line in env_file.read_text().splitlines():
        m = re.match(r"export (\w+)=(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2).replace("$PATH", env.get("PATH", ""))
    return env


def configure(tag: str, name: str, env: dict[str, str], out: list[str]) -> Path | None:
    work = LAB / "idf-check" / tag / name
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(
        REPO / "esp32",
        work / "esp32",
        ignore=shutil.ignore_patterns("build*", "managed_components"),
    )
    app = work / "esp32" / "examples" / "secure_ota_app"
    # main embeds the device keys (EMBED_TXTFILES); nothing is linked here, so placeholders do
    for pem in ("ca_cert", "manifest_encryption_key", "pre_encryption_key", "manifest_signing_pub",
                "freshness_pub", "secure_boot_signing_pub"):
        (app / "keys" / f"{pem}.pem").write_text("placeholder: compile check only\n")
    extra: list[str] = []
    for line in CONFIGS[name]:
        extra += (HERE / line[1:]).read_text().splitlines() if line.startswith("@") else [line]
    (work / "extra.defaults").write_text("\n".join(extra + UPSTREAM_MBEDTLS) + "\n")
    env = dict(env, SDKCONFIG_DEFAULTS=f"sdkconfig.defaults;{work / 'extra.defaults'}")
    cmd = [
        f"{env['IDF_PYTHON_ENV_PATH']}/bin/python",
        f"{env['IDF_PATH']}/tools/idf.py",
        "-DCMAKE_C_COMPILER_WORKS=1",
        "-DCMAKE_CXX_COMPILER_WORKS=1",
        "set-target",
        "esp32c3",
    ]
    r = subprocess.run(cmd, cwd=app, env=env, capture_output=True, text=True)
    (work / "configure.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        out.append(f"  configure FAILED (rc={r.returncode}), see {work / 'configure.log'}")
        out += ["    " + line for line in (r.stdout + r.stderr).splitlines()[-15:]]
        return None
    return app / "build"


def compile_all(build: Path, out: list[str]) -> tuple[int, int, int]:
    objdir = build / "idf-check-objs"
    objdir.mkdir(exist_ok=True)
    files = errors = warnings = 0
    for entry in json.loads((build / "compile_commands.json").read_text()):
        src = entry["file"]
        if not OUR_FILES.search(src) or not src.endswith(".c"):
            continue
        args = shlex.split(entry["command"])
        args[args.index("-o") + 1] = str(objdir / (Path(src).name + ".o"))
        args = [a for a in args if a != "-fdiagnostics-color=always"] + [
            "-fdiagnostics-color=never"
        ]
        r = subprocess.run(args, cwd=entry["directory"], capture_output=True, text=True)
        diags = [ln for ln in r.stderr.splitlines() if re.search(r": (fatal error|warning|error):", ln)]
        files += 1
        errors += sum("error:" in d for d in diags) + (1 if r.returncode and not diags else 0)
        warnings += sum(": warning:" in d for d in diags)
        rel = src.split("/esp32/", 1)[-1]
        out.append(f"  {'ok ' if r.returncode == 0 and not diags else 'BAD'} {rel}")
        out += ["      " + d.split("/esp32/", 1)[-1] for d in diags]
    return files, errors, warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--idf", action="append", help="ESP-IDF tags (default: every one build.sh prepared)"
    )
    parser.add_argument(
        "--config", action="append", choices=sorted(CONFIGS), help="configurations (default: all)"
    )
    parser.add_argument("--log", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    tags = args.idf or sorted(p.name[4:-3] for p in LAB.glob("env-v*.sh"))
    if not tags:
        raise SystemExit(f"no ESP-IDF prepared in {LAB}: run esp32/qemu/build.sh first")
    out: list[str] = []
    failed = []
    for tag in tags:
        env = idf_env(tag)
        head = subprocess.run(
            ["git", "-C", env["IDF_PATH"], "rev-parse", "HEAD"], capture_output=True, text=True
        )
        for name in args.config or list(CONFIGS):
            t0 = time.monotonic()
            out.append(
                f"ESP-IDF {tag} ({head.stdout.strip()[:12]}), esp32c3, configuration {name}:"
            )
            print(out[-1], flush=True)
            build = configure(tag, name, env, out)
            if build is None:
                failed.append(f"{tag}/{name}")
                continue
            files, errors, warnings = compile_all(build, out)
            verdict = "OK" if files and not errors and not warnings else "FAILED"
            out.append(
                f"  {verdict}: {files} files, {errors} errors, {warnings} warnings ({time.monotonic() - t0:.0f} s)"
            )
            print(out[-1], flush=True)
            if verdict != "OK":
                failed.append(f"{tag}/{name}")
    out.append(
        "idf-check: "
        + ("all configurations compile cleanly" if not failed else "FAILED: " + ", ".join(failed))
    )
    report = "\n".join(out) + "\n"
    sys.stdout.write(report)
    if args.log:
        args.log.write_text(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
