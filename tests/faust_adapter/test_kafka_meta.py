"""The first connection's verdicts, against in-process servers (the real broker's are
in tests/integration/test_kafka_security.py): what retrying cannot fix fails at once
with the setting to change; a broker that is not there yet is waited for."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from streams.faust_adapter.kafka_meta import (
    MISMATCH_LIMIT,
    RETRY_BACKOFF_S,
    BrokerAccessError,
    _fatal,
    check_access,
)
from streams.kafkasecurity import KafkaSecurity, security_of
from streams.local.kafka import free_ports
from streams.local.tls import TlsFiles, ensure_tls_files
from streams.settings import Settings


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_tls_files(tmp_path_factory.mktemp("tls") / "tls")


def tls_client(ca: Path, **extra: str) -> KafkaSecurity:
    env = {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": str(ca), **extra}
    return security_of(Settings.from_env(env))


@asynccontextmanager
async def dropping_server(
    host: str = "127.0.0.1", context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """Accepts connections (TLS with ``context``) and closes each unanswered, as a
    listener of another protocol does; yields its address and a count of them (with
    TLS, of those whose handshake succeeded)."""
    accepted = [0]

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        writer.close()

    server = await asyncio.start_server(drop, host, free_ports(1)[0], ssl=context)
    async with server:
        yield f"{host}:{server.sockets[0].getsockname()[1]}", accepted


def broker_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.broker_keystore)
    return context


async def refused(security: KafkaSecurity, bootstrap: str) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(BrokerAccessError) as raised:
        await check_access(bootstrap, security, timeout=30)
    message = str(raised.value)
    assert "\n" not in message
    return message, time.monotonic() - started


async def test_a_certificate_from_another_ca_fails_at_once(tls: TlsFiles, tmp_path: Path) -> None:
    other = ensure_tls_files(tmp_path / "other")
    async with dropping_server(context=broker_context(tls)) as (bootstrap, _):
        message, seconds = await refused(tls_client(other.ca), bootstrap)
    assert f"the TLS certificate of Kafka at {bootstrap} is not trusted by" in message
    assert f"KAFKA_SSL_CA_FILE={other.ca}" in message and "set KAFKA_SSL_CA_FILE" in message
    assert seconds < RETRY_BACKOFF_S  # no second try


async def test_a_certificate_for_another_host_fails_unless_the_check_is_off(
    tls: TlsFiles,
) -> None:
    # Loopback answers on all of 127/8; the certificate names 127.0.0.1 and localhost.
    async with dropping_server("127.0.0.2", broker_context(tls)) as (bootstrap, _):
        message, _ = await refused(tls_client(tls.ca), bootstrap)
        assert "is not valid for '127.0.0.2'" in message
        assert "KAFKA_SSL_CHECK_HOSTNAME=false would accept any certificate" in message
        unchecked = tls_client(tls.ca, KAFKA_SSL_CHECK_HOSTNAME="false")
        # TLS now succeeds; this server then drops the connection, as a non-Kafka would.
        message, _ = await refused(unchecked, bootstrap)
    assert "closed every connection before answering" in message


async def test_a_listener_that_drops_every_connection_is_given_up_soon(tls: TlsFiles) -> None:
    async with dropping_server() as (bootstrap, accepted):
        message, seconds = await refused(tls_client(tls.ca), bootstrap)
    assert accepted == [MISMATCH_LIMIT]
    assert "does KAFKA_SECURITY_PROTOCOL=SSL match the listener" in message
    assert "does it require a client certificate (KAFKA_SSL_CERT_FILE)" in message
    assert seconds < 10


async def test_a_plaintext_client_at_a_dropping_listener_gets_the_hint(tls: TlsFiles) -> None:
    async with dropping_server(context=broker_context(tls)) as (bootstrap, _):
        message, _ = await refused(KafkaSecurity(), bootstrap)
    assert f"closed every connection before answering, {MISMATCH_LIMIT} times" in message
    assert "PLAINTEXT match the listener?" in message


async def test_a_broker_that_is_not_there_is_waited_for_until_the_deadline() -> None:
    [port] = free_ports(1)
    started = time.monotonic()
    with pytest.raises(BrokerAccessError, match=rf"cannot reach Kafka at 127.0.0.1:{port} within"):
        await check_access(f"127.0.0.1:{port}", KafkaSecurity(), timeout=1.5)
    assert time.monotonic() - started >= 1.5


async def test_a_broker_that_comes_up_late_is_retried_not_given_up() -> None:
    [port] = free_ports(1)
    served = asyncio.Event()

    async def kafka_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.set()  # answered below by closing: enough to show we got a connection
        writer.close()

    async def start_later() -> asyncio.Server:
        await asyncio.sleep(1.0)  # the broker's start-up, not synchronisation
        return await asyncio.start_server(kafka_like, "127.0.0.1", port)

    starting = asyncio.create_task(start_later())
    with pytest.raises(BrokerAccessError, match="closed every connection"):
        await check_access(f"127.0.0.1:{port}", KafkaSecurity(), timeout=30)
    server = await starting
    server.close()
    assert served.is_set()  # refused first, then reached: retried, not given up


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (lambda: _sasl_failed(), "Kafka at h:9 refused 'leadstream' (SCRAM-SHA-512): bad creds;"),
        (lambda: _unsupported(), "does not enable SASL mechanism SCRAM-SHA-512 on this listener"),
        (lambda: ssl.SSLError(1, "[SSL] wrong version number"), "TLS with Kafka at h:9 failed"),
        (lambda: ConnectionRefusedError(111, "refused"), None),
        (lambda: TimeoutError(), None),
    ],
)
def test_which_errors_are_final(error: Callable[[], BaseException], expected: str | None) -> None:
    security = KafkaSecurity(
        protocol="SASL_SSL", mechanism="SCRAM-SHA-512", username="leadstream", password="pw"
    )
    verdict = _fatal(error(), "h", 9, security)
    if expected is None:
        assert verdict is None
    else:
        assert verdict is not None and expected in verdict and "pw" not in verdict


def _sasl_failed() -> BaseException:
    from aiokafka.errors import SaslAuthenticationFailed

    return SaslAuthenticationFailed("bad creds")


def _unsupported() -> BaseException:
    from aiokafka.errors import UnsupportedSaslMechanismError

    return UnsupportedSaslMechanismError("<AIOKafkaConnection host=h port=9>")
