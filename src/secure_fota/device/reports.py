"""The reference device's reports to the update server (docs/formats.md §11).

Each report takes the next value of a counter kept in NVS (saved before the report is signed,
so a power loss can skip a value but never reuse one), is signed with the device's own report
key, and is queued in NVS until the server has it: a report that cannot be delivered now (no
network, server down) goes out before the next one, in order. Reporting never fails an update.
"""

from __future__ import annotations

from typing import Final

from secure_fota.crypto.keys import Role
from secure_fota.crypto.report import Event, Report, ReportSigner
from secure_fota.device.state import DeviceConfig, StateDir
from secure_fota.device.transport import ServerClient
from secure_fota.errors import TransportError
from secure_fota.keys.directory import load_private_key_file
from secure_fota.limits import MAX_REPORT_DETAIL

__all__ = ["Reporter", "RunningFacts"]

#: undelivered reports kept in NVS (the oldest are dropped beyond this)
MAX_PENDING: Final = 8

RunningFacts = tuple[int, int, str]  # running seq, eFuse secure_version, firmware version


class Reporter:
    def __init__(self, state: StateDir, config: DeviceConfig) -> None:
        self._state = state
        self._config = config
        self._signer: ReportSigner | None = None
        if config.device_id is not None and state.report_key.exists():
            self._signer = ReportSigner(load_private_key_file(Role.DEVICE_REPORT, state.report_key))

    @property
    def enabled(self) -> bool:
        return self._signer is not None

    def report(
        self,
        client: ServerClient,
        running: RunningFacts,
        event: Event,
        *,
        release: int = 0,
        reason: str | None = None,
        detail: str = "",
    ) -> bool:
        """Sign and queue one report, then deliver the queue; True if everything went out."""
        if self._signer is None or self._config.device_id is None:
            return False
        nvs = self._state.load_nvs()
        nvs.report_counter += 1
        self._state.save_nvs(nvs, "report counter")
        seq, secure_version, version = running
        token = self._signer.sign(
            Report(
                device_id=self._config.device_id,
                device_type=self._config.device_type,
                event=event,
                reason=reason,
                detail=detail[:MAX_REPORT_DETAIL],
                seq=seq,
                secure_version=secure_version,
                version=version,
                release=release,
                counter=nvs.report_counter,
                pub=self._signer.pub,
            )
        )
        nvs.pending_reports = [*nvs.pending_reports, token][-MAX_PENDING:]
        self._state.save_nvs(nvs, "report queued")
        return self.flush(client)

    def flush(self, client: ServerClient) -> bool:
        """Deliver the queued reports in order; keep what could not be delivered."""
        nvs = self._state.load_nvs()
        delivered = 0
        try:
            for token in nvs.pending_reports:
                client.send_report(token)  # 2xx, or a 4xx that will never succeed: done
                delivered += 1
        except TransportError:
            pass
        if delivered:
            nvs.pending_reports = nvs.pending_reports[delivered:]
            self._state.save_nvs(nvs, "reports delivered")
        return not nvs.pending_reports
