"""Throttling, token and password helpers (pure)."""

from __future__ import annotations

import pytest

from secure_fota.errors import InputError
from secure_fota.server.auth import (
    CLIENT_FACTOR,
    FailureThrottle,
    hash_password,
    new_token,
    token_digest,
)
from secure_fota.server.errors import Throttled


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_user_locked_after_max_failures_then_released() -> None:
    clock = Clock()
    throttle = FailureThrottle(max_failures=3, window=60, lockout=30, clock=clock)
    keys = ["user:alice"]
    for _ in range(3):
        throttle.check(keys)
        throttle.failure(keys)
    with pytest.raises(Throttled) as caught:
        throttle.check(keys)
    assert caught.value.retry_after == 30
    clock.now += 29.5
    with pytest.raises(Throttled) as caught:
        throttle.check(keys)
    assert caught.value.retry_after == 1
    clock.now += 1
    throttle.check(keys)


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    throttle = FailureThrottle(max_failures=3, window=10, lockout=30, clock=clock)
    for _ in range(10):
        throttle.failure(["user:bob"])
        clock.now += 6
        throttle.check(["user:bob"])


def test_success_resets_and_clients_get_more_room() -> None:
    throttle = FailureThrottle(max_failures=2, window=60, lockout=30, clock=Clock())
    throttle.failure(["user:a"])
    throttle.success(["user:a"])
    throttle.failure(["user:a"])
    throttle.check(["user:a"])
    for _ in range(2 * CLIENT_FACTOR - 1):
        throttle.failure(["client:1.2.3.4"])
    throttle.check(["client:1.2.3.4"])
    throttle.failure(["client:1.2.3.4"])
    with pytest.raises(Throttled):
        throttle.check(["client:1.2.3.4"])


def test_tokens_and_passwords() -> None:
    token = new_token()
    assert token.startswith("fota_")
    assert new_token() != token
    assert len(token_digest(token)) == 64
    assert hash_password("long enough password").startswith("$argon2id$")
    with pytest.raises(InputError):
        hash_password("")
