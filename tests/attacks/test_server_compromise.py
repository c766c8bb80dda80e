"""An attacker who controls the update server's storage and database: swaps, replays and
reorders files and rows. The server is trusted for availability only; every decision the
device takes rests on what the author signed."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from secure_fota.errors import TransportError
from tests.attacks.conftest import Lab, refused


def test_binary_blob_swapped_on_disk(lab: Lab) -> None:
    """Release 3's image file replaced by release 2's (both genuine) behind the database.

    The server checks a binary against its row when it loads it, so the swap is an error
    answer; the device keeps its state, and the swapped file fails the device's own check.
    """
    device = lab.device()
    two = lab.publish("1.1.0", 2)
    three = lab.publish("1.2.0", 3)
    before = device.status()
    blob = lab.server.blob(lab.row(3)["binary_sha256"])
    blob.write_bytes(
        two.binary.read_bytes()[: blob.stat().st_size].ljust(blob.stat().st_size, b"\0")
    )
    with pytest.raises(TransportError, match="503"):
        device.perform_update()
    assert device.status() == before
    lab.assert_c_rejects(device, three.manifest, blob, "enc_digest_mismatch")


def test_binary_swapped_on_disk_and_in_the_database(lab: Lab) -> None:
    """The insider also rewrites the row's digest and size, so the server serves the swap."""
    device = lab.device()
    two = lab.publish("1.1.0", 2)
    three = lab.publish("1.2.0", 3)
    swapped = two.binary.read_bytes()
    digest = hashlib.sha256(swapped).hexdigest()
    path = lab.server.blob(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(swapped)
    with lab.server.database() as db:
        db.execute(
            "UPDATE releases SET binary_sha256 = ?, binary_size = ? WHERE pk = ?",
            (digest, len(swapped), lab.row(3)["pk"]),
        )
    refused(device, "enc_digest_mismatch")
    lab.assert_c_rejects(device, three.manifest, path, "enc_digest_mismatch")


def test_manifest_blob_swapped_on_disk(lab: Lab) -> None:
    """The server checks a manifest against its row before serving it: a swapped file is an
    error answer, never a different manifest."""
    device = lab.device()
    lab.publish("1.1.0", 2)
    before = device.status()
    blob = lab.server.blob(lab.row(2)["manifest_sha256"])
    blob.write_bytes(blob.read_bytes()[::-1])
    with lab.server.database():
        pass  # the attacker also bumps the change counter so that caches reload
    with lab.server.http() as http:
        answer = http.get("/update/newest/manifest", params={"deviceType": lab.device_type})
    assert answer.status_code >= 500 and answer.json()["error"], answer.text
    with pytest.raises(TransportError, match="503"):
        device.perform_update()
    assert device.status() == before


def test_row_points_at_an_older_manifest(lab: Lab) -> None:
    """The newest row rewritten to name release 1's manifest (replay through the database)."""
    device = lab.device()
    lab.publish("1.1.0", 2)
    assert device.perform_update().result == "updated"
    one = lab.release(lab.image("1.0.0"), 1)
    three = lab.publish("1.2.0", 3)
    lab.upload(one, seq=1)
    old = lab.row(1)
    with lab.server.database() as db:
        db.execute(
            "UPDATE releases SET manifest_sha256 = ?, manifest_size = ? "
            "WHERE device_type = ? AND seq = 3",
            (old["manifest_sha256"], old["manifest_size"], lab.device_type),
        )
    refused(device, "rollback")
    lab.assert_c_rejects(device, one.manifest, None, "rollback")
    assert three.claims.seq == 3


def test_rows_renumbered_and_reordered(lab: Lab) -> None:
    """Ids changed so that release 2 becomes the "newest" (id 9) and 3 moves below it."""
    device = lab.device()
    two = lab.publish("1.1.0", 2)
    lab.publish("1.2.0", 3)
    assert device.perform_update().result == "updated"
    assert device.status()["seq"] == 3
    with lab.server.database() as db:
        db.execute(
            "UPDATE releases SET seq = 9 WHERE device_type = ? AND seq = 2", (lab.device_type,)
        )
        db.execute(
            "UPDATE releases SET seq = 1 WHERE device_type = ? AND seq = 3", (lab.device_type,)
        )
    refused(device, "rollback")
    lab.assert_c_rejects(device, two.manifest, two.binary, "rollback")


def test_release_pointed_at_another_releases_binary(lab: Lab) -> None:
    device = lab.device()
    two = lab.publish("1.1.0", 2)
    three = lab.publish("1.2.0", 3)
    other = lab.row(2)
    with lab.server.database() as db:
        db.execute(
            "UPDATE releases SET binary_sha256 = ?, binary_size = ? "
            "WHERE device_type = ? AND seq = 3",
            (other["binary_sha256"], other["binary_size"], lab.device_type),
        )
    refused(device, "enc_digest_mismatch")
    lab.assert_c_rejects(device, three.manifest, two.binary, "enc_digest_mismatch")


def test_row_inserted_for_the_attackers_files(lab: Lab) -> None:
    """No credential at all: the attacker writes its own files into storage and a row into
    the database (a release the author never made)."""
    device = lab.device()
    files = lab.release(lab.image("6.6.6"), 70, keys=lab.pki.attacker_keys)
    template = lab.publish("1.1.0", 2)
    assert template.claims.seq == 2
    row = lab.row(2)
    shas = {}
    for kind, path in (("manifest", files.manifest), ("binary", files.binary)):
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        target = lab.server.blob(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        shas[kind] = (sha, path.stat().st_size)
    with lab.server.database() as db:
        db.execute(
            "INSERT INTO releases (device_type, seq, fw_name, manifest_sha256, manifest_size, "
            "binary_sha256, binary_size, uploaded_at, uploader, yanked) "
            "VALUES (?, 70, 'app', ?, ?, ?, ?, ?, 'nobody', 0)",
            (lab.device_type, *shas["manifest"], *shas["binary"], row["uploaded_at"]),
        )
    with lab.server.http() as http:
        assert (
            http.get("/update/newest/manifest", params={"deviceType": lab.device_type}).headers[
                "x-fota-release"
            ]
            == "70"
        )
    refused(device, "manifest_decrypt_failed")
    lab.assert_c_rejects(device, files.manifest, files.binary, "manifest_decrypt_failed")


def test_server_refuses_a_blob_path_from_the_database(lab: Lab) -> None:
    """A digest column rewritten to a path ("../../..") never reaches the filesystem."""
    lab.publish("1.1.0", 2)
    with lab.server.database() as db:
        db.execute(
            "UPDATE releases SET binary_sha256 = '../../../../etc/passwd' WHERE device_type = ?",
            (lab.device_type,),
        )
    with lab.server.http() as http:
        answer = http.get(f"/api/v1/device-types/{lab.device_type}/releases/2/binary")
    assert answer.status_code == 503 and b"root:" not in answer.content, answer.text
    assert answer.json()["field"] is None  # a server-side fault, not the client's parameter
