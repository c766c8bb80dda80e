"""The reference device: ``check_for_update()`` and ``perform_update()`` on the flash model.

Opening a :class:`Device` is a power-on: the bootloader model picks the app to run (rolling
back an app that never confirmed itself). ``perform_update`` downloads the release named by
the manifest's ``seq`` (resuming an interrupted download), verifies it completely, writes the
inactive slot, switches otadata, reboots, runs the self-test and then confirms (raising the
anti-rollback eFuse) or rolls back.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from secure_fota.bounded_read import read_bounded
from secure_fota.crypto.key_rotation import KeySet
from secure_fota.crypto.report import Event
from secure_fota.device.bootloader import BootResult, boot
from secure_fota.device.flash import FACTORY, OTA_SLOTS, FaultInjector, Flash, ImageState
from secure_fota.device.reports import Reporter
from secure_fota.device.state import Download, StateDir
from secure_fota.device.transport import ServerClient
from secure_fota.errors import FotaError, ReleaseRejected, TransportError
from secure_fota.formats.manifest import ManifestClaims
from secure_fota.keys.directory import commit_keyset, load_device_keys
from secure_fota.limits import MAX_MANIFEST_SIZE, STREAM_CHUNK
from secure_fota.policy import (
    DeviceFacts,
    check_image,
    check_manifest,
    check_nothing_new,
    decide_nothing_new,
)
from secure_fota.policy.verifier import open_checked
from secure_fota.reasons import Reason
from secure_fota.wire import new_nonce

__all__ = ["CheckResult", "Device", "SelfTest"]

#: the self-test an app runs in its first boot; True confirms the new image
SelfTest = Callable[[BootResult], bool]

UPDATED: Final = "updated"
AVAILABLE: Final = "update-available"
UP_TO_DATE: Final = "up-to-date"
REJECTED: Final = "rejected"
ROLLED_BACK: Final = "rolled-back"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of a check or an update, as printed by ``fota device ... --json``."""

    result: str
    reason: Reason | None = None
    claims: ManifestClaims | None = None
    detail: str = ""
    #: the manifest-signing key set the manifest was verified under (after rotations)
    keyset: KeySet | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "reason": self.reason.value if self.reason else None,
            "claims": self.claims.to_dict() if self.claims else None,
            "detail": self.detail,
        }


def _always_passes(_: BootResult) -> bool:
    return True


