"""How every Kafka client of leadstream authenticates and encrypts: one translation.

The worker's settings (``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_SSL_*``)
become a :class:`KafkaSecurity` here, and only here: secrets read from their files, the
TLS context built, the combination checked. Each client takes it from there: aiokafka
clients as :meth:`KafkaSecurity.aiokafka_kwargs`, Faust as ``broker_credentials``
(``streams.faust_adapter.app.broker_credentials``, a wrapper of the same fields, since
only the adapter imports Faust). So the worker's consumer and producer, the topic admin,
the changelog preload, ``tail``, ``demo`` and the bench all connect the same way.

No Faust or aiokafka import: Settings validation calls :func:`security_of` at start,
so a missing file or a half-configured SASL setup is one line before anything
connects. Secrets never appear in a repr or an error message.

Example::

    security = security_of(Settings.from_env())
    consumer = AIOKafkaConsumer(bootstrap_servers=..., **security.aiokafka_kwargs())
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.settings import ENV_VARS, SettingsError

if TYPE_CHECKING:
    from streams.settings import Settings

#: Kafka's security protocols, as its clients name them.
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SASL mechanisms with a username and password (GSSAPI and OAUTHBEARER need more).
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: Settings only SASL uses, and only TLS uses: set with a protocol without either,
#: they mean the protocol was forgotten, and connecting without them would be wrong.
SASL_FIELDS = ("sasl_mechanism", "sasl_username", "sasl_password", "sasl_password_file")
TLS_FIELDS = ("ssl_ca_file", "ssl_cert_file", "ssl_key_file")


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """What a Kafka client needs to connect, secrets resolved (never in the repr)."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: Server verification (system CAs or KAFKA_SSL_CA_FILE), hostname check and the
    #: client certificate; None without TLS.
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    #: KAFKA_SSL_CA_FILE, for error messages (None: the system's CAs).
    ca_file: str | None = None
    #: Whether a client certificate is presented (mTLS), for error messages.
    client_certificate: bool = False

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient.

        The same mapping as Faust's ``credentials_to_aiokafka_auth`` makes of
        ``broker_credentials`` (tests/faust_adapter/test_credentials.py holds them equal).
        """
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls or self.sasl:
            kwargs["ssl_context"] = self.ssl_context  # None with SASL_PLAINTEXT, as Faust's
        if self.sasl:
            kwargs["sasl_mechanism"] = self.mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password
        return kwargs

    def describe(self) -> str:
        """For logs and errors: ``SASL_SSL (SCRAM-SHA-512 as 'leadstream')``."""
        if self.sasl:
            return f"{self.protocol} ({self.mechanism} as {self.username!r})"
        if self.client_certificate:
            return f"{self.protocol} (client certificate)"
        return self.protocol


#: No TLS, no SASL: Kafka's default, and what a client gets when given nothing.
PLAINTEXT = KafkaSecurity()


def security_of(settings: Settings) -> KafkaSecurity:
    """The settings' Kafka security, checked; reads the secret files and the PEM files.

    Raises :class:`SettingsError` with one line naming the variable at fault.
    """
    protocol = settings.security_protocol
    if protocol not in PROTOCOLS:
        raise SettingsError(
            f"{ENV_VARS['security_protocol']}={protocol!r}: use one of {', '.join(PROTOCOLS)}"
        )
    tls, sasl = protocol.endswith("SSL"), protocol.startswith("SASL_")
    _unused(settings, SASL_FIELDS, used=sasl, what="SASL", hint="SASL_SSL")
    _unused(settings, TLS_FIELDS, used=tls, what="TLS", hint="SSL or SASL_SSL")
    mechanism = username = password = None
    if sasl:
        mechanism = settings.sasl_mechanism
        if not mechanism:
            raise SettingsError(
                f"{ENV_VARS['security_protocol']}={protocol} needs "
                f"{ENV_VARS['sasl_mechanism']} ({', '.join(MECHANISMS)})"
            )
        if mechanism not in MECHANISMS:
            raise SettingsError(
                f"{ENV_VARS['sasl_mechanism']}={mechanism!r}: use one of {', '.join(MECHANISMS)}"
            )
        username = settings.sasl_username
        if not username:
            raise SettingsError(
                f"{ENV_VARS['security_protocol']}={protocol} needs {ENV_VARS['sasl_username']}"
            )
        password = _secret(settings, "sasl_password", "sasl_password_file", protocol)
    context = _ssl_context(settings) if tls else None
    return KafkaSecurity(
        protocol=protocol,
        mechanism=mechanism,
        username=username,
        password=password,
        ssl_context=context,
        ca_file=settings.ssl_ca_file or None,
        client_certificate=bool(settings.ssl_cert_file),
    )


def _unused(
    settings: Settings, names: tuple[str, ...], *, used: bool, what: str, hint: str
) -> None:
    if used:
        return
    given = [ENV_VARS[name] for name in names if getattr(settings, name)]
    if given:
        raise SettingsError(
            f"{', '.join(given)} set, but {ENV_VARS['security_protocol']}="
            f"{settings.security_protocol} does not use {what}: set it to {hint}, or unset them"
        )


def _secret(settings: Settings, name: str, file_name: str, protocol: str) -> str:
    """The value of ``name``, or the contents of the file ``file_name`` points at."""
    value, path = getattr(settings, name), getattr(settings, file_name)
    var, file_var = ENV_VARS[name], ENV_VARS[file_name]
    if value and path:
        raise SettingsError(f"set {var} or {file_var}, not both")
    if path:
        try:
            # A mounted secret or a file written by `echo` ends in a newline that is
            # not part of the password; any other whitespace is.
            value = Path(path).read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{file_var}={path!r}: {_reason(exc)}") from None
        if not value:
            raise SettingsError(f"{file_var}={path!r} is empty")
    if not value:
        raise SettingsError(
            f"{ENV_VARS['security_protocol']}={protocol} needs {var} (or {file_var})"
        )
    return str(value)


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the broker against KAFKA_SSL_CA_FILE (else the system's CAs), checks
    its hostname unless turned off, and presents the client certificate if given."""
    ca_file = settings.ssl_ca_file or None
    try:
        # With a CA file, only that CA is trusted (a private cluster's); without one,
        # the system's (what managed services' certificates chain to).
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"{ENV_VARS['ssl_ca_file']}={ca_file!r}: {_reason(exc)}") from None
    context.check_hostname = settings.ssl_check_hostname
    cert, key = settings.ssl_cert_file, settings.ssl_key_file
    if key and not cert:
        raise SettingsError(f"{ENV_VARS['ssl_key_file']} needs {ENV_VARS['ssl_cert_file']}")
    if cert:
        try:
            context.load_cert_chain(cert, key or None, password=_refuse_encrypted_key)
        except _EncryptedKeyError:
            raise SettingsError(
                f"{ENV_VARS['ssl_key_file'] if key else ENV_VARS['ssl_cert_file']}: the client "
                "key is encrypted; give it unencrypted (a mounted secret, readable only by "
                "the worker)"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            where = f"{ENV_VARS['ssl_cert_file']}={cert!r}"
            if key:
                where += f", {ENV_VARS['ssl_key_file']}={key!r}"
            raise SettingsError(f"{where}: {_reason(exc)}") from None
    return context


class _EncryptedKeyError(Exception):
    pass


def _refuse_encrypted_key() -> str:
    # Without a callback, OpenSSL would prompt for the passphrase on the terminal: a
    # worker under an orchestrator would hang at start instead of failing.
    raise _EncryptedKeyError


def _reason(exc: BaseException) -> str:
    """An error's reason without a traceback: ``No such file or directory``."""
    if isinstance(exc, ssl.SSLError):
        return f"not usable as PEM ({getattr(exc, 'reason', None) or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, UnicodeDecodeError):
        return "not text"
    return str(exc)
