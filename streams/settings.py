"""The worker's settings object, read from environment variables once.

Every knob of the runtime (the worker and what it shares with the CLI) lives here,
so the README table, ``docker-compose.yml`` and the Kubernetes manifests can be
checked against a single list (``ENV_VARS``). Explicit keyword arguments to
:meth:`Settings.from_env` override the environment (tests use that). The local
developer tooling has its own (``streams.local.settings``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

#: Faust's ``-l`` accepts these names only (not ``warning``).
LOG_LEVELS = ("crit", "error", "warn", "info", "debug")
#: Shortest API token accepted: a guessable one is no protection.
MIN_TOKEN_CHARS = 16
#: The worker's event loop: uvloop, or Python's own.
EVENT_LOOPS = ("uvloop", "asyncio")
#: Delivery of lead.qualified, dead letters and reroutes (docs/architecture.md).
PROCESSING_GUARANTEES = ("at_least_once", "exactly_once")
#: Shortest transaction timeout: a killed worker's open transaction blocks
#: read_committed readers of the partitions it wrote for this long at most (plus the
#: broker's abort check interval), unless its successor (same instance id) fences it
#: first. Longer than any window's transaction: one window's paced write and commit.
MIN_TRANSACTION_TIMEOUT_S = 10.0


class SettingsError(ValueError):
    """An environment variable holds a value the worker cannot use."""


_S = TypeVar("_S", bound="FromEnv")


class FromEnv:
    """``from_env`` for a dataclass whose fields name their variable (metadata ``env``)."""

    __slots__ = ()

    @classmethod
    def from_env(cls: type[_S], environ: Mapping[str, str] | None = None, **overrides: Any) -> _S:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in overrides:
                values[f.name] = overrides.pop(f.name)
                continue
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.metadata["env"], raw, _PARSERS.get(str(f.type), str))
        if overrides:
            raise TypeError(f"unknown settings: {', '.join(sorted(overrides))}")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`SettingsError` for a value the process cannot use."""


