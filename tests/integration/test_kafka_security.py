"""The worker and the tools against a secured broker: SASL_SSL with SCRAM and TLS from a
local CA, plus a listener that requires a client certificate (mTLS).

One broker for the module (``streams.local.kafka.LocalKafka`` with its secure
listeners: certificates made with openssl, SCRAM users added when its storage is
formatted). Every client here connects over the secure listeners only: the worker, the
producer of the test's events, the reader of ``lead.qualified``, ``tail`` and
``demo``. A wrong password and an untrusted certificate must stop the worker within
seconds with one line that names the problem, and exit 2.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.faust_adapter.kafka_meta import BrokerAccessError, check_access
from streams.kafkasecurity import KafkaSecurity, security_of
from streams.local.kafka import LocalKafka, free_ports, pid_alive
from streams.local.launcher import REPO
from streams.local.settings import LocalSettings
from streams.local.tls import ensure_tls_files
from streams.local.verify import read_topic
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.harness import (
    TopicReader,
    Topics,
    Worker,
    event,
    poll,
    produce_sync,
    to_record,
)

FAST_MODEL = Path(__file__).with_name("fast_model.toml")
#: A worker that cannot authenticate must be gone well within this; retrying, it
#: would wait for the broker for 60 s (Python's start-up and imports are most of it).
FAIL_FAST_S = 20.0


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of its own (KAFKA_BOOTSTRAP_SERVERS does not apply: the test needs to
    know its users and CA), started once for the module."""
    port, controller_port, sasl_ssl_port, mtls_port = free_ports(4)
    broker = LocalKafka(
        cache_dir=LocalSettings.from_env().cache_dir,
        data_dir=tmp_path_factory.mktemp("secure-kafka"),
        port=port,
        controller_port=controller_port,
        sasl_ssl_port=sasl_ssl_port,
        mtls_port=mtls_port,
    )
    broker.start()
    pid = broker.pid
    assert pid is not None
    try:
        yield broker
    finally:
        broker.stop()
        assert not pid_alive(pid), f"broker JVM {pid} still running after stop()"


def client(env: dict[str, str]) -> tuple[str, KafkaSecurity]:
    settings = Settings.from_env(env)
    return settings.bootstrap_servers, security_of(settings)


def engaging_events(lead: str, at: float) -> list[tuple[str, dict[str, Any]]]:
    """Profile (grade A), two clicks (20: warm), a webinar (60: MQL) in the fast model."""
    profile = {"seniority": "director", "company_size": 500, "decision_role": "user"}
    return [
        ("profiles", event("profile", lead, f"{lead}-p", at, attributes=profile)),
        ("email", event("email", lead, f"{lead}-c1", at + 1, action="click", campaign_id="c")),
        ("email", event("email", lead, f"{lead}-c2", at + 2, action="click", campaign_id="c")),
        (
            "webinar",
            event("webinar", lead, f"{lead}-w", at + 3, action="attended", webinar_id="w1"),
        ),
    ]


def test_the_worker_runs_end_to_end_over_sasl_ssl(secure_kafka: LocalKafka, tmp_path: Path) -> None:
    env = secure_kafka.client_env()
    bootstrap, security = client(env)
    password = secure_kafka.scram_password_file.read_text().strip()
    topics = Topics(f"sec-{uuid.uuid4().hex[:8]}")
    worker = Worker(
        bootstrap, topics, tmp_path / "worker", model_path=FAST_MODEL, extra_env=env
    ).start()
    try:
        worker.wait_ready()
        lead = f"lead-{uuid.uuid4().hex[:10]}"
        records = [to_record(getattr(topics, k), m) for k, m in engaging_events(lead, time.time())]
        produce_sync(bootstrap, records, security=security)
        qualified = TopicReader(bootstrap, topics.qualified, security)
        changes = qualified.wait_for(
            lambda ms: len([m for m in ms if m["lead_id"] == lead]) >= 2,
            timeout=30,
            what="two stage changes on lead.qualified, read over SASL_SSL",
        )
        assert [(c["from_stage"], c["to_stage"]) for c in changes if c["lead_id"] == lead] == [
            ("cold", "warm"),
            ("warm", "mql"),
        ]
        status, view = worker.get_json(f"/leads/{lead}")
        assert status == 200 and view["stage"] == "mql"  # the state, from the table
        status, metrics = worker.get("/metrics")
        assert status == 200 and password.encode() not in metrics
        tailed = tail_qualified(env, topics, tmp_path / "tail.out", until=lead)
        assert lead in tailed and "mql" in tailed
    finally:
        assert worker.stop() == 0, worker.log_tail()
    log = worker.log_tail(100_000)
    assert "over SASL_SSL (SCRAM-SHA-512 as 'leadstream')" in log
    assert password not in log and "Traceback" not in log


