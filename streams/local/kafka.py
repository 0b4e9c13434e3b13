"""A local single-node Apache Kafka (KRaft) from Maven Central jars, no Docker needed.

``LocalKafka`` fetches the broker's jars once with ``mvn`` (``deploy/kafka/pom.xml``)
into ``<cache_dir>/kafka-3.9.1/libs``, formats KRaft storage in a data dir once, and
runs one combined broker+controller on 127.0.0.1 as a child JVM in its own process
group (log in ``<data_dir>/broker.log``, pid in ``<data_dir>/broker.pid``).

Kafka is pinned to 3.9.1 on purpose: it is KRaft-only-capable and still serves the old
protocol versions aiokafka 0.14 and faust-streaming 0.15 send. Kafka 4.0 removed many
old API versions (KIP-896), so do not bump this without running the integration tests.

``leadstream kafka start|stop|status|run`` is :func:`cli`; ``streams.topics.ensure_topics``
creates topics (idempotently) on any broker.

With ``sasl_ssl_port`` (``LEADSTREAM_KAFKA_SASL_SSL_PORT``) the broker also listens
there with SASL_SSL: SCRAM-SHA-512 or SCRAM-SHA-256 for user ``leadstream`` (its
password made when the storage is formatted), TLS from a local CA
(``streams.local.tls``); ``mtls_port`` adds a TLS listener that requires a client
certificate. The controller and the PLAINTEXT listener stay as they are, on loopback.
:meth:`LocalKafka.client_env` gives the settings a client connects with.

Example::

    with LocalKafka(cache_dir, data_dir, port=29092, controller_port=29093) as kafka:
        ensure_topics(kafka.bootstrap, {"web.visits": 4}, timeout=30)
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

from streams.local.settings import LOCAL_ENV_VARS, LocalSettings
from streams.local.tls import TlsError, TlsFiles, ensure_tls_files
from streams.settings import ENV_VARS

#: Pinned broker version; ``deploy/kafka/pom.xml`` and docker-compose.yml use the same.
KAFKA_VERSION = "3.9.1"
#: The broker needs Java 17+ (Kafka 3.x still runs on 11, but 17 is what we test on and
#: what Kafka 4 requires, so users are not surprised by an upgrade later).
MIN_JAVA = 17
#: ``deploy/kafka`` in the source checkout: the pom users can also run by hand.
DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
#: Loopback only: the local broker is a developer tool, never reachable from the network.
HOST = "127.0.0.1"
#: A jar every complete fetch contains; its absence means the copy is broken.
_BROKER_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
#: Lines of broker.log shown when the broker fails to start.
LOG_TAIL_LINES = 40
#: The SCRAM user a local secure broker knows, and the mechanisms it offers.
SCRAM_USER = "leadstream"
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


class LocalKafkaError(RuntimeError):
    """The local broker cannot be fetched, started or stopped; the message says why."""


class AlreadyRunningError(LocalKafkaError):
    """A broker started from the same data dir is still running."""


# --------------------------------------------------------------------------- prerequisites


def require_tool(name: str, purpose: str) -> str:
    """Path of executable ``name``, or a ``LocalKafkaError`` saying what to install."""
    path = shutil.which(name)
    if path is None:
        raise LocalKafkaError(
            f"`{name}` was not found on PATH; it is needed {purpose}. "
            f"Install it (e.g. `apt-get install openjdk-17-jre-headless maven`), "
            f"or set {ENV_VARS['bootstrap_servers']} to use an existing broker."
        )
    return path


def parse_java_major(version_output: str) -> int | None:
    """The major Java version in ``java -version`` output.

    >>> parse_java_major('openjdk version "17.0.15" 2025-04-15')
    17
    >>> parse_java_major('java version "1.8.0_292"')
    8
    >>> parse_java_major('openjdk version "21" 2023-09-19')
    21
    """
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older report themselves as 1.x.
    return int(match.group(2) or 0) if major == 1 else major


def require_java() -> str:
    """Path of a Java >= ``MIN_JAVA`` executable, or a clear ``LocalKafkaError``."""
    java = require_tool("java", f"to run the Kafka broker (Java {MIN_JAVA}+)")
    result = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=60, check=False
    )
    major = parse_java_major(result.stderr + result.stdout)
    if major is None or major < MIN_JAVA:
        found = (result.stderr or result.stdout).strip().splitlines()
        raise LocalKafkaError(
            f"Kafka {KAFKA_VERSION} here needs Java {MIN_JAVA}+, but {java} is "
            f"{found[0] if found else 'of unknown version'}. Put a newer JDK first on PATH."
        )
    return java


def check_port_free(port: int, env_var: str) -> None:
    """Fail clearly when ``port`` on loopback is taken (bind test, nothing stays open)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Java sets SO_REUSEADDR too, so TIME_WAIT leftovers do not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise LocalKafkaError(
                f"port {port} on {HOST} is already in use ({exc.strerror}). "
                f"Set {env_var} to another port, or stop whatever listens there "
                f"(if it is a Kafka broker, set {ENV_VARS['bootstrap_servers']} to use it)."
            ) from None


