"""Author tool: `fota author release` against `espsecure sign-data` and the crypto floor.

1. Whole process: wall time of `fota author release IMG ...` (sign + encrypt + manifest)
   against `espsecure sign-data --version 1` (the signing step alone) on the same image,
   runs interleaved, median of --runs. Also the interpreter's own start (`python -c pass`).
2. In process: `load_author_keys` + `build_release` against the crypto floor, the sum of
   the primitives measured alone on the same data: AES-256-GCM over the signed image, the two
   SHA-256 passes the formats need (the image, whose state extended by the signature gives
   image_sha256; the encrypted file), ECDSA P-256 (secure boot V1), RSA-3072 PSS (manifest
   JWS), RSA-4096 OAEP (JWE key), RSA-3072 PKCS#1 v1.5 (image key); and the I/O floor, writing
   both files durably (write, fsync, rename, fsync of the directory) without any crypto.
3. Peak memory (max RSS of the child process) of `fota author release` for 1, 4 and 8 MB.

With --versus DIR, step 1 also runs the author tool from another checkout's src/ (e.g. `main`
before a change) in the same runs, interleaved, and reports both ratios; CPU time (user + sys of
each child) is reported beside wall time, as it suffers less from a shared machine.

    .venv/bin/python bench/author.py [--runs 15] [--sizes 1,4] [--memory-sizes 1,4,8]
        [--src DIR] [--versus DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import BIN, MB, log, median

#: how `fota` is run; --src DIR runs `python -m secure_fota.cli.main` from another checkout
FOTA: list[str] = [str(BIN / "fota")]
ENV: dict[str, str] = dict(os.environ)
#: --versus DIR: the environment that runs the author tool from DIR
VERSUS_ENV: dict[str, str] | None = None


def precompile(src: Path) -> None:
    """Compile the author tool's sources to bytecode before timing it, as `pip install` did for
    espsecure's: with an editable install and PYTHONDONTWRITEBYTECODE set (as on this machine),
    every run would otherwise compile our modules from source again (~60 ms)."""
    subprocess.run([common.PY, "-m", "compileall", "-q", str(src)], check=True, env=ENV)


def run_timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env or ENV
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(
            f"{argv[0]} failed: {process.stderr.read().decode() if process.stderr else ''}"
        )
    if process.stderr:
        process.stderr.close()
    return elapsed, usage.ru_utime + usage.ru_stime


def whole_process(fx: common.Fixtures, sizes: list[int], runs: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-author-") as tmp:
        work = Path(tmp)
        for size in sizes:
            image = fx.image(size * MB)
            ours, theirs, python, versus = [], [], [], []

            def release(target: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
                target.mkdir()
                return run_timed([
                    *FOTA, "author", "release", str(image), "--seq", "1",
                    "--device-type", common.DEVICE_TYPE, "--name", "app",
                    "--keys", str(fx.keys), "--out", str(target),
                ], env)  # fmt: skip

            for i in range(runs + 1):
                target = work / f"r{i}"
                target.mkdir()
                t_ours = release(target / "ours")
                t_versus = release(target / "versus", VERSUS_ENV) if VERSUS_ENV else None
                t_theirs = run_timed([
                    str(BIN / "espsecure"), "sign-data", "--version", "1", "--keyfile",
                    str(fx.keys / "secure_boot_signing_key.pem"),
                    "--output", str(target / "signed.bin"), str(image),
                ])  # fmt: skip
                t_py = run_timed([common.PY, "-c", "pass"])
                shutil.rmtree(target)
                if i == 0:
                    continue  # warm-up: page cache, .pyc files
                ours.append(t_ours)
                theirs.append(t_theirs)
                python.append(t_py)
                if t_versus is not None:
                    versus.append(t_versus)

            def ratio(a: list[tuple[float, float]], k: int) -> float:
                return median([x[k] / y[k] for x, y in zip(a, theirs, strict=True)])

            out[f"{size}MB"] = {
                "fota_release_ms": median([t[0] for t in ours]) * 1000,
                "espsecure_sign_ms": median([t[0] for t in theirs]) * 1000,
                "python_start_ms": median([t[0] for t in python]) * 1000,
                "ratio_median": ratio(ours, 0),
                "ratio_cpu_median": ratio(ours, 1),
                "runs": runs,
            }
            if versus:
                out[f"{size}MB"] |= {
                    "versus_release_ms": median([t[0] for t in versus]) * 1000,
                    "versus_ratio_median": ratio(versus, 0),
                    "versus_ratio_cpu_median": ratio(versus, 1),
                }
            log(f"whole process {size} MB: {out[f'{size}MB']}")
    return out


def _best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return median(samples)


def _durable_write(data: bytes, manifest_size: int) -> None:
    """What writing the two files costs without any crypto: create, write, fsync, rename,
    fsync the directory (as secure_fota.atomic_file does), then remove them."""
    with tempfile.TemporaryDirectory(dir=common.WORK) as tmp:
        for name, size in (("app.bin", len(data)), ("app.manifest", manifest_size)):
            temp = Path(tmp) / f".{name}.tmp"
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(memoryview(data)[:size])
                handle.flush()
                os.fsync(handle.fileno())
            temp.replace(Path(tmp) / name)
        dfd = os.open(tmp, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)


def in_process(fx: common.Fixtures, sizes: list[int], repeats: int) -> dict[str, dict[str, float]]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from secure_fota.author.release import ReleaseRequest, build_release
    from secure_fota.keys.directory import load_author_keys

    out: dict[str, dict[str, float]] = {}
    keys = load_author_keys(fx.keys, secure_boot_version="v1")
    for size in sizes:
        image = fx.image(size * MB)
        data = image.read_bytes()
        signed = data + b"\0" * 68  # the V1 block: the floor's data sizes
        encrypted = b"\0" * 512 + signed
        with tempfile.TemporaryDirectory(prefix="bench-author-") as tmp:
            counter = iter(range(1, 1_000_000))

            def release() -> None:
                out_dir = Path(tmp) / str(next(counter))
                out_dir.mkdir()
                k = load_author_keys(fx.keys, secure_boot_version="v1")
                build_release(
                    ReleaseRequest(
                        firmware=image, seq=1, device_type=common.DEVICE_TYPE, fw_name="app",
                        out_dir=out_dir,
                    ),
                    k,
                    now=int(time.time()),
                )  # fmt: skip
                shutil.rmtree(out_dir)

            release()
            t_release = _best(release, repeats)

        aes_key, iv = os.urandom(32), os.urandom(12)
        digest = os.urandom(32)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        oaep = padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
        )
        assert isinstance(keys.secure_boot, ec.EllipticCurvePrivateKey)
        floor = {
            "aes_gcm_ms": _best(lambda: AESGCM(aes_key).encrypt(iv, signed, None), repeats),
            # the passes the formats require: the image (appended digest = secure boot digest,
            # extended by the signature to image_sha256) and the encrypted file (enc_sha256)
            "sha256_x2_ms": _best(
                lambda: (
                    __import__("hashlib").sha256(data).digest(),
                    __import__("hashlib").sha256(encrypted).digest(),
                ),
                repeats,
            ),
            "ecdsa_p256_sign_ms": _best(
                lambda: keys.secure_boot.sign(  # type: ignore[union-attr]
                    digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True)
                ),
                repeats,
            ),
            "rsa3072_pss_sign_ms": _best(
                lambda: keys.manifest_signing.sign(b"x" * 600, pss, hashes.SHA256()),  # type: ignore[call-arg, arg-type]
                repeats,
            ),
            "rsa4096_oaep_encrypt_ms": _best(
                lambda: keys.manifest_encryption.encrypt(aes_key, oaep), repeats
            ),
            "rsa3072_pkcs1_encrypt_ms": _best(
                lambda: keys.pre_encryption.encrypt(aes_key, padding.PKCS1v15()), repeats
            ),
        }
        floor = {k: v * 1000 for k, v in floor.items()}
        total = sum(floor.values())
        io_floor = _best(lambda: _durable_write(encrypted, 3000), repeats) * 1000
        out[f"{size}MB"] = {
            "release_ms": t_release * 1000,
            "floor_ms": total,
            "ratio": t_release * 1000 / total,
            "io_floor_ms": io_floor,
            "ratio_to_crypto_plus_io": t_release * 1000 / (total + io_floor),
            **floor,
        }
        log(f"in process {size} MB: {out[f'{size}MB']}")
    return out


def _max_rss_kib(argv: list[str]) -> int:
    """Peak RSS of a command, from GNU time (os.wait4's figure can include the memory the
    forking benchmark process had before the child's exec)."""
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True, check=True, env=ENV
    )
    return int(out.stderr.strip().splitlines()[-1])


