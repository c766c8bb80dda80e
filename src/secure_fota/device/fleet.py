"""``fota fleet simulate``: many devices polling one server from one asyncio loop.

Each simulated device has an id (``PREFIX-00042``), sends it on its polls (so that a rollout
can decide per device), and after an update reports like a real device: ``installed``, then
``confirmed``, or, for the share of devices given failure injection, ``failed`` (the self-test
failed), ``rolled_back`` (the bootloader rolled back), or nothing at all (silent). Reports are
signed with a P-256 key per device (made on its first report) and carry a monotonic counter.
As on a real device, a report that could not be delivered (connection lost, a worker killed,
HTTP 5xx/401/429) stays queued and goes out, in order, before the device's next poll; a 409 to
a resent report means the server already has it. A device that failed a release does not try
it again.

Each simulated device polls the newest manifest (with ``If-None-Match`` and, when it checks
freshness, a nonce), and when a newer release appears downloads its binary by id and checks
it against the manifest's ``enc_sha256``. With the fleet's device keys the manifests and
freshness statements are verified exactly as a device does (the manifest decryption, which
all devices of a fleet share, is done once per distinct manifest). Without keys it exercises
the protocol only. Runs are bounded in time and in requests and stop by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from secure_fota.crypto.keyring import DeviceKeys
from secure_fota.crypto.report import Event, Report, ReportSigner
from secure_fota.errors import FormatError, InputError, ReleaseRejected
from secure_fota.formats.manifest import ManifestClaims
from secure_fota.formats.names import check_name
from secure_fota.keys.directory import load_device_keys
from secure_fota.limits import MAX_MANIFEST_SIZE
from secure_fota.loopback import is_loopback
from secure_fota.policy.verifier import check_freshness, open_checked
from secure_fota.tls_client import client_context
from secure_fota.wire import (
    FRESHNESS_HEADER,
    RELEASE_HEADER,
    REPORT_CONTENT_TYPE,
    device_auth_headers,
    new_nonce,
    newest_manifest_url,
    poll_query,
    release_binary_url,
    reports_url,
)

__all__ = ["FAULTS", "FleetConfig", "FleetReport", "fault_of", "simulate"]

#: what a simulated device does after installing a release (besides confirming it)
FAULTS: Final = ("self-test", "roll-back", "silent")


def fault_of(device_id: str, shares: tuple[float, float, float]) -> str | None:
    """The injected fault of ``device_id`` (stable, independent of rollout buckets): the
    first of :data:`FAULTS` whose cumulative share covers the id's hash position."""
    digest = hashlib.sha256(b"fault:" + device_id.encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for fault, share in zip(FAULTS, shares, strict=True):
        edge += share
        if position < edge:
            return fault
    return None


@dataclass(frozen=True, slots=True)
class FleetConfig:
    server: str
    device_type: str
    devices: int = 100
    duration: float = 30.0
    poll_interval: float = 5.0
    ca_file: Path | None = None
    keys_dir: Path | None = None
    installed_seq: int = 0
    max_requests: int = 1_000_000
    new_connection_per_poll: bool = False
    max_connections: int = 512
    timeout: float = 10.0
    allow_remote: bool = False
    #: a bearer token every device sends (servers with device_auth)
    token: str | None = field(default=None, repr=False)
    #: device ids are PREFIX-00000, PREFIX-00001, ... (default: "sim-" and a random tag)
    device_id_prefix: str | None = None
    #: send signed reports after each update (``fota fleet simulate`` does unless --no-reports)
    reports: bool = False
    #: shares of devices whose self-test fails, that roll back, that go silent
    fail_self_test: float = 0.0
    roll_back: float = 0.0
    silent: float = 0.0

    def validated(self) -> FleetConfig:
        if not 1 <= self.devices <= 100_000:
            raise InputError("--devices", "must be 1..100000")
        if not 0 < self.duration <= 3600:
            raise InputError("--duration", "must be more than 0 and at most 3600 seconds")
        if not 0.01 <= self.poll_interval <= 3600:
            raise InputError("--poll-interval", "must be 0.01..3600 seconds")
        if not is_loopback(urlsplit(self.server).hostname or "") and not self.allow_remote:
            raise InputError("--server", "the simulator targets loopback servers only")
        for name, share in (
            ("--fail-self-test", self.fail_self_test),
            ("--roll-back", self.roll_back),
            ("--silent", self.silent),
        ):
            if not 0 <= share <= 1:
                raise InputError(name, "must be a share between 0% and 100%")
        if self.fail_self_test + self.roll_back + self.silent > 1:
            raise InputError("--fail-self-test", "the failure shares add up to more than 100%")
        if self.device_id_prefix is not None:
            check_name("--device-id-prefix", self.device_id_prefix + "-00000")
        return self

    @property
    def shares(self) -> tuple[float, float, float]:
        return (self.fail_self_test, self.roll_back, self.silent)


@dataclass(slots=True)
class FleetReport:
    devices: int
    duration: float = 0.0
    polls: int = 0
    manifests: int = 0
    not_modified: int = 0
    no_release: int = 0
    updates: int = 0
    downloaded_bytes: int = 0
    rejected: int = 0
    #: downloads answered 404 because the release was yanked after the poll that named it
    withdrawn: int = 0
    #: polls retried once because the server closed an idle kept-alive connection meanwhile
    retried: int = 0
    errors: int = 0
    #: reports the server has (accepted, or a resent one it already had), sending attempts that
    #: failed or were refused, and reports still queued when the run ended
    reports: int = 0
    report_errors: int = 0
    reports_undelivered: int = 0
    #: updates that ended in an injected fault, by fault
    faults: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    final_seqs: dict[int, int] = field(default_factory=dict)

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        del data["latencies_ms"]
        data["polls_per_second"] = round(self.polls / self.duration, 1) if self.duration else 0.0
        data["latency_ms"] = {
            "p50": round(self.percentile(0.50), 2),
            "p90": round(self.percentile(0.90), 2),
            "p99": round(self.percentile(0.99), 2),
            "max": round(max(self.latencies_ms, default=0.0), 2),
        }
        data["final_seqs"] = {str(k): v for k, v in sorted(self.final_seqs.items())}
        return data


class _Verifier:
    """Shared, cached verification for a fleet holding the same keys."""

    def __init__(self, keys: DeviceKeys | None) -> None:
        self.keys = keys
        self._opened: dict[bytes, ManifestClaims | ReleaseRejected] = {}

    def claims(self, manifest: bytes) -> ManifestClaims:
        if self.keys is None:
            raise RuntimeError("protocol-only fleets do not open manifests")
        digest = hashlib.sha256(manifest).digest()
        cached = self._opened.get(digest)
        if cached is None:
            try:
                cached = open_checked(manifest, self.keys).claims
            except ReleaseRejected as exc:
                cached = exc
            self._opened[digest] = cached
        if isinstance(cached, ReleaseRejected):
            raise cached
        return cached


#: devices per HTTP client: httpcore's pool scans all its connections on every request, so one
#: pool for the whole fleet made the simulator, not the server, the bottleneck (O(devices))
DEVICES_PER_CLIENT: Final = 64


class _Fleet:
    def __init__(
        self, config: FleetConfig, clients: list[httpx.AsyncClient], verifier: _Verifier
    ) -> None:
        self.config = config
        self.clients = clients
        self.verifier = verifier
        self.report = FleetReport(devices=config.devices)
        self.deadline = 0.0
        self.base = config.server.rstrip("/")
        self.prefix = config.device_id_prefix or f"sim-{secrets.token_hex(3)}"
        self.stop: threading.Event | None = None

    def _budget_left(self) -> bool:
        return (
            time.monotonic() < self.deadline
            and not (self.stop is not None and self.stop.is_set())
            and self.report.polls + self.report.updates < self.config.max_requests
        )

    def _error(self, message: str) -> None:
        self.report.errors += 1
        if len(self.report.error_samples) < 20:
            self.report.error_samples.append(message)

    async def _download(
        self, client: httpx.AsyncClient, seq: int, claims: ManifestClaims | None
    ) -> bool:
        url = release_binary_url(self.base, self.config.device_type, seq)
        digest = hashlib.sha256()
        size = 0
        async with client.stream("GET", url) as response:
            if response.status_code == 404:
                # yanked or deleted between the poll and the download: not an error, the
                # device polls again and follows the new "newest"
                self.report.withdrawn += 1
                return False
            if response.status_code != 200:
                self._error(f"binary {seq}: HTTP {response.status_code}")
                return False
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                digest.update(chunk)
                if claims is not None and size > claims.enc_size:
                    self.report.rejected += 1
                    return False
        self.report.downloaded_bytes += size
        if claims is not None and digest.hexdigest() != claims.enc_sha256:
            self.report.rejected += 1
            return False
        return True

    async def _report(
        self, state: dict[str, Any], event: Event, *, release: int, detail: str = ""
    ) -> None:
        if not self.config.reports:
            return
        signer: ReportSigner | None = state.get("signer")
        if signer is None:
            signer = state["signer"] = ReportSigner(ec.generate_private_key(ec.SECP256R1()))
        state["counter"] = state.get("counter", 0) + 1
        token = signer.sign(
            Report(
                device_id=state["id"],
                device_type=self.config.device_type,
                event=event,
                reason=None,
                detail=detail,
                seq=state["seq"],
                secure_version=0,
                version=f"sim-{state['seq']}",
                release=release,
                counter=state["counter"],
                pub=signer.pub,
            )
        )
        state.setdefault("pending", []).append(token)
        await self._flush_reports(state)

    async def _flush_reports(self, state: dict[str, Any]) -> None:
        """Send the device's queued reports in order; keep those that could not be delivered."""
        pending: list[str] = state.get("pending", [])
        client: httpx.AsyncClient = state["client"]
        while pending:
            token = pending[0]
            try:
                response = await client.post(
                    reports_url(self.base),
                    content=token.encode(),
                    headers={"content-type": REPORT_CONTENT_TYPE},
                )
            except httpx.HTTPError as exc:
                self.report.report_errors += 1
                self._error(f"report: {type(exc).__name__}: {exc}")
                state["resending"] = token
                return
            status = response.status_code
            if status >= 500 or status in (401, 429):
                self.report.report_errors += 1
                self._error(f"report: HTTP {status} {response.text[:100]}")
                state["resending"] = token
                return
            pending.pop(0)
            if status == 200 or (status == 409 and state.get("resending") == token):
                self.report.reports += 1  # a resent report the server already had: delivered
            else:
                self.report.report_errors += 1
                self._error(f"report: HTTP {status} {response.text[:100]}")
            state.pop("resending", None)

    async def _install(self, state: dict[str, Any], seq: int) -> None:
        """After a verified download: report, then confirm or fail as injected."""
        await self._report(state, Event.INSTALLED, release=seq)
        fault = state["fault"]
        if fault is None:
            state["seq"] = seq
            self.report.updates += 1
            await self._report(state, Event.CONFIRMED, release=seq)
            return
        state["failed"] = seq  # a device does not retry a release that failed on it
        self.report.faults[fault] = self.report.faults.get(fault, 0) + 1
        if fault == "self-test":
            await self._report(state, Event.FAILED, release=seq, detail="self-test failed")
        elif fault == "roll-back":
            await self._report(
                state, Event.ROLLED_BACK, release=seq, detail="the new image did not boot"
            )
        else:
            state["silent"] = True  # never heard of again

    async def _poll(self, state: dict[str, Any]) -> None:
        verify = self.verifier.keys is not None
        nonce = (
            new_nonce() if verify and self.verifier.keys and self.verifier.keys.freshness else None
        )
        params = poll_query(self.config.device_type, nonce, state["id"])
        headers = {"If-None-Match": f'"{state["etag"]}"'} if state.get("etag") else {}
        started = time.perf_counter()
        client: httpx.AsyncClient = state["client"]
        url = newest_manifest_url(self.base)
        try:
            response = await client.get(url, params=params, headers=headers)
        except httpx.RemoteProtocolError:
            # the server closed a kept-alive connection as the request went out (its idle
            # timeout): a GET is idempotent, so retry once on a new connection, as HTTP
            # clients do (RFC 9112 §9.3.1); counted, not hidden
            self.report.retried += 1
            response = await client.get(url, params=params, headers=headers)
        self.report.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.report.polls += 1
        if response.status_code == 404:
            self.report.no_release += 1
            return
        if response.status_code == 304:
            self.report.not_modified += 1
            manifest = state.get("manifest")
        elif response.status_code == 200:
            self.report.manifests += 1
            manifest = response.content
            if len(manifest) > MAX_MANIFEST_SIZE:
                self.report.rejected += 1
                return
            state["etag"] = response.headers.get("etag", "").strip('"')
            state["manifest"] = manifest
        else:
            self._error(f"manifest poll: HTTP {response.status_code}")
            return
        if manifest is None:
            return
        claims: ManifestClaims | None = None
        if verify:
            try:
                claims = self.verifier.claims(manifest)
                if nonce and self.verifier.keys is not None:
                    check_freshness(
                        response.headers.get(FRESHNESS_HEADER),
                        manifest,
                        claims,
                        self.verifier.keys,
                        nonce=nonce,
                        device_type=self.config.device_type,
                        device_id=state["id"],
                    )
            except ReleaseRejected:
                self.report.rejected += 1
                return
            seq = claims.seq
        else:
            release = response.headers.get(RELEASE_HEADER) or state.get("release")
            if not release or not str(release).isdigit():
                return
            state["release"] = release
            seq = int(release)
        if (
            seq > state["seq"]
            and seq != state.get("failed")
            and await self._download(client, seq, claims)
        ):
            await self._install(state, seq)

    async def device(self, index: int) -> None:
        device_id = f"{self.prefix}-{index:05d}"
        state: dict[str, Any] = {
            "id": device_id,
            "seq": self.config.installed_seq,
            "client": self.clients[index // DEVICES_PER_CLIENT],
            "fault": fault_of(device_id, self.config.shares),
        }
        interval = self.config.poll_interval
        await asyncio.sleep(random.uniform(0, interval))  # noqa: S311 -- spreading load, not security
        while self._budget_left() and not state.get("silent"):
            started = time.monotonic()
            try:
                await self._flush_reports(state)  # anything an earlier attempt could not deliver
                await self._poll(state)
            except (httpx.HTTPError, FormatError) as exc:
                self._error(f"{type(exc).__name__}: {exc}")
            remaining = interval - (time.monotonic() - started)
            if remaining > 0:
                await asyncio.sleep(min(remaining, max(0.0, self.deadline - time.monotonic())))
        self.report.final_seqs[index] = state["seq"]
        self.report.reports_undelivered += len(state.get("pending", []))


async def simulate(config: FleetConfig, *, stop: threading.Event | None = None) -> FleetReport:
    """Run the fleet until the duration or request budget is spent (or ``stop`` is set, from
    another thread); return the report."""
    config = config.validated()
    keys = load_device_keys(config.keys_dir) if config.keys_dir else None
    context = client_context(config.ca_file)
    shards = -(-config.devices // DEVICES_PER_CLIENT)
    per_client = max(1, -(-config.max_connections // shards))
    limits = httpx.Limits(
        max_connections=per_client,
        max_keepalive_connections=0 if config.new_connection_per_poll else per_client,
    )
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    verify=context,
                    limits=limits,
                    timeout=httpx.Timeout(config.timeout),
                    headers=device_auth_headers(config.token),
                )
            )
            for _ in range(shards)
        ]
        fleet = _Fleet(config, clients, _Verifier(keys))
        fleet.stop = stop
        started = time.monotonic()
        fleet.deadline = started + config.duration
        await asyncio.gather(*(fleet.device(i) for i in range(config.devices)))
        fleet.report.duration = time.monotonic() - started
    return fleet.report