#: Where the local tooling looks for free ports: below Linux's default ephemeral range
#: (32768-60999). A port the OS may hand out to outgoing connections can be taken by a
#: client's own socket while the broker restarts, and a client reconnecting to it can
#: even connect to itself (TCP simultaneous open): seen once, the broker then could
#: not bind its port again.
PORT_RANGE = range(20000, 32000)
#: Where Linux keeps the ephemeral range, to stay out of a changed one too.
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_ports() -> range:
    """The OS's ephemeral port range (Linux's default when it cannot be read)."""
    try:
        low, high = (int(n) for n in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(low, high + 1)


def free_ports(count: int, *, rng: random.Random | None = None) -> list[int]:
    """``count`` distinct ports outside the ephemeral range that are free right now.

    Tried in random order (concurrent test sessions rarely pick the same), each bound
    until all are found, so the ports differ.
    """
    ephemeral = ephemeral_ports()
    candidates = [p for p in PORT_RANGE if p not in ephemeral]
    (rng or random.Random()).shuffle(candidates)
    with contextlib.ExitStack() as stack:
        found: list[int] = []
        for port in candidates:
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            found.append(port)
            if len(found) == count:
                return found
    raise LocalKafkaError(f"no {count} free ports in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


# --------------------------------------------------------------------------- jars


def jars_dir(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"


def _marker(cache_dir: Path) -> Path:
    # Outside libs/ so the `libs/*` classpath never sees it.
    return cache_dir / f"kafka-{KAFKA_VERSION}" / ".fetched"


def ensure_jars(cache_dir: Path, *, timeout: float = 900.0) -> Path:
    """Fetch the broker jars with ``mvn`` unless a complete copy is cached; return libs dir.

    The marker file is written only after a complete copy, so an interrupted fetch is
    redone; a file lock keeps two processes (e.g. parallel test runs) from fetching at once.
    """
    libs = jars_dir(cache_dir)
    if _marker(cache_dir).is_file() and (libs / _BROKER_JAR).is_file():
        return libs
    mvn = require_tool("mvn", f"once to fetch Apache Kafka {KAFKA_VERSION} from Maven Central")
    pom = DEPLOY_DIR / "pom.xml"
    if not pom.is_file():
        raise LocalKafkaError(f"{pom} is missing: run leadstream from a source checkout")
    home = libs.parent
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _marker(cache_dir).is_file() and (libs / _BROKER_JAR).is_file():
            return libs  # another process finished the fetch while we waited
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        # Run in the cache (not the repo) so Maven's scratch files never land in git.
        shutil.copyfile(pom, home / "pom.xml")
        cmd = [
            mvn, "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise LocalKafkaError(
                f"mvn did not finish fetching Kafka jars within {timeout:.0f}s"
            ) from None
        if result.returncode != 0 or not (partial / _BROKER_JAR).is_file():
            shutil.rmtree(partial, ignore_errors=True)
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
            raise LocalKafkaError(
                f"mvn could not fetch Apache Kafka {KAFKA_VERSION} (exit {result.returncode}); "
                f"is Maven Central reachable?\n$ {' '.join(cmd)}\n{tail}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        _marker(cache_dir).write_text(f"{KAFKA_VERSION}\n")
    return libs


# --------------------------------------------------------------------------- properties


def broker_properties(
    *,
    port: int,
    controller_port: int,
    log_dir: Path,
    sasl_ssl_port: int | None = None,
    mtls_port: int | None = None,
    tls: TlsFiles | None = None,
) -> dict[str, str]:
    """server.properties for one combined broker+controller on loopback, tuned small.

    >>> props = broker_properties(port=9092, controller_port=9093, log_dir=Path("/d"))
    >>> props["listeners"]
    'PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093'
    >>> props["controller.quorum.voters"]
    '1@127.0.0.1:9093'
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Static voters: a plain `format` works, no --standalone / bootstrap servers needed.
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        # leadstream's topics all have LEADSTREAM_PARTITIONS (default 4) partitions.
        "num.partitions": "4",
        "auto.create.topics.enable": "true",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        # 4 instead of 50: the group coordinator loads faster on first use.
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        # Tests join groups constantly; the default 3 s delay would be per join.
        "group.initial.rebalance.delay.ms": "0",
        # Faust changelogs are compacted; the default 128 MiB dedupe buffer is a quarter of
        # the 512 MiB heap.
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "4",
    }
    if sasl_ssl_port is not None or mtls_port is not None:
        if tls is None:
            raise ValueError("secure listeners need TLS files")
        props.update(secure_listener_properties(props, sasl_ssl_port, mtls_port, tls))
    return props


def secure_listener_properties(
    plain: Mapping[str, str], sasl_ssl_port: int | None, mtls_port: int | None, tls: TlsFiles
) -> dict[str, str]:
    """The listeners, TLS stores and SASL settings :func:`broker_properties` adds.

    The broker and the controller keep talking PLAINTEXT to each other on loopback:
    only clients use the secure listeners, and a broker that secures its own links
    would need credentials for itself too.
    """
    listeners = [plain["listeners"]]
    advertised = [plain["advertised.listeners"]]
    protocols = [plain["listener.security.protocol.map"]]
    props = {
        # PEM stores (Kafka 2.7+): no keytool, no store passwords. The key is
        # unencrypted and readable by the owner only.
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls.broker_keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls.ca),
    }
    if sasl_ssl_port is not None:
        listeners.append(f"SASL_SSL://{HOST}:{sasl_ssl_port}")
        advertised.append(f"SASL_SSL://{HOST}:{sasl_ssl_port}")
        protocols.append("SASL_SSL:SASL_SSL")
        props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
        for mechanism in SCRAM_MECHANISMS:
            # The users and their salted passwords live in the cluster metadata
            # (added by `format --add-scram`), not in this file.
            props[f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    if mtls_port is not None:
        listeners.append(f"MTLS://{HOST}:{mtls_port}")
        advertised.append(f"MTLS://{HOST}:{mtls_port}")
        protocols.append("MTLS:SSL")
        props["listener.name.mtls.ssl.client.auth"] = "required"
    props["listeners"] = ",".join(listeners)
    props["advertised.listeners"] = ",".join(advertised)
    props["listener.security.protocol.map"] = ",".join(protocols)
    return props


def render_properties(props: Mapping[str, str]) -> str:
    """Java properties text (values here never need escaping: paths, hosts, numbers)."""
    return "".join(f"{key}={value}\n" for key, value in props.items())


def new_cluster_id() -> str:
    """A KRaft cluster id like ``StorageTool random-uuid`` makes, without starting a JVM.

    Kafka ids are 16 random bytes, URL-safe base64 without padding; Kafka avoids ids
    starting with ``-`` because command lines would read them as options.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


# --------------------------------------------------------------------------- pids


def read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file``, or None when it is missing or not a number."""
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie, exited but not yet reaped, is not).

    Never reaps: the parent (e.g. a ``Popen`` elsewhere) keeps its child's exit code.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): kill(0) is the best we have
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rpartition(")")[2].split()[0] != "Z"


def _is_broker_process(pid: int, properties: Path) -> bool:
    """Whether ``pid`` is a broker JVM started with ``properties`` (guards against pid reuse)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not Path("/proc/self/cmdline").exists():
        return True  # no procfs (macOS): trust the pid file
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in args and str(properties).encode() in args


# --------------------------------------------------------------------------- readiness


def _kafka_string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def metadata_brokers(host: str, port: int, *, timeout: float = 2.0) -> int | None:
    """Number of brokers a Metadata v1 request to ``host:port`` reports; None if no answer.

    A raw request keeps readiness checks free of asyncio (callers may be inside a loop).
    The broker lists itself only once it is registered and unfenced, i.e. serving.
    """
    # Header v1: api_key=3 (Metadata), api_version=1, correlation id, client id; body: an
    # empty topic array (in v1, empty means "no topics", so the answer stays small).
    body = struct.pack(">hhi", 3, 1, 7) + _kafka_string("leadstream-probe") + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv_exact(sock, 4))[0]
            payload = _recv_exact(sock, size)
    except (OSError, struct.error, ConnectionError):
        return None
    correlation, brokers = struct.unpack_from(">ii", payload, 0)
    return brokers if correlation == 7 and brokers >= 0 else None


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(log is empty)"


# --------------------------------------------------------------------------- the broker


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """What ``LocalKafka.status()`` found."""

    bootstrap: str
    #: Pid of the broker JVM from the pid file, when that process is alive.
    pid: int | None
    #: Whether the broker answered a metadata request listing at least one broker.
    ready: bool

    def __str__(self) -> str:
        if self.pid is None:
            return f"local Kafka at {self.bootstrap}: not running"
        state = "ready" if self.ready else "not answering yet"
        return f"local Kafka at {self.bootstrap}: running (pid {self.pid}), {state}"


class LocalKafka:
    """One combined KRaft broker+controller on loopback, run from cached Maven jars.

    ``start()`` blocks until the broker answers metadata requests; ``stop()`` sends
    SIGTERM, waits, then SIGKILLs, so no JVM is left behind. A pid file lets another
    process (``leadstream kafka stop``) stop a broker started in the background.
    """

    def __init__(
        self,
        cache_dir: Path | str,
        data_dir: Path | str | None = None,
        port: int = 9092,
        controller_port: int = 9093,
        *,
        heap: str = "512m",
        start_timeout: float = 90.0,
        stop_timeout: float = 30.0,
        sasl_ssl_port: int | None = None,
        mtls_port: int | None = None,
    ) -> None:
        ports = [p for p in (port, controller_port, sasl_ssl_port, mtls_port) if p is not None]
        if len(set(ports)) != len(ports):
            raise LocalKafkaError(f"the broker's ports must differ (got {ports})")
        self.cache_dir = Path(cache_dir).expanduser()
        self.data_dir = (
            Path(data_dir).expanduser() if data_dir else self.cache_dir / f"broker-{port}"
        ).absolute()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.sasl_ssl_port = sasl_ssl_port
        self.mtls_port = mtls_port
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_settings(cls, settings: LocalSettings) -> LocalKafka:
        return cls(
            cache_dir=settings.cache_dir,
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            sasl_ssl_port=settings.kafka_sasl_ssl_port or None,
        )

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def secure(self) -> bool:
        return self.sasl_ssl_port is not None or self.mtls_port is not None

    @property
    def tls(self) -> TlsFiles:
        """The CA, broker and client certificates of the secure listeners."""
        return TlsFiles(self.data_dir / "tls")

    @property
    def scram_password_file(self) -> Path:
        """The SCRAM user's password, made when the storage is formatted."""
        return self.data_dir / "tls" / "scram-password"

    def client_env(self, *, mtls: bool = False) -> dict[str, str]:
        """Settings (environment variables) for a client of the SASL_SSL listener, or
        with ``mtls`` of the listener that requires a client certificate."""
        if mtls:
            if self.mtls_port is None:
                raise LocalKafkaError("this broker has no mTLS listener")
            return {
                ENV_VARS["bootstrap_servers"]: f"{HOST}:{self.mtls_port}",
                ENV_VARS["security_protocol"]: "SSL",
                ENV_VARS["ssl_ca_file"]: str(self.tls.ca),
                ENV_VARS["ssl_cert_file"]: str(self.tls.client_cert),
                ENV_VARS["ssl_key_file"]: str(self.tls.client_key),
            }
        if self.sasl_ssl_port is None:
            raise LocalKafkaError("this broker has no SASL_SSL listener")
        return {
            ENV_VARS["bootstrap_servers"]: f"{HOST}:{self.sasl_ssl_port}",
            ENV_VARS["security_protocol"]: "SASL_SSL",
            ENV_VARS["sasl_mechanism"]: SCRAM_MECHANISMS[0],
            ENV_VARS["sasl_username"]: SCRAM_USER,
            ENV_VARS["sasl_password_file"]: str(self.scram_password_file),
            ENV_VARS["ssl_ca_file"]: str(self.tls.ca),
        }

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def pid(self) -> int | None:
        """Pid of our running broker JVM (from the pid file), None when not running."""
        if self._proc is not None:
            # Our child: poll() reaps it, so its exit code stays available to wait().
            return self._proc.pid if self._proc.poll() is None else None
        pid = read_pid(self.pid_file)
        if pid is None or not pid_alive(pid):
            return None
        return pid if _is_broker_process(pid, self.properties_file) else None

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def status(self) -> BrokerStatus:
        pid = self.pid
        ready = pid is not None and bool(metadata_brokers(HOST, self.port))
        return BrokerStatus(bootstrap=self.bootstrap, pid=pid, ready=ready)

    def start(self) -> None:
        """Fetch (once), format (once), start and wait until the broker serves requests."""
        running = self.pid
        if running is not None:
            raise AlreadyRunningError(
                f"a broker from {self.data_dir} is already running (pid {running}) at "
                f"{self.bootstrap}; `leadstream kafka stop` stops it"
            )
        self.pid_file.unlink(missing_ok=True)  # stale: its process is gone
        # Cheap checks first, so a taken port is reported before a minute-long fetch.
        check_port_free(self.port, LOCAL_ENV_VARS["kafka_port"])
        check_port_free(self.controller_port, LOCAL_ENV_VARS["kafka_controller_port"])
        for secure_port in (self.sasl_ssl_port, self.mtls_port):
            if secure_port is not None:
                check_port_free(secure_port, LOCAL_ENV_VARS["kafka_sasl_ssl_port"])
        java = require_java()
        libs = ensure_jars(self.cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tls = None
        if self.secure:
            try:
                tls = ensure_tls_files(self.tls.directory)
            except TlsError as exc:
                raise LocalKafkaError(str(exc)) from None
        # Rewritten on every start: the ports may differ from the last run.
        self.properties_file.write_text(
            render_properties(
                broker_properties(
                    port=self.port,
                    controller_port=self.controller_port,
                    log_dir=self.log_dir,
                    sasl_ssl_port=self.sasl_ssl_port,
                    mtls_port=self.mtls_port,
                    tls=tls,
                )
            )
        )
        self._format(java, libs)
        with self.log_file.open("wb") as log:
            self._proc = subprocess.Popen(
                self._java_cmd(java, libs, "kafka.Kafka", str(self.properties_file)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # Own session/process group: Ctrl-C in the terminal reaches only us, and
                # we stop the JVM in order; killpg also reaches anything it spawns.
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> bool:
        """Stop the broker (ours or the pid file's); True if one was running."""
        pid = self.pid
        proc, self._proc = self._proc, None
        if pid is None:
            if proc is not None:
                proc.wait()  # already exited: reap it
            self.pid_file.unlink(missing_ok=True)
            return False
        # SIGTERM runs Kafka's shutdown hook: controlled shutdown, clean log close.
        self._signal(pid, signal.SIGTERM)
        if not self._wait_exit(pid, proc, self.stop_timeout):
            self._signal(pid, signal.SIGKILL)
            if not self._wait_exit(pid, proc, 10.0):
                raise LocalKafkaError(f"broker pid {pid} survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return True

    def wait(self) -> int:
        """Block until the broker we started exits; its exit code."""
        if self._proc is None:
            raise LocalKafkaError("this LocalKafka did not start a broker")
        return self._proc.wait()

    # ----------------------------------------------------------------------- internals

    def _java_cmd(self, java: str, libs: Path, main: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            # Fail fast rather than limp along when the small heap is not enough.
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{DEPLOY_DIR / 'log4j.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _format(self, java: str, libs: Path) -> None:
        if (self.log_dir / "meta.properties").is_file():
            # Formatted earlier; formatting again would need --ignore-formatted. SCRAM
            # users exist only if they were added then.
            if self.sasl_ssl_port is not None and not self.scram_password_file.is_file():
                raise LocalKafkaError(
                    f"{self.data_dir} was formatted without SCRAM users, so its SASL_SSL "
                    "listener would accept no one; delete that directory to start over"
                )
            return
        cmd = self._java_cmd(
            java, libs, "kafka.tools.StorageTool", "format",
            "-t", new_cluster_id(), "-c", str(self.properties_file),
        )  # fmt: skip
        if self.sasl_ssl_port is not None:
            cmd += self._scram_users()
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(
                f"formatting KRaft storage in {self.log_dir} failed:\n"
                + (result.stdout + result.stderr).strip()
            )

    def _scram_users(self) -> list[str]:
        """``--add-scram`` options for :data:`SCRAM_USER` with a new password, which is
        kept (owner-only) for clients. The storage tool takes it on its command line, so
        it is visible in the process list for the second that tool runs: acceptable for
        a loopback broker made for tests and demos, not a pattern for a real cluster."""
        # Hex: no character the tool's ``[name=...,password=...]`` syntax would split on.
        password = secrets.token_hex(16)
        self.scram_password_file.parent.mkdir(parents=True, exist_ok=True)
        self.scram_password_file.touch(mode=0o600)
        self.scram_password_file.write_text(password + "\n")
        return [
            option
            for mechanism in SCRAM_MECHANISMS
            for option in ("--add-scram", f"{mechanism}=[name={SCRAM_USER},password={password}]")
        ]

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise LocalKafkaError(
                    f"the broker exited with code {code} while starting; "
                    f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            if metadata_brokers(HOST, self.port, timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise LocalKafkaError(
                    f"the broker did not answer on {self.bootstrap} within "
                    f"{self.start_timeout:.0f}s; last lines of {self.log_file}:\n"
                    f"{_tail(self.log_file)}"
                )
            # Poll interval between readiness probes (bounded by the deadline above).
            time.sleep(0.1)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # the JVM leads its own group (start_new_session)

    @staticmethod
    def _wait_exit(pid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
        if proc is not None:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        # Not our child (started by `leadstream kafka start`): poll for its exit.
        deadline = time.monotonic() + timeout
        while pid_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


# --------------------------------------------------------------------------- the CLI


def cli(action: str, settings: LocalSettings, *, out: IO[str] | None = None) -> int:
    """``leadstream kafka start|stop|status|run``; returns the process exit code."""
    stdout = out or sys.stdout
    env_var = ENV_VARS["bootstrap_servers"]
    explicit = os.environ.get(env_var)
    broker = LocalKafka.from_settings(settings)

    def say(message: str, *, err: bool = False) -> None:
        print(message, file=sys.stderr if err else stdout, flush=True)

    if explicit and action in ("start", "run"):
        say(f"{env_var}={explicit} is set: using that broker, not starting a local one")
        return 0
    try:
        if action == "status":
            status = broker.status()
            say(str(status))
            if explicit:
                say(f"({env_var}={explicit} is set, so leadstream uses that broker)")
            return 0 if status.ready else 3  # 3 = "not running", as in LSB init scripts
        if action == "stop":
            stopped = broker.stop()
            say(f"stopped local Kafka at {broker.bootstrap}" if stopped else "not running")
            return 0
        if action == "start":
            try:
                broker.start()
            except AlreadyRunningError as exc:
                say(str(exc))
                return 0
            say(
                f"local Kafka {KAFKA_VERSION} running at {broker.bootstrap} (pid {broker.pid}); "
                f"log {broker.log_file}; `leadstream kafka stop` stops it"
            )
            if broker.sasl_ssl_port is not None:
                say(secure_listener_note(broker))
            return 0
        if action == "run":
            return _run_foreground(broker, say)
    except LocalKafkaError as exc:
        say(f"leadstream kafka {action}: {exc}", err=True)
        return 1
    raise ValueError(f"unknown action {action!r}")


def secure_listener_note(broker: LocalKafka) -> str:
    """How to connect to ``broker``'s SASL_SSL listener, as shell assignments."""
    env = broker.client_env()
    assignments = " ".join(f"{name}={value}" for name, value in env.items())
    return f"SASL_SSL (SCRAM) at {env[ENV_VARS['bootstrap_servers']]}; clients: {assignments}"


def _run_foreground(broker: LocalKafka, say: Callable[..., None]) -> int:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the same way as Ctrl-C

    # SIGINT explicitly too: a shell may start background jobs with SIGINT ignored.
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        broker.start()
        say(
            f"local Kafka {KAFKA_VERSION} running at {broker.bootstrap}; "
            f"log {broker.log_file}; Ctrl-C stops it"
        )
        if broker.sasl_ssl_port is not None:
            say(secure_listener_note(broker))
        code = broker.wait()
        say(f"the broker exited with code {code}; last lines of {broker.log_file}:", err=True)
        say(_tail(broker.log_file), err=True)
        broker.stop()  # removes the pid file
        return 1
    except KeyboardInterrupt:
        say("stopping local Kafka ...")
        broker.stop()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def running_broker(settings: LocalSettings) -> Iterator[str]:
    """The bootstrap servers to use: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local broker
    started for the duration of the ``with`` block."""
    explicit = os.environ.get(ENV_VARS["bootstrap_servers"])
    if explicit:
        yield explicit
        return
    with LocalKafka.from_settings(settings) as broker:
        yield broker.bootstrap
