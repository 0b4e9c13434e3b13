"""The local broker tooling: error messages, properties, jar cache, pid handling, CLI.

Most tests use stand-in ``java``/``mvn`` scripts on PATH and stand-in processes, so they
run without Java; the one marked ``integration`` drives the real CLI end to end.
"""

from __future__ import annotations

import doctest
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.local import kafka as localkafka
from streams.local.kafka import (
    KAFKA_VERSION,
    LocalKafka,
    LocalKafkaError,
    broker_properties,
    ensure_jars,
    free_ports,
    jars_dir,
    metadata_brokers,
    new_cluster_id,
    parse_java_major,
    pid_alive,
    read_pid,
    render_properties,
)
from streams.local.settings import LocalSettings
from streams.local.tls import TlsFiles, ensure_tls_files
from streams.settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]


def write_script(directory: Path, name: str, body: str) -> Path:
    """An executable shell script ``name`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_cache(cache: Path) -> Path:
    """A jar cache that looks complete, so nothing calls mvn."""
    libs = jars_dir(cache)
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").write_bytes(b"")
    (libs.parent / ".fetched").write_text(KAFKA_VERSION)
    return libs


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory put first on PATH for stand-in java/mvn scripts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


JAVA_17 = (
    'if [ "$1" = "-version" ]; then echo \'openjdk version "17.0.2" 2022-01-18\' >&2; exit 0; fi\n'
)


# --------------------------------------------------------------------------- prerequisites


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19 LTS', 21),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ("command not found", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localkafka.shutil, "which", lambda name: None)
    with pytest.raises(LocalKafkaError, match=r"`java` was not found on PATH.*Java 17\+"):
        localkafka.require_java()


def test_missing_mvn_is_reported_only_when_jars_must_be_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(localkafka.shutil, "which", lambda name: None)
    with pytest.raises(LocalKafkaError, match=r"`mvn` was not found on PATH.*Maven Central"):
        ensure_jars(tmp_path / "empty")
    libs = fake_cache(tmp_path / "full")
    assert ensure_jars(tmp_path / "full") == libs


def test_old_java_is_refused_with_its_version(fake_bin: Path) -> None:
    write_script(fake_bin, "java", "echo 'java version \"1.8.0_292\"' >&2\n")
    with pytest.raises(LocalKafkaError, match=r"needs Java 17\+.*1\.8\.0_292"):
        localkafka.require_java()


def test_java_17_is_accepted(fake_bin: Path) -> None:
    java = write_script(fake_bin, "java", JAVA_17)
    assert localkafka.require_java() == str(java)


@pytest.mark.parametrize(
    ("which", "env_var"),
    [("broker", "LEADSTREAM_KAFKA_PORT"), ("controller", "LEADSTREAM_KAFKA_CONTROLLER_PORT")],
)
def test_taken_port_names_the_port_and_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, env_var: str
) -> None:
    # Nothing past the port check may run: no java, no mvn, no fetch.
    monkeypatch.setattr(localkafka.shutil, "which", lambda name: None)
    port, controller_port = free_ports(2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port if which == "broker" else controller_port))
        holder.listen()
        broker = LocalKafka(tmp_path, tmp_path / "data", port, controller_port)
        taken = port if which == "broker" else controller_port
        with pytest.raises(LocalKafkaError, match=rf"port {taken} .*already in use.*{env_var}"):
            broker.start()
    assert not (tmp_path / "data" / "broker.pid").exists()


def test_same_port_for_broker_and_controller_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalKafkaError, match="must differ"):
        LocalKafka(tmp_path, port=9092, controller_port=9092)


# --------------------------------------------------------------------------- jar cache


#: A stand-in mvn that "copies" two jars into -DoutputDirectory.
MVN_COPY = (
    'for arg in "$@"; do\n'
    '  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac\n'
    "done\n"
    f'mkdir -p "$out" && touch "$out/kafka_2.13-{KAFKA_VERSION}.jar" "$out/scala-library.jar"\n'
)


def test_fetch_writes_the_marker_only_after_a_complete_copy(tmp_path: Path, fake_bin: Path) -> None:
    cache = tmp_path / "cache"
    # An interrupted fetch: mvn dies half-way, after copying some jars.
    write_script(fake_bin, "mvn", MVN_COPY + 'echo "Could not resolve" >&2; exit 1\n')
    with pytest.raises(LocalKafkaError, match=r"(?s)mvn could not fetch.*Could not resolve"):
        ensure_jars(cache)
    assert not (cache / f"kafka-{KAFKA_VERSION}" / ".fetched").exists()
    assert not jars_dir(cache).exists()
    assert not (cache / f"kafka-{KAFKA_VERSION}" / "libs.partial").exists()

    write_script(fake_bin, "mvn", MVN_COPY)
    libs = ensure_jars(cache)
    assert sorted(p.name for p in libs.iterdir()) == [
        f"kafka_2.13-{KAFKA_VERSION}.jar",
        "scala-library.jar",
    ]
    assert (cache / f"kafka-{KAFKA_VERSION}" / ".fetched").read_text().strip() == KAFKA_VERSION

    # Cached now: a broken mvn is never called again.
    write_script(fake_bin, "mvn", "exit 1\n")
    assert ensure_jars(cache) == libs


def test_pom_pins_the_same_kafka_version() -> None:
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    assert f"<artifactId>kafka_2.13</artifactId>\n      <version>{KAFKA_VERSION}</version>" in pom


# --------------------------------------------------------------------------- properties


def test_properties_for_one_combined_node_on_loopback(tmp_path: Path) -> None:
    props = broker_properties(port=29092, controller_port=29093, log_dir=tmp_path / "logs")
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["log.dirs"] == str(tmp_path / "logs")
    assert props["num.partitions"] == str(Settings().partitions)
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert props[key] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_secure_listeners_are_added_beside_the_plaintext_one(tmp_path: Path) -> None:
    tls = TlsFiles(tmp_path / "tls")
    props = broker_properties(
        port=1, controller_port=2, log_dir=tmp_path, sasl_ssl_port=3, mtls_port=4, tls=tls
    )
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2,SASL_SSL://127.0.0.1:3,MTLS://127.0.0.1:4"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:3,MTLS://127.0.0.1:4"
    )
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL"
    )
    # The broker's own links stay PLAINTEXT on loopback.
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512,SCRAM-SHA-256"
    for mechanism in ("scram-sha-512", "scram-sha-256"):
        jaas = props[f"listener.name.sasl_ssl.{mechanism}.sasl.jaas.config"]
        assert jaas.startswith("org.apache.kafka.common.security.scram.ScramLoginModule required")
    assert props["listener.name.mtls.ssl.client.auth"] == "required"
    assert props["ssl.keystore.location"] == str(tls.broker_keystore)
    assert props["ssl.truststore.location"] == str(tls.ca)
    assert "ssl.client.auth" not in props  # the SASL_SSL listener needs no certificate
    with pytest.raises(ValueError, match="need TLS files"):
        broker_properties(port=1, controller_port=2, log_dir=tmp_path, sasl_ssl_port=3)


def test_the_secure_broker_tells_clients_how_to_connect(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path, tmp_path / "d", 1, 2, sasl_ssl_port=3, mtls_port=4)
    tls = ensure_tls_files(broker.tls.directory)
    broker.scram_password_file.write_text("pw\n")
    sasl = Settings.from_env(broker.client_env())  # valid settings, files and all
    assert (sasl.bootstrap_servers, sasl.security_protocol) == ("127.0.0.1:3", "SASL_SSL")
    assert (sasl.sasl_mechanism, sasl.sasl_username) == ("SCRAM-SHA-512", "leadstream")
    assert sasl.ssl_ca_file == str(tls.ca)
    mtls = Settings.from_env(broker.client_env(mtls=True))
    assert (mtls.bootstrap_servers, mtls.security_protocol) == ("127.0.0.1:4", "SSL")
    assert mtls.ssl_cert_file == str(tls.client_cert)
    note = localkafka.secure_listener_note(broker)
    assert "KAFKA_SASL_PASSWORD_FILE=" in note and "pw" not in note.split("PASSWORD_FILE=")[1][:3]
    plain = LocalKafka(tmp_path, tmp_path / "p", 1, 2)
    with pytest.raises(LocalKafkaError, match="no SASL_SSL listener"):
        plain.client_env()
    with pytest.raises(LocalKafkaError, match="ports must differ"):
        LocalKafka(tmp_path, port=1, controller_port=2, sasl_ssl_port=2)


def test_a_data_dir_formatted_without_scram_users_is_refused(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path, tmp_path / "d", 1, 2, sasl_ssl_port=3)
    broker.log_dir.mkdir(parents=True)
    (broker.log_dir / "meta.properties").write_text("version=1\n")
    with pytest.raises(LocalKafkaError, match="formatted without SCRAM users"):
        broker._format("java", tmp_path)  # checked before any JVM runs


def test_the_sasl_ssl_port_setting_is_off_by_default() -> None:
    assert LocalSettings.from_env({}).kafka_sasl_ssl_port == 0
    assert LocalKafka.from_settings(LocalSettings.from_env({})).sasl_ssl_port is None
    on = LocalSettings.from_env({"LEADSTREAM_KAFKA_SASL_SSL_PORT": "29094"})
    assert LocalKafka.from_settings(on).sasl_ssl_port == 29094
    with pytest.raises(SettingsError, match="LEADSTREAM_KAFKA_SASL_SSL_PORT must be a port"):
        LocalSettings.from_env({"LEADSTREAM_KAFKA_SASL_SSL_PORT": "70000"})


def test_rendered_properties_parse_back(tmp_path: Path) -> None:
    props = broker_properties(port=1, controller_port=2, log_dir=tmp_path)
    lines = render_properties(props).splitlines()
    assert dict(line.split("=", 1) for line in lines) == props


def test_cluster_ids_look_like_kafkas() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert set(cluster_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_default_data_dir_is_per_port_in_the_cache(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path, port=19999, controller_port=20000)
    assert broker.data_dir == tmp_path / "broker-19999"
    assert broker.bootstrap == "127.0.0.1:19999"


# --------------------------------------------------------------------------- pids


@dataclass
class FakeBrokers:
    """Stand-in processes whose command line looks like ``broker``'s JVM, plus its pid file.

    ``spawn("IGNORE_TERM")`` makes one that ignores SIGTERM (the SIGKILL path). Each prints
    a line once its signal handling is set, so tests never guess when it is ready.
    """

    broker: LocalKafka
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    CODE = (
        "import signal, sys\n"
        "if 'IGNORE_TERM' in sys.argv: signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )

    def spawn(self, *extra: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", self.CODE, "kafka.Kafka", str(self.broker.properties_file)]
        proc = subprocess.Popen(
            [*argv, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        self.broker.pid_file.write_text(f"{proc.pid}\n")
        return proc


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[FakeBrokers]:
    broker = LocalKafka(tmp_path, tmp_path / "data", *free_ports(2), stop_timeout=0.5)
    broker.data_dir.mkdir()
    fakes = FakeBrokers(broker)
    yield fakes
    for proc in fakes.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            assert stream is not None
            stream.close()


def test_read_pid_tolerates_missing_and_garbage(tmp_path: Path) -> None:
    assert read_pid(tmp_path / "none.pid") is None
    (tmp_path / "bad.pid").write_text("not a pid\n")
    assert read_pid(tmp_path / "bad.pid") is None
    (tmp_path / "ok.pid").write_text("1234\n")
    assert read_pid(tmp_path / "ok.pid") == 1234


def test_stop_from_the_pid_file_terminates_the_process(fakes: FakeBrokers) -> None:
    broker, proc = fakes.broker, fakes.spawn()
    # A fresh object, as `leadstream kafka stop` would make: it knows only the pid file.
    other = LocalKafka(broker.cache_dir, broker.data_dir, broker.port, broker.controller_port)
    assert other.status().pid == proc.pid
    assert other.status().ready is False  # alive, but nothing answers on the port
    assert other.stop() is True
    assert proc.wait(timeout=10) == -signal.SIGTERM
    assert not other.pid_file.exists()
    assert other.stop() is False


def test_stop_escalates_to_sigkill_after_the_deadline(fakes: FakeBrokers) -> None:
    stubborn = fakes.spawn("IGNORE_TERM")
    assert fakes.broker.stop() is True
    assert stubborn.wait(timeout=10) == -signal.SIGKILL
    assert not pid_alive(stubborn.pid)


def test_start_refuses_while_the_pid_file_names_a_live_broker(fakes: FakeBrokers) -> None:
    proc = fakes.spawn()
    with pytest.raises(localkafka.AlreadyRunningError, match=rf"pid {proc.pid}"):
        fakes.broker.start()
    assert proc.poll() is None


def test_a_stale_or_foreign_pid_is_never_signalled(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path, tmp_path / "data", *free_ports(2))
    broker.data_dir.mkdir()
    # Our own pid: alive, but not a broker started with this data dir's properties.
    broker.pid_file.write_text(f"{os.getpid()}\n")
    assert broker.status().pid is None
    assert broker.stop() is False  # and we are still here
    assert not broker.pid_file.exists()


def test_a_broker_that_dies_on_start_shows_its_log_tail(tmp_path: Path, fake_bin: Path) -> None:
    write_script(fake_bin, "java", JAVA_17 + 'echo "ERROR Exiting Kafka: disk on fire"; exit 1\n')
    fake_cache(tmp_path)
    broker = LocalKafka(tmp_path, tmp_path / "data", *free_ports(2))
    (broker.log_dir).mkdir(parents=True)
    (broker.log_dir / "meta.properties").write_text("formatted\n")  # skip the format step
    with pytest.raises(LocalKafkaError, match=r"exited with code 1(.|\n)*disk on fire"):
        broker.start()
    assert not broker.pid_file.exists()
    assert broker.status().pid is None


def test_nothing_listening_means_no_metadata() -> None:
    (port,) = free_ports(1)
    assert metadata_brokers("127.0.0.1", port, timeout=0.5) is None


# --------------------------------------------------------------------------- CLI


def test_cli_starts_nothing_when_bootstrap_servers_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    monkeypatch.setattr(localkafka.shutil, "which", lambda name: None)
    settings = LocalSettings.from_env(cache_dir=str(tmp_path))
    for action in ("start", "run"):
        assert localkafka.cli(action, settings) == 0
        assert "KAFKA_BOOTSTRAP_SERVERS=kafka.example:9092 is set" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_cli_status_and_stop_when_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    port, controller_port = free_ports(2)
    settings = LocalSettings.from_env(
        cache_dir=str(tmp_path), kafka_port=port, kafka_controller_port=controller_port
    )
    assert localkafka.cli("status", settings) == 3
    assert "not running" in capsys.readouterr().out
    assert localkafka.cli("stop", settings) == 0
    assert "not running" in capsys.readouterr().out


def test_cli_reports_errors_on_stderr_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setattr(localkafka.shutil, "which", lambda name: None)
    port, controller_port = free_ports(2)
    settings = LocalSettings.from_env(
        cache_dir=str(tmp_path), kafka_port=port, kafka_controller_port=controller_port
    )
    assert localkafka.cli("start", settings) == 1
    assert "leadstream kafka start: `java` was not found" in capsys.readouterr().err


@pytest.mark.integration
def test_cli_start_status_stop_in_the_background(tmp_path: Path) -> None:
    """The real thing, as users run it: a daemon that outlives `kafka start`."""
    user_cache = Path(LocalSettings.from_env().cache_dir)
    ensure_jars(user_cache)
    cache = tmp_path / "cache"
    cache.mkdir()
    # Share the jars, keep the broker data private to this test.
    (cache / f"kafka-{KAFKA_VERSION}").symlink_to(user_cache / f"kafka-{KAFKA_VERSION}")
    port, controller_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {
        "LEADSTREAM_CACHE_DIR": str(cache),
        "LEADSTREAM_KAFKA_PORT": str(port),
        "LEADSTREAM_KAFKA_CONTROLLER_PORT": str(controller_port),
    }

    def leadstream(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", "kafka", action],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    broker = LocalKafka(cache, port=port, controller_port=controller_port)
    try:
        started = leadstream("start")
        assert started.returncode == 0, started.stderr
        assert f"running at 127.0.0.1:{port}" in started.stdout
        pid = read_pid(broker.pid_file)
        assert pid is not None and pid_alive(pid)
        assert metadata_brokers("127.0.0.1", port) == 1

        again = leadstream("start")
        assert again.returncode == 0 and "already running" in again.stdout

        status = leadstream("status")
        assert status.returncode == 0 and f"running (pid {pid}), ready" in status.stdout

        stopped = leadstream("stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert not pid_alive(pid)
        assert not broker.pid_file.exists()
        assert leadstream("status").returncode == 3
    finally:
        broker.stop()  # only acts if the test failed half-way


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(localkafka)
    assert result.attempted >= 5
    assert result.failed == 0


def test_free_ports_stay_out_of_the_ephemeral_range() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3
    ephemeral = localkafka.ephemeral_ports()
    assert all(p in localkafka.PORT_RANGE and p not in ephemeral for p in ports)
    for port in ports:  # free: each can be bound
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_ephemeral_range_defaults_when_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(localkafka, "EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert localkafka.ephemeral_ports() == range(32768, 61000)
    (tmp_path / "range").write_text("20000\t20999\n")
    monkeypatch.setattr(localkafka, "EPHEMERAL_RANGE_FILE", tmp_path / "range")
    assert localkafka.ephemeral_ports() == range(20000, 21000)
    assert all(not 20000 <= p <= 20999 for p in free_ports(5))