def memory(fx: common.Fixtures, sizes: list[int]) -> dict[str, dict[str, float]]:
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-author-") as tmp:
        for size in sizes:
            image = fx.image(size * MB)
            ours, theirs = [], []
            for i in range(3):
                target = Path(tmp) / f"{size}-{i}"
                target.mkdir()
                ours.append(_max_rss_kib([
                    *FOTA, "author", "release", str(image), "--seq", "1",
                    "--device-type", common.DEVICE_TYPE, "--name", "app",
                    "--keys", str(fx.keys), "--out", str(target),
                ]))  # fmt: skip
                theirs.append(_max_rss_kib([
                    str(BIN / "espsecure"), "sign-data", "--version", "1", "--keyfile",
                    str(fx.keys / "secure_boot_signing_key.pem"),
                    "--output", str(target / "signed.bin"), str(image),
                ]))  # fmt: skip
            out[f"{size}MB"] = {"fota": median(ours) / 1024, "espsecure": median(theirs) / 1024}
            log(f"peak RSS {size} MB image: {out[f'{size}MB']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--sizes", default="1,4")
    parser.add_argument("--memory-sizes", default="1,4,8")
    parser.add_argument(
        "--src", type=Path, help="run the author tool from this src/ (e.g. another branch's)"
    )
    parser.add_argument(
        "--versus", type=Path, help="also run the author tool from this src/, interleaved"
    )
    parser.add_argument("--name", default="author", help="results file name")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    fx = common.fixtures()
    if args.src is not None:
        FOTA[:] = [common.PY, "-m", "secure_fota.cli.main"]
        ENV["PYTHONPATH"] = str(args.src.resolve())
        sys.path.insert(0, str(args.src.resolve()))
        for name in [m for m in sys.modules if m.startswith("secure_fota")]:
            del sys.modules[name]
    precompile(args.src if args.src is not None else common.ROOT / "src")
    if args.versus is not None:
        global VERSUS_ENV  # noqa: PLW0603 -- set once from the command line
        VERSUS_ENV = dict(ENV, PYTHONPATH=str(args.versus.resolve()))
        precompile(args.versus)
        if args.src is None:
            FOTA[:] = [common.PY, "-m", "secure_fota.cli.main"]
            ENV["PYTHONPATH"] = str((common.ROOT / "src").resolve())
    result = {
        "machine": common.machine(),
        "whole_process": whole_process(fx, sizes, args.runs),
        "in_process": in_process(fx, sizes, max(5, args.runs)),
        "peak_rss_mib": memory(fx, [int(s) for s in args.memory_sizes.split(",")]),
    }
    if args.src is not None:
        import secure_fota

        result["src"] = str(Path(secure_fota.__file__).parent)
    common.save(args.name, result)
    rows = []
    for key, value in result["whole_process"].items():
        ip = result["in_process"][key]
        rows.append([
            key, f"{value['fota_release_ms']:.0f}", f"{value['espsecure_sign_ms']:.0f}",
            f"{value['ratio_median']:.2f}", f"{value['python_start_ms']:.0f}",
            f"{ip['release_ms']:.1f}", f"{ip['floor_ms']:.1f}", f"{ip['ratio']:.2f}",
            f"{ip['io_floor_ms']:.1f}", f"{ip['ratio_to_crypto_plus_io']:.2f}",
        ])  # fmt: skip
    print(common.table(
        ["image", "fota release ms", "espsecure sign-data ms", "ratio", "python -c pass ms",
         "in-process ms", "crypto floor ms", "in-process / floor", "I/O floor ms",
         "in-process / (crypto + I/O)"], rows))  # fmt: skip
    print()
    if args.versus is not None:
        print()
        print(common.table(
            ["image", "fota ms", f"fota ms ({args.versus})", "espsecure ms", "ratio", "ratio CPU",
             f"ratio ({args.versus})", f"ratio CPU ({args.versus})"],
            [[k, f"{v['fota_release_ms']:.0f}", f"{v['versus_release_ms']:.0f}",
              f"{v['espsecure_sign_ms']:.0f}", f"{v['ratio_median']:.2f}",
              f"{v['ratio_cpu_median']:.2f}", f"{v['versus_ratio_median']:.2f}",
              f"{v['versus_ratio_cpu_median']:.2f}"] for k, v in result["whole_process"].items()],
        ))  # fmt: skip
    print()
    print(common.table(
        ["image", "fota author release peak RSS MiB", "espsecure sign-data peak RSS MiB"],
        [[k, f"{v['fota']:.1f}", f"{v['espsecure']:.1f}"] for k, v in result["peak_rss_mib"].items()],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
