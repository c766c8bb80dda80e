"""The dashboard with a large fleet: 100,000 devices inserted in bulk into SQLite and
PostgreSQL, then the device list (first page, filtered, deep page) and the device-types page
with its release-distribution chart, fetched from a real ``fota server run`` over TLS.

Two clocks: the server's answer as a client sees it (httpx over one kept-alive TLS connection,
signed in with the dashboard's session cookie), and -- where Chromium is installed -- the
browser's navigation to the page's ``load`` event (HTML, the stylesheet and the three scripts
from the browser cache, parsed and laid out). The goal (issue 17): the device list renders in
under a second.

    .venv/bin/python bench/dashboard.py --devices 100000 --databases sqlite,postgresql

``--without-index NAME`` then drops that index of the same database (the server keeps running)
and fetches every page again: the index's effect side by side, in one run.

Results: build/bench/results/dashboard.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import hashlib
import json
import random
import re
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, WORK, log

from secure_fota.devtools.harness import LocalServer
from secure_fota.tls_client import client_context

ADMIN, PASSWORD = "bench-admin", "bench-admin-password"
TYPES = ("greenhouse-sensor", "door-lock", "irrigation-valve", "weather-station")
EVENTS = ("confirmed",) * 14 + (
    "checking",
    "downloading",
    "installed",
    "rolled_back",
    "rejected",
    "failed",
)
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "postgres"}


def _url(kind: str, directory: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{directory / 'fota.db'}"
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _pg(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(**PG_ADMIN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    name = f"fota_bench_{secrets.token_hex(4)}"
    if kind == "postgresql":
        asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    try:
        yield _url(kind, directory, name)
    finally:
        if kind == "postgresql":
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def fill(url: str, data_dir: Path, devices: int) -> float:
    """Create the schema and insert ``devices`` devices (and a rollout over a fifth of them)
    in bulk; return the seconds the inserts took."""
    from sqlalchemy import insert

    from secure_fota.server.context import open_database
    from secure_fota.server.db.models import Device, Release, Rollout, RolloutDevice
    from secure_fota.server.settings import load_settings

    settings = load_settings(None, data_dir=data_dir, database_url=url)
    engine = await open_database(settings, migrate=True)
    rng = random.Random(17)  # noqa: S311 -- a repeatable fleet, not a secret
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    started = time.perf_counter()
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(Release),
                [
                    {
                        "device_type": t, "seq": seq, "fw_name": "app",
                        "manifest_sha256": "0" * 64, "manifest_size": 1,
                        "binary_sha256": "0" * 64, "binary_size": 1, "uploaded_at": now,
                        "uploader": ADMIN, "yanked": False, "held": seq == 4,
                    }
                    for t in TYPES for seq in (1, 2, 3, 4)
                ],
            )  # fmt: skip
            await connection.execute(
                insert(Rollout),
                [
                    {
                        "id": 1, "device_type": TYPES[0], "seq": 4, "stages": "1,10,50,100",
                        "stage": 2, "state": "paused", "max_failure_rate": 0.05,
                        "min_devices": 20, "stage_wait": 3600, "silent_deadline": 3600,
                        "created_by": ADMIN, "created_at": now - datetime.timedelta(hours=3),
                        "stage_started_at": now - datetime.timedelta(hours=1),
                    }
                ],
            )  # fmt: skip
        chunk = 10_000
        for first in range(0, devices, chunk):
            rows, members = [], []
            for i in range(first, min(devices, first + chunk)):
                device_id = f"dev-{i:07d}"
                event = rng.choice(EVENTS)
                seen = now - datetime.timedelta(seconds=rng.randrange(7 * 86400))
                device_type = TYPES[i % len(TYPES)]
                rows.append({
                    "device_id": device_id, "device_type": device_type,
                    "public_key": base64.urlsafe_b64encode(hashlib.sha256(device_id.encode()).digest() * 3).decode()[:124],
                    "key_source": "tofu", "counter": rng.randrange(1, 500),
                    "running_seq": rng.choice((1, 2, 3, 3, 3)), "version": "1.3.0",
                    "secure_version": 0, "first_seen": seen - datetime.timedelta(days=30),
                    "last_seen": seen, "last_event": event, "last_release": 3,
                    "last_reason": "image_digest_mismatch" if event == "rejected" else None,
                    "last_detail": "self-test failed" if event == "failed" else None,
                    "last_report_at": seen,
                })  # fmt: skip
                if device_type == TYPES[0] and i % 5 == 0:
                    outcome = rng.choice(
                        ("confirmed", "confirmed", "confirmed", "pending", "failed")
                    )
                    members.append({
                        "rollout_id": 1, "device_id": device_id, "stage": rng.randrange(3),
                        "offered_at": seen - datetime.timedelta(minutes=5), "outcome": outcome,
                        "outcome_at": None if outcome == "pending" else seen,
                    })  # fmt: skip
            async with engine.begin() as connection:
                await connection.execute(insert(Device), rows)
                if members:
                    await connection.execute(insert(RolloutDevice), members)
        return time.perf_counter() - started
    finally:
        await engine.dispose()


def sign_in(client: httpx.Client) -> None:
    form = client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/ui/login", data={"csrf_token": token.group(1), "username": ADMIN, "password": PASSWORD}
    )
    assert answer.status_code == 303, answer.text


def measure(call: Callable[[], object], repeats: int) -> dict[str, float]:
    for _ in range(2):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
        "max_ms": round(times[-1], 1),
    }


PAGES = {
    "devices, first page of 50": "/ui/devices",
    "devices of one type": f"/ui/devices?type={TYPES[1]}",
    "type + running release + last report": f"/ui/devices?type={TYPES[2]}&release=3&state=confirmed",
    "devices, page 1,000 (offset 49,950)": "/ui/devices?page=1000",
    "devices, 500 per page": "/ui/devices?per_page=500",
    "device types + distribution chart": "/ui/device-types",
    "rollout over 5,000 devices (charts)": "/ui/rollouts/1",
}


def browser_times(server: LocalServer, cookie: str, repeats: int) -> dict[str, dict[str, float]]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {}
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        return {}
    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--ignore-certificate-errors"],
        )  # fmt: skip
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_cookies(
            [{"name": "__Host-fota-session", "value": cookie, "url": server.url + "/"}]
        )
        page = context.new_page()
        for label in (
            "devices, first page of 50",
            "type + running release + last report",
        ):
            url = server.url + PAGES[label]
            results[label] = measure(lambda url=url: page.goto(url, wait_until="load"), repeats)
        browser.close()
    return results


async def _drop_index(url: str, name: str) -> None:
    from sqlalchemy import text

    from secure_fota.server.db.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP INDEX {name}"))
    finally:
        await engine.dispose()


def measure_pages(client: httpx.Client, repeats: int, kind: str) -> dict[str, dict[str, float]]:
    answers = {}
    for label, path in PAGES.items():
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        answers[label] = {
            **measure(lambda path=path: client.get(path).raise_for_status(), repeats),
            "bytes": len(answer.content),
        }
        log(f"{kind}: {label}: {answers[label]}")
    return answers


def run(kind: str, devices: int, repeats: int, without_index: str | None) -> dict[str, object]:
    directory = WORK / f"dashboard-{kind}"
    shutil.rmtree(directory, ignore_errors=True)
    data = directory / "data"
    with database(kind, directory) as url:
        log(f"{kind}: inserting {devices} devices")
        seconds = asyncio.run(fill(url, data, devices))
        log(f"{kind}: inserted in {seconds:.1f} s")
        server = LocalServer(
            data, ca_file=data / "tls" / "ca.pem", env={"FOTA_DATABASE_URL": url},
            log_file=directory / "server.log",
        )  # fmt: skip
        with server:
            server.add_user(ADMIN, PASSWORD, "admin")
            client = httpx.Client(
                base_url=server.url, verify=client_context(server.ca_file), timeout=60
            )
            with client:
                sign_in(client)
                answers = measure_pages(client, repeats, kind)
                cookie = client.cookies["__Host-fota-session"]
                browser = browser_times(server, cookie, repeats)
                for label, value in browser.items():
                    log(f"{kind}: browser {label}: {value}")
                without = None
                if without_index:
                    asyncio.run(_drop_index(url, without_index))
                    log(f"{kind}: dropped {without_index}")
                    without = measure_pages(client, repeats, f"{kind} without {without_index}")
    return {
        "insert_seconds": round(seconds, 1),
        "server": answers,
        "browser": browser,
        "without_index": without,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--without-index",
        metavar="NAME",
        help="then drop this index of the devices table and fetch every page again",
    )
    args = parser.parse_args()
    results = {
        "devices": args.devices,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "runs": {
            kind: run(kind, args.devices, args.repeats, args.without_index)
            for kind in args.databases.split(",")
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(results, indent=2))
    kinds = list(results["runs"])
    print(
        f"\n| page ({args.devices:,} devices) | "
        + " | ".join(f"{k} median / p95 (ms)" for k in kinds)
        + " |"
    )
    print("| --- |" + " --- |" * len(kinds))
    for label in PAGES:
        cells = [results["runs"][k]["server"][label] for k in kinds]  # type: ignore[index]
        print(
            f"| {label} | " + " | ".join(f"{c['median_ms']} / {c['p95_ms']}" for c in cells) + " |"
        )
    for label in ("devices, first page of 50", "type + running release + last report"):
        cells = [results["runs"][k]["browser"].get(label) for k in kinds]  # type: ignore[index]
        if all(cells):
            print(
                f"| browser: {label}, to `load` | "
                + " | ".join(f"{c['median_ms']} / {c['p95_ms']}" for c in cells)
                + " |"
            )

    if args.without_index:
        print(
            f"\n| page ({args.devices:,} devices), median ms | "
            + " | ".join(f"{k}: with / without {args.without_index} (ratio)" for k in kinds)
            + " |"
        )
        print("| --- |" + " --- |" * len(kinds))
        for label in PAGES:
            cells = []
            for k in kinds:
                run_ = results["runs"][k]
                with_ = run_["server"][label]["median_ms"]  # type: ignore[index]
                without_ = run_["without_index"][label]["median_ms"]  # type: ignore[index]
                cells.append(f"{with_} / {without_} ({without_ / with_:.1f}x)")
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
