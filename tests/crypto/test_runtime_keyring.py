"""The runtime loads the keyring once at start and hands it to every actor builder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from daemon.config import Settings
from daemon.errors import EXIT_OK, CryptoError
from daemon.observability.metrics import Metrics
from daemon.runtime.actor import Actor
from daemon.runtime.process import run_process
from daemon.runtime.resources import Resources
from tests.crypto.support import KEY_A, KEY_B, env_keys


async def _resources_of(settings: Settings, metrics: Metrics) -> Resources:
    seen: list[Resources] = []
    stop = asyncio.Event()

    async def build(resources: Resources) -> Sequence[Actor]:
        seen.append(resources)
        stop.set()
        return []

    assert await asyncio.wait_for(run_process(settings, metrics=metrics, stop=stop, build_actors=build), 20) == EXIT_OK
    return seen[0]


async def test_resources_carry_the_configured_keyring(make_settings: Callable[..., Settings], metrics: Metrics) -> None:
    """With ENCRYPTION_KEYS set, Resources.keyring has those keys, the active one, and counts decrypt failures."""
    settings = make_settings(**env_keys({"a": KEY_A, "b": KEY_B}, active="b"))
    keyring = (await _resources_of(settings, metrics)).keyring
    assert keyring.key_ids == ("a", "b") and keyring.active_key_id == "b"
    blob = keyring.encrypt("x", column="ip_enc", record_id=1)
    with pytest.raises(CryptoError):
        keyring.decrypt(blob, column="ip_enc", record_id=2)
    assert metrics.decrypt_failures._value.get() == 1


async def test_development_keyring_survives_restarts(make_settings: Callable[..., Settings], metrics: Metrics) -> None:
    """Two starts in development with the same DEV_KEY_FILE share keys: data written by the first is readable."""
    settings = make_settings()
    first = (await _resources_of(settings, metrics)).keyring
    blob = first.encrypt("10.0.0.1", column="ip_enc", record_id=4)
    second = (await _resources_of(settings, Metrics())).keyring
    assert second.decrypt(blob, column="ip_enc", record_id=4) == "10.0.0.1"