def tail_qualified(env: dict[str, str], topics: Topics, out: Path, *, until: str) -> str:
    """``leadstream tail --from-beginning`` over the secure listener until it prints
    ``until``; its output (kept in ``out``)."""
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "tail", "--from-beginning"],
            cwd=REPO,
            env=cli_env(env, topics),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        poll(
            lambda: until in out.read_text() or proc.poll() is not None,
            timeout=30,
            what="tail to print the lead",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return out.read_text()


def cli_env(env: dict[str, str], topics: Topics) -> dict[str, str]:
    """A ``leadstream`` command's environment: the test's topics, over ``env``'s listener."""
    return {**os.environ, **topics.env, **env}


@pytest.mark.parametrize("problem", ["wrong password", "untrusted certificate"])
def test_the_worker_stops_at_once_with_one_clear_line(
    secure_kafka: LocalKafka, tmp_path: Path, problem: str
) -> None:
    env = secure_kafka.client_env()
    wrong = "not-the-password-" + uuid.uuid4().hex[:6]
    if problem == "wrong password":
        del env["KAFKA_SASL_PASSWORD_FILE"]
        env["KAFKA_SASL_PASSWORD"] = wrong
        # The broker's own words between the two.
        expected = (
            f"leadstream: cannot start: Kafka at {env['KAFKA_BOOTSTRAP_SERVERS']} refused "
            "'leadstream' (SCRAM-SHA-512): Authentication failed",
            "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)",
        )
    else:
        other = ensure_tls_files(tmp_path / "another-ca")
        env["KAFKA_SSL_CA_FILE"] = str(other.ca)
        # OpenSSL's reason between the two.
        expected = (
            f"leadstream: cannot start: the TLS certificate of Kafka at "
            f"{env['KAFKA_BOOTSTRAP_SERVERS']} is not trusted by KAFKA_SSL_CA_FILE={other.ca}: ",
            "; set KAFKA_SSL_CA_FILE to the CA that signed it",
        )
    worker = Worker(env["KAFKA_BOOTSTRAP_SERVERS"], Topics("unused"), tmp_path, extra_env=env)
    worker.start()
    assert worker.proc is not None
    started = time.monotonic()
    try:
        code = worker.proc.wait(timeout=60)
    finally:
        if worker.proc.poll() is None:  # the test failed: leave nothing running
            worker.kill()
    seconds = time.monotonic() - started
    log = worker.log_tail(1000)
    assert code == 2, log
    assert seconds < FAIL_FAST_S, f"took {seconds:.1f}s:\n{log}"
    last = log.splitlines()[-1]
    assert last.startswith(expected[0]) and last.endswith(expected[1]), last
    assert log.count("cannot start") == 1 and "Traceback" not in log and wrong not in log


def test_a_client_certificate_opens_the_mtls_listener_and_its_absence_is_named(
    secure_kafka: LocalKafka, unique: str
) -> None:
    bootstrap, mtls = client(secure_kafka.client_env(mtls=True))
    topic = f"mtls-{unique}"
    assert ensure_topics(bootstrap, {topic: 1}, 30, security=mtls) == [topic]
    produce_sync(bootstrap, [(topic, b"k", b"over mTLS")], security=mtls)
    records = asyncio.run(read_topic(bootstrap, topic, security=mtls))
    assert [r.value for r in records] == [b"over mTLS"]

    without = dict(secure_kafka.client_env(mtls=True))
    del without["KAFKA_SSL_CERT_FILE"], without["KAFKA_SSL_KEY_FILE"]
    _, no_cert = client(without)
    with pytest.raises(BrokerAccessError, match=r"require a client certificate \(KAFKA_SSL_CERT"):
        asyncio.run(check_access(bootstrap, no_cert, timeout=30))


def test_scram_sha_256_works_too_and_demo_traffic_flows(
    secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    env = {**secure_kafka.client_env(), "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}
    topics = Topics(f"demo-{uuid.uuid4().hex[:8]}")
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--duration", "2", "--rate", "20"],
        cwd=REPO,
        env=cli_env(env, topics),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "failed 0" in result.stdout
    bootstrap, security = client(env)
    sent = asyncio.run(read_topic(bootstrap, topics.web, security=security))
    assert sent  # the web topic got the demo's visits, over SCRAM-SHA-256
