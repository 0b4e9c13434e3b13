"""Shared fixtures: a real Kafka broker for integration tests, unique names, markers.

The broker starts lazily, the first time a test asks for ``kafka_bootstrap``, so
``pytest tests/scoring`` needs neither Java nor Maven. Set ``KAFKA_BOOTSTRAP_SERVERS``
to run the integration tests against an existing broker instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_sessionstart(session: pytest.Session) -> None:
    from streams.build import scoring_build

    stale = scoring_build().stale_error()
    if stale is not None:  # the tests would check the old build, not the code
        pytest.exit(stale, returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/integration/ needs the broker; mark it so `-m "not integration"`
    # gives a Java-free run without each module having to remember the marker.
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a Kafka broker: ``KAFKA_BOOTSTRAP_SERVERS``, or a private local one.

    The local broker listens on free ports outside the ephemeral range (never the
    developer's 9092) with a
    fresh data dir; the jar cache is the user's, so only the first run ever fetches.
    """
    explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if explicit:
        yield explicit
        return
    from streams.local.kafka import LocalKafka, free_ports, pid_alive
    from streams.local.settings import LocalSettings

    port, controller_port = free_ports(2)
    broker = LocalKafka(
        cache_dir=LocalSettings.from_env().cache_dir,
        data_dir=tmp_path_factory.mktemp("kafka"),
        port=port,
        controller_port=controller_port,
    )
    broker.start()
    pid = broker.pid
    assert pid is not None
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
        # A leaked JVM would keep the ports and ~512 MiB until someone notices.
        assert not pid_alive(pid), f"broker JVM {pid} still running after stop()"


@pytest.fixture
def unique() -> str:
    """A short random suffix for topic and group names, so tests never share state."""
    return secrets.token_hex(5)
