"""Topic metadata from an aiokafka consumer, and a first connection that fails fast.

:func:`check_access` connects to a bootstrap broker the way every client will (TLS,
SASL) before anything else does. aiokafka's clients log a refused password or an
untrusted certificate and retry it, then report only that they could not bootstrap;
here those are one line that says what to fix, at once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from streams.kafkasecurity import PLAINTEXT, KafkaSecurity
from streams.settings import ENV_VARS

#: Consecutive connections a broker closes before its first answer that mean the
#: listener speaks another protocol (or wants a client certificate), not a broker
#: still starting: a starting broker refuses connections, it does not accept and drop.
MISMATCH_LIMIT = 3
#: Pause between rounds over the bootstrap brokers while none answers.
RETRY_BACKOFF_S = 0.5
#: Longest one connection attempt (TCP, TLS, SASL) may take.
ATTEMPT_TIMEOUT_S = 10.0


class BrokerAccessError(RuntimeError):
    """No bootstrap broker accepted this client; the message says why, in one line."""


async def partitions_for(consumer: Any, topic: str) -> set[int]:
    """Partition numbers of ``topic`` (empty if it does not exist).

    Asks for the metadata of all topics, never for ``topic`` by name: on brokers that
    auto-create topics, naming it would create it, uncompacted and with the broker's
    partition count. aiokafka has no public refresh of a consumer's metadata
    (``topics()`` fetches a copy the consumer does not keep).
    """
    parts = consumer.partitions_for_topic(topic)
    if parts is None:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
    return set(parts or ())


async def check_access(
    bootstrap: str,
    security: KafkaSecurity = PLAINTEXT,
    # A retry deadline (the broker may still be starting), not a cancel-after timeout.
    timeout: float = 60.0,  # noqa: ASYNC109
) -> None:
    """Return once a bootstrap broker accepts a connection with ``security``.

    Raises :class:`BrokerAccessError` at once for what retrying cannot fix (a refused
    password, an untrusted or misnamed certificate, a mechanism the listener does not
    enable), after a few tries for a listener that drops the connection (another
    protocol), and after ``timeout`` while no broker can be reached at all.
    """
    from aiokafka.conn import create_conn

    hosts = _hosts(bootstrap)
    deadline = time.monotonic() + timeout
    mismatches = 0
    last = "no attempt"
    while True:
        dropped = False
        for host, port in hosts:
            try:
                conn = await create_conn(
                    host,
                    port,
                    client_id="leadstream-probe",
                    request_timeout_ms=int(ATTEMPT_TIMEOUT_S * 1000),
                    **security.aiokafka_kwargs(),
                )
            except Exception as exc:  # aiokafka, ssl and socket errors alike
                fatal = _fatal(exc, host, port, security)
                if fatal is not None:
                    raise BrokerAccessError(fatal) from None
                dropped |= _dropped(exc)
                last = f"{host}:{port}: {_describe(exc)}"
                continue
            conn.close()
            return
        mismatches = mismatches + 1 if dropped else 0
        if mismatches >= MISMATCH_LIMIT:
            raise BrokerAccessError(_mismatch(last, security))
        if time.monotonic() > deadline:
            raise BrokerAccessError(
                f"cannot reach Kafka at {bootstrap} within {timeout:.0f}s ({last})"
            )
        await asyncio.sleep(RETRY_BACKOFF_S)  # retry backoff while the broker starts up


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        hosts.append((host.strip("[]") or item.strip(), int(port) if port.isdigit() else 9092))
    return hosts


def _fatal(exc: BaseException, host: str, port: int, security: KafkaSecurity) -> str | None:
    """The one-line reason for an error retrying cannot fix; None for any other."""
    from aiokafka.errors import (
        BrokerResponseError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    where = f"Kafka at {host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code in _NAME_MISMATCH:
            return (
                f"the TLS certificate of {where} is not valid for {host!r} "
                f"({exc.verify_message}): put a name the certificate lists in "
                f"{ENV_VARS['bootstrap_servers']} ({ENV_VARS['ssl_check_hostname']}=false "
                "would accept any certificate the CA signed: unsafe)"
            )
        trust = (
            f"{ENV_VARS['ssl_ca_file']}={security.ca_file}"
            if security.ca_file
            else f"the system's CAs ({ENV_VARS['ssl_ca_file']} is not set)"
        )
        return (
            f"the TLS certificate of {where} is not trusted by {trust}: "
            f"{exc.verify_message}; set {ENV_VARS['ssl_ca_file']} to the CA that signed it"
        )
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or exc  # None on one made by hand
        return (
            f"TLS with {where} failed ({reason}): is it a TLS listener? "
            f"({ENV_VARS['security_protocol']}={security.protocol})"
        )
    if isinstance(exc, SaslAuthenticationFailed):
        # The broker's message names the mechanism, never the password.
        said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else exc.description
        return (
            f"{where} refused {security.username!r} ({security.mechanism}): {said}; "
            f"check {ENV_VARS['sasl_username']} and {ENV_VARS['sasl_password']} "
            f"(or {ENV_VARS['sasl_password_file']})"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (
            f"{where} does not enable SASL mechanism {security.mechanism} on this listener: "
            f"set {ENV_VARS['sasl_mechanism']} to one it does"
        )
    if isinstance(exc, BrokerResponseError):  # another answer to the SASL handshake
        return f"{where} refused the connection: {_describe(exc)}"
    return None


#: OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH (the ssl
#: module has no names for them): the certificate is trusted, but for other hosts.
_NAME_MISMATCH = (62, 64)


def _dropped(exc: BaseException) -> bool:
    """Whether the broker accepted the TCP connection, then closed it unanswered."""
    from aiokafka.errors import KafkaConnectionError

    return isinstance(exc, KafkaConnectionError | ConnectionResetError)


def _mismatch(last: str, security: KafkaSecurity) -> str:
    hint = f"does {ENV_VARS['security_protocol']}={security.protocol} match the listener"
    if security.tls and not security.client_certificate:
        hint += f", and does it require a client certificate ({ENV_VARS['ssl_cert_file']})"
    return (
        f"Kafka closed every connection before answering, {MISMATCH_LIMIT} times ({last}): {hint}?"
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if not text or text.startswith("<"):  # aiokafka puts the connection's repr there
        text = getattr(exc, "description", "") or ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
