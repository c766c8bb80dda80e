"""The dashboard's fleet pages in Chromium against ``fota server run`` over TLS, with a
simulated fleet (``fota fleet simulate``, signed reports, a few failing self-tests): start a
rollout from the releases page, watch its progress arrive on the live rollout page, pause it,
and find the devices and the audit events it left."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from secure_fota.devtools.harness import fota_argv
from tests.browser.conftest import ADMIN, ADMIN_PASSWORD, Dashboard, screenshot, sign_in

DEVICE_TYPE = "orchard-sensor"


def _counts(page: Any) -> tuple[int, int]:
    text = page.inner_text("#rollout-counts")
    found = re.search(r"(\d+) offered, (\d+) confirmed", text)
    assert found is not None, text
    return int(found.group(1)), int(found.group(2))


def _start_rollout(page: Any, dashboard: Dashboard) -> str:
    """Start a rollout of release 2 from the releases page; return the rollout page's URL."""
    dashboard.upload(DEVICE_TYPE, 1)
    dashboard.upload(DEVICE_TYPE, 2)
    sign_in(page, dashboard, ADMIN, ADMIN_PASSWORD)
    page.goto(f"{dashboard.url}/ui/releases?type={DEVICE_TYPE}")
    page.locator(f"#release-{DEVICE_TYPE}-2 a", has_text="Roll out").click()
    page.wait_for_selector("#new-rollout")
    page.fill("input[name=stages]", "25,50,100")
    page.fill("input[name=max_failure_rate]", "50")
    page.fill("input[name=min_devices]", "5")
    screenshot(page, "rollout-new")
    page.click("#new-rollout button[type=submit]")
    page.wait_for_selector("#rollout-state")
    assert page.inner_text("#rollout-state") == "running"
    return str(page.url)


def _fleet_pages(page: Any, dashboard: Dashboard) -> None:
    """The rollouts list, the devices the fleet left, the audit log and the distribution."""
    page.click("nav >> text=Rollouts")
    page.wait_for_selector("#rollouts")
    assert "paused" in page.inner_text("#rollouts")
    screenshot(page, "rollouts")

    page.goto(f"{dashboard.url}/ui/devices?type={DEVICE_TYPE}&state=confirmed")
    rows = page.locator("#devices tbody tr")
    assert rows.count() >= 5
    assert "orchard-" in rows.first.inner_text()
    page.goto(f"{dashboard.url}/ui/devices?type={DEVICE_TYPE}")
    screenshot(page, "devices")

    page.click("nav >> text=Audit log")
    page.wait_for_selector("#audit")
    audit = page.inner_text("#audit")
    assert "rollout-pause" in audit and "rollout-start" in audit and ADMIN in audit
    screenshot(page, "audit")

    page.click("nav >> text=Device types")
    page.wait_for_selector("canvas#distribution")
    page.wait_for_timeout(500)
    screenshot(page, "device-types")


def test_start_watch_and_pause_a_rollout_with_a_simulated_fleet(page: Any, dashboard: Dashboard):
    rollout_url = _start_rollout(page, dashboard)

    simulator = subprocess.Popen(
        fota_argv(
            "fleet", "simulate", "--server", dashboard.url,
            "--ca", str(dashboard.server.ca_file), "--device-type", DEVICE_TYPE,
            "--devices", "80", "--duration", "12", "--poll-interval", "0.5",
            "--installed-seq", "1", "--device-id-prefix", "orchard",
            "--fail-self-test", "15%", "--roll-back", "10%",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        # the page refreshes its live part by itself (htmx, every 2 s): no reload here
        deadline = time.monotonic() + 40
        while _counts(page)[1] < 5 and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        offered, confirmed = _counts(page)
        assert confirmed >= 5, page.inner_text("#rollout-counts")
        assert offered < 80  # only the first stage (25 %) is offered release 2
        assert page.url == rollout_url
        page.wait_for_timeout(2500)  # let the charts settle on the latest numbers
        screenshot(page, "rollout")
        page.click("#pause")
        page.wait_for_selector("#rollout-state.warn")
        assert page.inner_text("#rollout-state") == "paused"
    finally:
        output, _ = simulator.communicate(timeout=60)
    assert simulator.returncode == 0, output.decode(errors="replace")
    _fleet_pages(page, dashboard)
    assert page.csp_violations == []
    assert page.js_errors == []
