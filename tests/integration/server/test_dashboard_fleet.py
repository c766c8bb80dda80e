"""The dashboard's fleet pages over real HTTPS on SQLite, PostgreSQL and MariaDB: devices
filtered by type, release and last report (in the database), a rollout started, paused and
resumed from the page with its stage counts, timeline and failures grouped by reason, the
audit log, and bad parameters answered with 4xx pages."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from secure_fota.crypto.report import Event
from secure_fota.server.fleet import in_stage
from tests.integration.server.conftest import DATABASES, Harness, harness, unique_type
from tests.integration.server.test_dashboard import _csrf, _sign_in
from tests.integration.server.test_fleet import FakeDevice, poll, publish, send


@pytest.fixture(scope="module", params=DATABASES)
def ui(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp(f"ui-fleet-{request.param}")
    with harness(request, directory, database=request.param, tls=tls_dir, rollout_tick=0.1) as h:
        yield h


def _chart(page: str, name: str) -> dict:
    found = re.search(rf"<canvas id=\"{name}\" data-chart='([^']*)'", page)
    assert found is not None, name
    return json.loads(html.unescape(found.group(1)))


def test_a_rollout_from_the_dashboard(ui: Harness):
    device_type = unique_type("ui")
    publish(ui, device_type, 1)
    devices = [FakeDevice(f"{device_type}-{i:03d}", device_type) for i in range(40)]
    for device in devices:
        assert send(ui, device.token(Event.CONFIRMED, seq=1, release=1)).status_code == 200
    publish(ui, device_type, 2)
    with _sign_in(ui) as client:
        token = _csrf(client.get("/ui/devices").text)
        form = {
            "device_type": device_type,
            "seq": "2",
            "stages": "50,100",
            "max_failure_rate": "40",
            "min_devices": "5",
            "stage_wait": "3600",
            "silent_deadline": "3600",
            "csrf_token": token,
        }
        created = client.post("/ui/rollouts", data=form)
        assert created.status_code == 303, created.text
        page_url = created.headers["location"]
        rollout_id = int(page_url.rsplit("/", 1)[1])

        in_first = [d for d in devices if in_stage(d.device_id, 50)]
        assert in_first
        for device in devices:
            offered = poll(ui, device_type, device.device_id)
            assert offered == (2 if device in in_first else 1)
        failing = in_first[0]
        answer = send(
            ui, failing.token(Event.REJECTED, seq=1, release=2, reason="image_digest_mismatch")
        )
        assert answer.status_code == 200, answer.text
        for device in in_first[1:]:
            assert send(ui, device.token(Event.CONFIRMED, seq=2, release=2)).status_code == 200

        page = client.get(page_url)
        assert page.status_code == 200
        expected = f"{len(in_first)} offered, {len(in_first) - 1} confirmed, 1 failed"
        assert expected in page.text
        assert "image_digest_mismatch" in page.text  # failures grouped by reason
        stages = _chart(page.text, f"stages-{rollout_id}")
        assert stages["datasets"][0]["data"][0] == len(in_first) - 1
        timeline = _chart(page.text, f"timeline-{rollout_id}")
        assert timeline["datasets"][0]["data"][-1] == len(in_first) - 1

        pause = client.post(f"/ui/rollouts/{rollout_id}/pause", headers={"x-csrf-token": token})
        assert pause.status_code == 303
        assert 'id="rollout-state" class="badge warn">paused' in client.get(page_url).text
        again = client.post(f"/ui/rollouts/{rollout_id}/pause", headers={"x-csrf-token": token})
        assert again.status_code == 409  # a paused rollout cannot be paused
        resume = client.post(f"/ui/rollouts/{rollout_id}/resume", headers={"x-csrf-token": token})
        assert resume.status_code == 303

        listing = client.get(f"/ui/devices?type={device_type}&release=2&state=confirmed")
        assert listing.text.count("<tr>") - 1 == len(in_first) - 1
        rejected = client.get(f"/ui/devices?type={device_type}&state=rejected")
        assert failing.device_id in rejected.text
        distribution = _chart(client.get("/ui/device-types").text, "distribution")
        assert f"{device_type}/1" in distribution["labels"]
        audit = client.get("/ui/audit").text
        assert "rollout-pause" in audit and f"{device_type}/2" in audit


def test_bad_fleet_parameters_get_4xx_pages(ui: Harness):
    with _sign_in(ui) as client:
        token = _csrf(client.get("/ui/devices").text)
        for path, status in (
            ("/ui/devices?release=abc", 422),
            ("/ui/devices?release=0", 422),
            ("/ui/devices?state=exploded", 422),
            ("/ui/devices?type=%2e%2e", 422),
            ("/ui/devices?page=-1", 422),
            ("/ui/devices?release=%C2%B2", 422),
            ("/ui/rollouts/abc", 422),
            ("/ui/rollouts/99999", 404),
            ("/ui/audit?before=x", 422),
            ("/ui/rollouts/new?release=x", 422),
        ):
            answer = client.get(path)
            assert answer.status_code == status, path
            assert "text/html" in answer.headers["content-type"], path
        for form, field in (
            ({"stages": "10,5,100"}, "stages"),
            ({"stages": "10,50"}, "stages"),
            ({"max_failure_rate": "lots"}, "max_failure_rate"),
            ({"seq": "0"}, "release"),
            ({"min_devices": "0"}, "min_devices"),
            ({"min_devices": "\u00b2"}, "min_devices"),
            ({"stages": "\u00b2,100"}, "stages"),
        ):
            body = {
                "device_type": "nothing",
                "seq": "1",
                "stages": "1,100",
                "max_failure_rate": "5",
                "min_devices": "1",
                "stage_wait": "0",
                "silent_deadline": "60",
                "csrf_token": token,
                **form,
            }
            answer = client.post("/ui/rollouts", data=body)
            assert answer.status_code == 422, form
            assert field in answer.text
        missing = client.post("/ui/rollouts/1/explode", headers={"x-csrf-token": token})
        assert missing.status_code == 422