@dataclass(frozen=True, slots=True)
class Settings(FromEnv):
    """Runtime configuration; field metadata ``env`` names the variable that sets it."""

    bootstrap_servers: str = field(
        default="127.0.0.1:9092", metadata={"env": "KAFKA_BOOTSTRAP_SERVERS"}
    )
    #: How every Kafka client connects (streams.kafkasecurity): PLAINTEXT, SSL (TLS),
    #: SASL_PLAINTEXT or SASL_SSL (TLS plus a username and password).
    security_protocol: str = field(default="PLAINTEXT", metadata={"env": "KAFKA_SECURITY_PROTOCOL"})
    #: With SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    sasl_mechanism: str = field(default="", metadata={"env": "KAFKA_SASL_MECHANISM"})
    sasl_username: str = field(default="", metadata={"env": "KAFKA_SASL_USERNAME"})
    #: The password, or a file holding it (a mounted secret): set one. Never logged.
    sasl_password: str = field(default="", repr=False, metadata={"env": "KAFKA_SASL_PASSWORD"})
    sasl_password_file: str = field(default="", metadata={"env": "KAFKA_SASL_PASSWORD_FILE"})
    #: PEM CA certificate(s) the brokers' certificates must chain to; empty: the
    #: system's CAs (managed services use public ones).
    ssl_ca_file: str = field(default="", metadata={"env": "KAFKA_SSL_CA_FILE"})
    #: A client certificate (PEM) and its unencrypted key, for brokers that require
    #: one (mTLS); the key may be in the certificate's file.
    ssl_cert_file: str = field(default="", metadata={"env": "KAFKA_SSL_CERT_FILE"})
    ssl_key_file: str = field(default="", metadata={"env": "KAFKA_SSL_KEY_FILE"})
    #: Whether the broker's certificate must name the host connected to. Turning it off
    #: is unsafe: any certificate the CA signed, for any host, is then accepted.
    ssl_check_hostname: bool = field(default=True, metadata={"env": "KAFKA_SSL_CHECK_HOSTNAME"})
    app_id: str = field(default="leadstream", metadata={"env": "LEADSTREAM_APP_ID"})
    topic_web: str = field(default="web.visits", metadata={"env": "LEADSTREAM_TOPIC_WEB"})
    topic_email: str = field(default="email.events", metadata={"env": "LEADSTREAM_TOPIC_EMAIL"})
    topic_webinar: str = field(
        default="webinar.events", metadata={"env": "LEADSTREAM_TOPIC_WEBINAR"}
    )
    topic_profiles: str = field(
        default="lead.profiles", metadata={"env": "LEADSTREAM_TOPIC_PROFILES"}
    )
    topic_outcomes: str = field(
        default="lead.outcomes", metadata={"env": "LEADSTREAM_TOPIC_OUTCOMES"}
    )
    topic_qualified: str = field(
        default="lead.qualified", metadata={"env": "LEADSTREAM_TOPIC_QUALIFIED"}
    )
    topic_dlq: str = field(default="leadstream.dlq", metadata={"env": "LEADSTREAM_TOPIC_DLQ"})
    #: Partitions for topics leadstream creates; input topics must all have this many
    #: so one lead's events, its state and its timers share a partition number.
    partitions: int = field(default=4, metadata={"env": "LEADSTREAM_PARTITIONS"})
    store: str = field(default="rocksdb://", metadata={"env": "LEADSTREAM_STORE"})
    #: Decoded lead states kept in memory in front of the table, so hot leads skip a
    #: read and a decode (~3.4 KB each with the bench's mix). Past this, the states
    #: already written are dropped at the next window write.
    state_cache_leads: int = field(
        default=200_000, metadata={"env": "LEADSTREAM_STATE_CACHE_LEADS"}
    )
    #: RocksDB memory per partition's database (rocksdb://): up to 3 memtables of
    #: this size, and a block cache for states read back from disk. Kafka Streams'
    #: defaults; Faust's own (3 x 64 MiB and a 2 GiB cache) grow with the partitions a
    #: worker owns until they meet a container's memory limit.
    rocksdb_write_buffer_mib: int = field(
        default=16, metadata={"env": "LEADSTREAM_ROCKSDB_WRITE_BUFFER_MIB"}
    )
    rocksdb_block_cache_mib: int = field(
        default=50, metadata={"env": "LEADSTREAM_ROCKSDB_BLOCK_CACHE_MIB"}
    )
    data_dir: str = field(default="var/leadstream", metadata={"env": "LEADSTREAM_DATA_DIR"})
    web_host: str = field(default="127.0.0.1", metadata={"env": "LEADSTREAM_WEB_HOST"})
    web_port: int = field(default=6066, metadata={"env": "LEADSTREAM_WEB_PORT"})
    #: Bearer token the HTTP API requires on /leads/... (and /metrics, see below);
    #: empty: no token. Never logged. Or from a file (a Kubernetes secret): set one.
    api_token: str = field(default="", repr=False, metadata={"env": "LEADSTREAM_API_TOKEN"})
    api_token_file: str = field(default="", metadata={"env": "LEADSTREAM_API_TOKEN_FILE"})
    #: Whether /metrics needs the token too (Prometheus then sends it).
    metrics_require_token: bool = field(
        default=False, metadata={"env": "LEADSTREAM_METRICS_REQUIRE_TOKEN"}
    )
    log_level: str = field(default="info", metadata={"env": "LEADSTREAM_LOG_LEVEL"})
    #: Path to a scoring model TOML file; empty means the bundled default model.
    model_path: str = field(default="", metadata={"env": "LEADSTREAM_MODEL"})
    #: Events stamped further than this in the future are rejected (clock skew guard).
    max_future_skew_s: float = field(
        default=300.0, metadata={"env": "LEADSTREAM_MAX_FUTURE_SKEW_SECONDS"}
    )
    #: How long the group waits for a silent worker (killed, hung) before its
    #: partitions move. Faust's default is 60 s; heartbeats go every 3 s.
    session_timeout_s: float = field(
        default=10.0, metadata={"env": "LEADSTREAM_SESSION_TIMEOUT_SECONDS"}
    )
    #: A stable id per worker for static group membership: a worker restarted within
    #: the session timeout gets its partitions back without a rebalance. Only with a
    #: stable LEADSTREAM_WEB_HOST and port too: Faust's assignor refuses a member whose
    #: web URL changed (a pod IP does on rescheduling). Empty: dynamic membership.
    group_instance_id: str = field(default="", metadata={"env": "LEADSTREAM_GROUP_INSTANCE_ID"})
    #: Dead letters longer than this are truncated to it, with their original size and
    #: SHA-256 in headers: keep it under the dead-letter topic's max.message.bytes
    #: (Kafka's default: 1 MiB), or producing a huge invalid message would fail.
    dlq_max_value_bytes: int = field(
        default=512 * 1024, metadata={"env": "LEADSTREAM_DLQ_MAX_VALUE_BYTES"}
    )
    #: How often each worker checks its partitions for decay-driven stage changes.
    tick_interval_s: float = field(
        default=0.25, metadata={"env": "LEADSTREAM_TICK_INTERVAL_SECONDS"}
    )
    #: Most events scored together (their stage changes are sent when the batch ends).
    batch_size: int = field(default=500, metadata={"env": "LEADSTREAM_BATCH_SIZE"})
    #: Longest wait for more events once a batch has some. 0: take what is queued. A
    #: fetch's partitions arrive together, so waiting gathers more only when fetches
    #: come faster than the wait; it added ~20 ms to p50 at 7.5-15k events/s (bench).
    batch_linger_s: float = field(default=0.0, metadata={"env": "LEADSTREAM_BATCH_LINGER_SECONDS"})
    #: Longest a fetch waits at the broker for 64 KiB to gather, under load. Below a
    #: record per wait, fetches wait for the first record instead (streams.fetchpace).
    fetch_max_wait_s: float = field(
        default=0.01, metadata={"env": "LEADSTREAM_FETCH_MAX_WAIT_SECONDS"}
    )
    #: Lead states are written (table + changelog), and offsets acked, once per
    #: window of this many events or this many seconds, whichever comes first, once
    #: the previous window is written (a loaded worker does not stall; at twice the
    #: events regardless).
    #: Longer windows write a hot lead less often, but a crash re-reads up to a window
    #: and its paced write (see docs/operations.md, Tuning).
    flush_events: int = field(default=50_000, metadata={"env": "LEADSTREAM_FLUSH_EVENTS"})
    flush_interval_s: float = field(
        default=2.0, metadata={"env": "LEADSTREAM_FLUSH_INTERVAL_SECONDS"}
    )
    #: Run Faust's Kafka consumer on the worker's event loop rather than in a thread
    #: of its own (streams.inloop): lower latency. false: Faust's thread.
    consumer_in_loop: bool = field(default=True, metadata={"env": "LEADSTREAM_CONSUMER_IN_LOOP"})
    #: uvloop (a dependency; not on Windows) or asyncio, Python's own.
    event_loop: str = field(default="uvloop", metadata={"env": "LEADSTREAM_EVENT_LOOP"})
    #: Before Faust starts, bulk-copy the table changelog into the local store (every
    #: partition: a worker cannot know its share before it joins the group), so a
    #: fresh or stale data dir recovers in seconds instead of record by record.
    preload_changelog: bool = field(default=True, metadata={"env": "LEADSTREAM_PRELOAD_CHANGELOG"})
    #: A graceful stop (SIGTERM/SIGINT) that takes longer than this ends in a hard exit:
    #: with the broker gone, Faust's stop waits forever. Keep it under the
    #: orchestrator's grace period (Kubernetes: 30 s).
    stop_timeout_s: float = field(default=25.0, metadata={"env": "LEADSTREAM_STOP_TIMEOUT_SECONDS"})
    #: at_least_once: stage changes leave as each batch is scored, and may repeat
    #: after a crash. exactly_once: each state window is one Kafka transaction (its
    #: changelog records, stage changes, dead letters, reroutes and input offsets), so
    #: a read_committed consumer sees each stage change once; stage changes then wait
    #: for their window. Needs LEADSTREAM_GROUP_INSTANCE_ID (the transactional id).
    processing_guarantee: str = field(
        default="at_least_once", metadata={"env": "LEADSTREAM_PROCESSING_GUARANTEE"}
    )

    @property
    def input_topics(self) -> tuple[str, ...]:
        return tuple(self.input_kinds)

    @property
    def input_kinds(self) -> dict[str, str]:
        """Input topic -> the kind of input it carries (the contract's kinds)."""
        return {
            self.topic_web: "web",
            self.topic_email: "email",
            self.topic_webinar: "webinar",
            self.topic_profiles: "profile",
            self.topic_outcomes: "outcome",
        }

    @property
    def fetch_max_wait_ms(self) -> int:
        """The fetch wait as the Kafka protocol takes it (whole ms, at least 1)."""
        return max(1, round(self.fetch_max_wait_s * 1000))

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def transactional_id(self) -> str:
        """The exactly-once producer's id: stable per worker, so a restarted worker
        fences its predecessor and aborts the transaction it left open at once."""
        return f"{self.app_id}-{self.group_instance_id}"

    @property
    def transaction_timeout_ms(self) -> int:
        """Longer than a window's transaction (its paced write takes up to 0.8 of a
        window), short enough that a dead worker's open transaction is soon aborted."""
        return int(1000 * max(MIN_TRANSACTION_TIMEOUT_S, 5 * self.flush_interval_s))

    @property
    def broker_url(self) -> str:
        """Faust broker URL(s) for ``bootstrap_servers`` (``kafka://h1:p,h2:p``)."""
        return ";".join(f"kafka://{hp.strip()}" for hp in self.bootstrap_servers.split(","))

    def validate(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(
                f"LEADSTREAM_LOG_LEVEL={self.log_level!r}: use one of {', '.join(LOG_LEVELS)}"
            )
        if self.event_loop not in EVENT_LOOPS:
            raise SettingsError(
                f"LEADSTREAM_EVENT_LOOP={self.event_loop!r}: use one of {', '.join(EVENT_LOOPS)}"
            )
        if not self.store.startswith(("rocksdb://", "memory://")):
            raise SettingsError(
                f"LEADSTREAM_STORE={self.store!r}: use rocksdb:// (default) or memory://"
            )
        positive = (
            "partitions",
            "web_port",
            "batch_size",
            "flush_events",
            "dlq_max_value_bytes",
            "session_timeout_s",
            "tick_interval_s",
            "flush_interval_s",
            "fetch_max_wait_s",
            "stop_timeout_s",
            "state_cache_leads",
            "rocksdb_write_buffer_mib",
            "rocksdb_block_cache_mib",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{ENV_VARS[name]} must be positive")
        if self.processing_guarantee not in PROCESSING_GUARANTEES:
            raise SettingsError(
                f"{ENV_VARS['processing_guarantee']}={self.processing_guarantee!r}: use one "
                f"of {', '.join(PROCESSING_GUARANTEES)}"
            )
        if self.exactly_once and not self.group_instance_id:
            # The transactional id must survive restarts: a random one would leave a
            # killed worker's open transaction blocking readers until it times out.
            raise SettingsError(
                f"{ENV_VARS['processing_guarantee']}=exactly_once needs "
                f"{ENV_VARS['group_instance_id']} (a stable id per worker: its "
                "transactional id)"
            )
        if self.batch_linger_s < 0:
            raise SettingsError(f"{ENV_VARS['batch_linger_s']} must be >= 0")
        if self.model_path and not Path(self.model_path).is_file():
            raise SettingsError(f"LEADSTREAM_MODEL={self.model_path!r}: no such file")
        if self.api_token and self.api_token_file:
            raise SettingsError("set LEADSTREAM_API_TOKEN or LEADSTREAM_API_TOKEN_FILE, not both")
        token = self.http_token  # reads the file: a missing one fails here, at start
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise SettingsError(f"the API token is shorter than {MIN_TOKEN_CHARS} characters")
        if self.metrics_require_token and token is None:
            raise SettingsError("LEADSTREAM_METRICS_REQUIRE_TOKEN needs an API token")
        from streams.kafkasecurity import security_of

        security_of(self)  # reads the secret and PEM files: a bad one fails here, at start

    @property
    def http_token(self) -> str | None:
        """The API token (from the variable or the file), or None: the API is open."""
        if self.api_token_file:
            try:
                return Path(self.api_token_file).read_text().strip() or None
            except OSError as exc:
                raise SettingsError(
                    f"LEADSTREAM_API_TOKEN_FILE={self.api_token_file!r}: {exc.strerror}"
                ) from None
        return self.api_token or None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_bool.__name__ = "bool (true/false)"


def _parse(name: str, raw: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected {kind.__name__}") from None


_PARSERS: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bool": _bool}


def topic_roles() -> dict[str, str]:
    """Topic role (``web``, ..., ``qualified``, ``dlq``) -> its default name."""
    return {
        f.name.removeprefix("topic_"): f.default
        for f in dataclasses.fields(Settings)
        if f.name.startswith("topic_") and isinstance(f.default, str)
    }


def topic_env(names: Mapping[str, str]) -> dict[str, str]:
    """Environment variables that set the topics named per role in ``names``."""
    return {ENV_VARS[f"topic_{role}"]: name for role, name in names.items()}


#: Settings field name -> environment variable, for docs and consistency tests.
ENV_VARS: dict[str, str] = {f.name: f.metadata["env"] for f in dataclasses.fields(Settings)}