class Device:
    """One simulated ESP32, its state in a directory."""

    def __init__(
        self,
        path: Path,
        *,
        faults: FaultInjector | None = None,
        self_test: SelfTest = _always_passes,
        clock: Callable[[], int | None] = lambda: int(time.time()),
    ) -> None:
        self.state = StateDir(path, faults)
        self.config = self.state.load_config()
        self.keys = load_device_keys(self.state.keys)
        self.flash = Flash(path, self.config.slot_size, self.state.faults)
        self.self_test = self_test
        self.clock = clock
        #: where the last download resumed from (0: from the start)
        self.last_resume_offset = 0
        self.reporter = Reporter(self.state, self.config)
        self.running = self._boot()

    # -- power-on ---------------------------------------------------------------------
    def _boot(self) -> BootResult:
        result = boot(self.flash, self.keys.secure_boot, self.config.secure_boot)
        if result.pending_verify and result.entry is not None:
            if self.self_test(result):
                self._confirm(result)
            else:
                self.flash.set_state(result.entry, ImageState.INVALID)
                return self._boot()
        else:
            # a confirmed app whose eFuse update was cut short by a power loss catches up
            self.flash.burn_secure_version(result.image.app_desc.secure_version)
        return result

    def _confirm(self, result: BootResult) -> None:
        """``esp_ota_mark_app_valid_cancel_rollback``: VALID, then raise the eFuse."""
        if result.entry is not None:
            self.flash.set_state(result.entry, ImageState.VALID)
        self.flash.burn_secure_version(result.image.app_desc.secure_version)

    @property
    def installed_seq(self) -> int:
        return self.state.load_nvs().slot_seq.get(self.running.slot, 0)

    def facts(self) -> DeviceFacts:
        return DeviceFacts(
            device_type=self.config.device_type,
            chip_id=self.config.chip_id,
            installed_seq=self.installed_seq,
            secure_version=self.flash.efuse_secure_version(),
            slot_size=self.config.slot_size,
        )

    def _client(self) -> ServerClient:
        ca = self.state.ca if self.state.ca.exists() else None
        return ServerClient(
            self.config.server,
            ca_file=ca,
            timeout=self.config.timeout,
            token=self.state.load_token(),
        )

    # -- check ------------------------------------------------------------------------
    def _fetch_manifest(
        self, client: ServerClient, nonce: str | None
    ) -> tuple[bytes | None, str | None]:
        """The newest manifest (``None``: the server has no release) and the statement."""
        nvs = self.state.load_nvs()
        cache = self.state.manifest_cache
        etag = nvs.manifest_etag if cache.exists() else None
        answer = client.newest_manifest(
            self.config.device_type, nonce=nonce, etag=etag, device_id=self.config.device_id
        )
        if answer.status == "none":
            return None, answer.freshness
        if answer.status == "unchanged":
            try:
                cached = read_bounded(
                    cache, MAX_MANIFEST_SIZE, what="cached manifest", truncate=True
                )
            except FotaError:  # gone since the poll was sent: the 304 answers nothing we hold
                raise TransportError(
                    "manifest poll answered 304 but this device holds no cached manifest",
                    status_code=304,
                    reason=Reason.UNEXPECTED_STATUS,
                ) from None
            return cached, answer.freshness
        return answer.body, answer.freshness

    def _installed_claims(self) -> ManifestClaims | None:
        """The claims of the cached manifest, if it opens (the device's copy of what it judged
        last: its installed release once judged ``already_installed``)."""
        cache = self.state.manifest_cache
        try:
            token = read_bounded(cache, MAX_MANIFEST_SIZE, what="cached manifest")
            return open_checked(token, self.keys).claims
        except (FotaError, ReleaseRejected):
            return None

    def _nothing_new(self, statement: str | None, nonce: str | None) -> CheckResult:
        """The server answered 404: no release for this type. With freshness required, only
        a statement answering ``none`` for this poll is believed."""
        try:
            if nonce is not None:
                check_nothing_new(
                    statement,
                    self.keys,
                    nonce=nonce,
                    device_type=self.config.device_type,
                    device_id=self.config.device_id,
                )
            decide_nothing_new(self._installed_claims(), self.facts(), now=self.clock())
        except ReleaseRejected as exc:
            if exc.reason is Reason.ALREADY_INSTALLED:
                return CheckResult(UP_TO_DATE, detail=exc.detail)
            return CheckResult(REJECTED, reason=exc.reason, detail=exc.detail)
        raise AssertionError("decide_nothing_new always raises")  # pragma: no cover

    def _remember_manifest(self, manifest: bytes) -> None:
        import hashlib

        from secure_fota.atomic_file import write_atomic

        write_atomic(self.state.manifest_cache, manifest)
        nvs = self.state.load_nvs()
        etag = hashlib.sha256(manifest).hexdigest()
        if nvs.manifest_etag != etag:
            nvs.manifest_etag = etag
            self.state.save_nvs(nvs, "manifest etag")

    def check_for_update(self, client: ServerClient | None = None) -> CheckResult:
        """Poll the newest manifest, verify it and decide; never changes the flash."""
        own = client is None
        client = client or self._client()
        try:
            nonce = None
            if self.keys.freshness and self.config.require_freshness:
                nonce = new_nonce()
            try:
                manifest, statement = self._fetch_manifest(client, nonce)
            except ReleaseRejected as exc:  # an oversized manifest is refused as it arrives
                return CheckResult(REJECTED, reason=exc.reason, detail=exc.detail)
            if manifest is None:
                return self._nothing_new(statement, nonce)
            freshness = (statement, nonce) if nonce is not None else None
            try:
                opened = check_manifest(
                    manifest,
                    self.keys,
                    self.facts(),
                    now=self.clock(),
                    freshness=freshness,
                    device_id=self.config.device_id,
                )
            except ReleaseRejected as exc:
                if exc.reason is Reason.ALREADY_INSTALLED:
                    self._remember_manifest(manifest)
                    return CheckResult(UP_TO_DATE, detail=exc.detail)
                return CheckResult(REJECTED, reason=exc.reason, detail=exc.detail)
            self._remember_manifest(manifest)
            return CheckResult(AVAILABLE, claims=opened.claims, keyset=opened.keyset)
        finally:
            if own:
                client.close()

    # -- update -----------------------------------------------------------------------
    def _inactive_slot(self) -> str:
        return OTA_SLOTS[1] if self.running.slot == OTA_SLOTS[0] else OTA_SLOTS[0]

    def _download(
        self, client: ServerClient, claims: ManifestClaims, interrupt_after: int | None
    ) -> Path:
        nvs = self.state.load_nvs()
        part = self.state.download_file
        url = client.binary_url(claims.device_type, claims.seq)
        if nvs.download is None or (nvs.download.seq, nvs.download.enc_sha256) != (
            claims.seq,
            claims.enc_sha256,
        ):
            part.unlink(missing_ok=True)
            nvs.download = Download(seq=claims.seq, enc_sha256=claims.enc_sha256, url=url)
            self.state.save_nvs(nvs, "download start")
        download = functools.partial(
            client.download,
            dest=part,
            expected_size=claims.enc_size,
            etag=claims.enc_sha256,
            interrupt_after=interrupt_after,
        )
        try:
            self.last_resume_offset = download(url)
        except TransportError as exc:
            if exc.status_code != 404:
                raise
            # a seed-compatible server has no by-id URL: take "newest" and let the digests judge
            self.last_resume_offset = download(client.newest_binary_url(claims.device_type))
        return part

    def _verify_download(self, part: Path, claims: ManifestClaims) -> bytes:
        """Check and decrypt the downloaded file completely; raise ReleaseRejected on failure.

        Nothing touches the flash until every check has passed, so a refused release leaves
        the device exactly as it was.
        """
        with part.open("rb") as handle:
            return check_image(handle, claims, self.keys)

    def _write_slot(self, slot: str, image: bytes) -> None:
        """``esp_ota_begin`` (erase) and ``esp_ota_write`` in flash-page-sized steps."""
        self.flash.erase(slot)
        for start in range(0, len(image), STREAM_CHUNK):
            self.flash.append(slot, image[start : start + STREAM_CHUNK])

    def _abandon_download(self) -> None:
        self.state.download_file.unlink(missing_ok=True)
        nvs = self.state.load_nvs()
        if nvs.download is not None:
            nvs.download = None
            self.state.save_nvs(nvs, "download abandoned")

    def _set_boot_partition(self, slot: str) -> None:
        """``esp_ota_set_boot_partition``: a new otadata entry pointing at ``slot``."""
        current = self.flash.current_entry()
        ota_seq = (current.ota_seq if current else 0) + 1
        while OTA_SLOTS[(ota_seq - 1) % len(OTA_SLOTS)] != slot:
            ota_seq += 1
        self.flash.write_entry(ota_seq, ImageState.NEW)

    def _running_facts(self) -> tuple[int, int, str]:
        return (
            self.installed_seq,
            self.flash.efuse_secure_version(),
            self.running.image.app_desc.version,
        )

    def _report(self, client: ServerClient, event: Event, **details: Any) -> None:
        self.reporter.report(client, self._running_facts(), event, **details)

    def perform_update(
        self, *, interrupt_after: int | None = None, client: ServerClient | None = None
    ) -> CheckResult:
        """Check, and install the newest release if it is an update; reboot and confirm.
        Each step is reported to the server (when the device has a report key)."""
        own = client is None
        client = client or self._client()
        try:
            result = self._update(client, interrupt_after)
            self._report_outcome(client, result)
            return result
        finally:
            if own:
                client.close()

    def _report_outcome(self, client: ServerClient, result: CheckResult) -> None:
        release = result.claims.seq if result.claims else 0
        if result.result == UPDATED:
            self._report(client, Event.CONFIRMED, release=release)
        elif result.result == ROLLED_BACK:
            self._report(client, Event.ROLLED_BACK, release=release, detail=result.detail)
        elif result.result == REJECTED and result.reason is not None:
            self._report(
                client,
                Event.REJECTED,
                release=release,
                reason=result.reason.value,
                detail=result.detail,
            )
        elif self.reporter.enabled:
            self.reporter.flush(client)  # anything an earlier attempt could not deliver

    def _update(self, client: ServerClient, interrupt_after: int | None) -> CheckResult:
        check = self.check_for_update(client)
        if check.result != AVAILABLE or check.claims is None:
            return check
        claims = check.claims
        slot = self._inactive_slot()
        self._report(client, Event.DOWNLOADING, release=claims.seq)
        try:
            # endless data is refused as it arrives (image_size_mismatch), the rest at the end
            part = self._download(client, claims, interrupt_after)
            image = self._verify_download(part, claims)
        except ReleaseRejected as exc:
            self._abandon_download()
            return CheckResult(REJECTED, reason=exc.reason, claims=claims, detail=exc.detail)
        except TransportError as exc:
            self._report(client, Event.FAILED, release=claims.seq, detail=str(exc))
            raise
        self._write_slot(slot, image)
        nvs = self.state.load_nvs()
        nvs.slot_seq[slot] = claims.seq
        nvs.download = None
        self.state.save_nvs(nvs, "installed seq")
        part.unlink(missing_ok=True)
        self._set_boot_partition(slot)
        self._report(client, Event.INSTALLED, release=claims.seq)
        previous = self.running.slot
        self.running = self._boot()  # esp_restart()
        if self.running.slot == slot:
            if check.keyset is not None and check.keyset.version > self.keys.keyset_version:
                self._commit_keyset(check.keyset)
            return CheckResult(UPDATED, claims=claims)
        return CheckResult(
            ROLLED_BACK,
            claims=claims,
            detail=f"the new image failed its first boot; back on {previous}",
        )

    def _commit_keyset(self, keyset: KeySet) -> None:
        """Trust exactly the rotated key set from now on (new keys first, old ones removed)."""
        self.state.faults.step(f"keyset v{keyset.version}")
        commit_keyset(self.state.keys, keyset.version, keyset.keys)
        self.keys = load_device_keys(self.state.keys)

    # -- status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        nvs = self.state.load_nvs()
        states = {entry.slot: entry.state.name.lower() for entry in self.flash.entries()}
        slots = {}
        for name in (FACTORY, *OTA_SLOTS):
            data = self.flash.read_partition(name)
            info: dict[str, Any] = {"seq": nvs.slot_seq.get(name), "state": states.get(name)}
            if name == FACTORY:
                info["state"] = "factory"
            if data and name == self.running.slot:
                info["version"] = self.running.image.app_desc.version
            elif data:
                from secure_fota.errors import FormatError
                from secure_fota.formats.app_image import parse_app_image

                try:
                    info["version"] = parse_app_image(data).app_desc.version
                except FormatError:
                    info["version"] = None
            else:
                info["state"] = "empty"
            slots[name] = info
        return {
            "device_type": self.config.device_type,
            "seq": self.installed_seq,
            "version": self.running.image.app_desc.version,
            "secure_version": self.flash.efuse_secure_version(),
            "running_slot": self.running.slot,
            "slots": slots,
        }
