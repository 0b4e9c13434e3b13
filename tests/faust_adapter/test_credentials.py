"""Faust's clients connect exactly as leadstream's own: the broker credentials the app
gets turn, through Faust's own translation, into ``KafkaSecurity.aiokafka_kwargs()``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.faust_adapter.app import broker_credentials, create_app
from streams.kafkasecurity import security_of
from streams.local.tls import TlsFiles, ensure_tls_files
from streams.settings import Settings
from tests.support import close_app_loops


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_tls_files(tmp_path_factory.mktemp("tls") / "tls")


def environments(tls: TlsFiles) -> dict[str, dict[str, str]]:
    sasl = {"KAFKA_SASL_USERNAME": "leadstream", "KAFKA_SASL_PASSWORD": "pw-7f3a9c"}
    return {
        "plaintext": {},
        "ssl": {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": str(tls.ca)},
        "mtls": {
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CA_FILE": str(tls.ca),
            "KAFKA_SSL_CERT_FILE": str(tls.client_cert),
            "KAFKA_SSL_KEY_FILE": str(tls.client_key),
        },
        "sasl_plaintext": {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            **sasl,
        },
        "sasl_ssl": {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "KAFKA_SSL_CA_FILE": str(tls.ca),
            **sasl,
        },
    }


@pytest.mark.parametrize("name", ["plaintext", "ssl", "mtls", "sasl_plaintext", "sasl_ssl"])
def test_fausts_translation_of_the_credentials_is_ours(name: str, tls: TlsFiles) -> None:
    security = security_of(Settings.from_env(environments(tls)[name]))
    faust_kwargs: dict[str, Any] = dict(credentials_to_aiokafka_auth(broker_credentials(security)))
    ours = security.aiokafka_kwargs()
    # The same context object, not merely an equal one: built once, by streams.kafkasecurity.
    assert faust_kwargs.pop("ssl_context", None) is ours.pop("ssl_context", None)
    assert faust_kwargs == ours
    assert ours["security_protocol"] == security.protocol


def test_the_app_hands_the_credentials_to_its_producer_and_consumer(
    tls: TlsFiles, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        environments(tls)["sasl_ssl"],
        app_id="credentials-unit",
        data_dir=str(tmp_path),
        store="memory://",
    )
    ls = create_app(settings)
    try:
        conf = ls.app.conf
        expected = security_of(settings).aiokafka_kwargs()
        expected.pop("ssl_context")
        # What Faust's consumer (``_create_worker_consumer``) and producer pass aiokafka.
        for auth in (
            credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
            ls.app.producer._settings_auth(),
        ):
            got = dict(auth)
            assert got.pop("ssl_context") is not None
            assert got == expected
        assert "pw-7f3a9c" not in repr(conf.broker_credentials)
    finally:
        close_app_loops(ls.app)
