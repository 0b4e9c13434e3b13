"""The start-up check of Faust's, mode's and aiokafka's internals: passes on what is
installed, and names exactly what changed when something did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.faust_adapter import compat
from streams.settings import Settings
from tests.support import close_app_loops


def test_the_installed_versions_have_everything_the_adapter_uses() -> None:
    compat.check_installed()


def test_another_faust_version_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = compat.metadata.version
    monkeypatch.setattr(
        compat.metadata, "version", lambda d: "0.16.0" if d == "faust-streaming" else real(d)
    )
    with pytest.raises(compat.CompatError) as raised:
        compat.check_installed()
    message = str(raised.value)
    assert "faust-streaming 0.16.0 is installed" in message and "0.15.3" in message
    assert "\n" not in message


def test_a_missing_private_method_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = (("mode.threads", "QueueServiceThread", ("_serve", "_gone_in_next_release")),)
    monkeypatch.setattr(compat, "CLASS_ATTRIBUTES", wanted)
    with pytest.raises(
        compat.CompatError,
        match=r"QueueServiceThread no longer has "
        r"_gone_in_next_release:",
    ):
        compat.check_installed()


def test_an_instance_attribute_assigned_in_init_is_checked_in_its_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wanted = (("aiokafka.consumer.fetcher", "Fetcher", ("_fetch_min_bytes", "_renamed")),)
    monkeypatch.setattr(compat, "INIT_ASSIGNED", wanted)
    with pytest.raises(compat.CompatError, match=r"Fetcher no longer has _renamed:"):
        compat.check_installed()


def test_fausts_real_consumer_has_what_intake_uses(tmp_path: Path) -> None:
    from streams.faust_adapter.app import create_app

    settings = Settings.from_env(
        {}, app_id="compat-unit", data_dir=str(tmp_path), store="memory://"
    )
    ls = create_app(settings)  # builds the consumer, which Intake checks
    try:
        compat.check_consumer(ls.app.consumer)

        class Trimmed:
            """A consumer from a release that dropped its ack bookkeeping."""

            def __getattr__(self, name: str) -> Any:
                if name == "_acked_index":
                    raise AttributeError(name)
                return getattr(ls.app.consumer, name)

        with pytest.raises(compat.CompatError, match="no longer has _acked_index"):
            compat.check_consumer(Trimmed())
    finally:
        close_app_loops(ls.app)


def test_a_private_function_that_lost_a_parameter_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = (("aiokafka.conn", "create_conn", ("ssl_context", "sasl_renamed")),)
    monkeypatch.setattr(compat, "FUNCTIONS", wanted)
    with pytest.raises(
        compat.CompatError, match=r"aiokafka\.conn\.create_conn\(\) no longer has sasl_renamed:"
    ):
        compat.check_installed()
    monkeypatch.setattr(compat, "FUNCTIONS", (("aiokafka.conn", "gone_fn", ()),))
    with pytest.raises(compat.CompatError, match=r"aiokafka\.conn\.gone_fn is gone"):
        compat.check_installed()
