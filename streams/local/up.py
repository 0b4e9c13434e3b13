"""``leadstream up``: the whole flow on one machine, stopped by one Ctrl-C.

Starts the local broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` names one), then three
child processes: a worker, demo traffic and a tail of ``lead.qualified``. Children
get SIGTERM in reverse order and are waited for before the broker stops, so nothing
is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streams.local.processes import stop_process
from streams.local.settings import LocalSettings
from streams.settings import Settings

#: Seconds each child gets to stop after SIGTERM before it is killed.
STOP_GRACE_S = 20.0


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "streams.cli", *args], env=env)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        stop_process(child, STOP_GRACE_S)


def run_up(settings: Settings, local: LocalSettings) -> int:
    from streams.local.kafka import LocalKafka

    env = dict(os.environ)
    broker: LocalKafka | None = None
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        broker = LocalKafka(
            cache_dir=Path(local.cache_dir),
            data_dir=Path(local.cache_dir) / f"broker-{local.kafka_port}",
            port=local.kafka_port,
            controller_port=local.kafka_controller_port,
            sasl_ssl_port=local.kafka_sasl_ssl_port or None,
        )
        print(f"leadstream up: starting Kafka on 127.0.0.1:{local.kafka_port} ...", flush=True)
        broker.start()
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
        if broker.sasl_ssl_port is not None:
            # The whole flow over the secure listener, as against a secured cluster.
            env.update(broker.client_env())
    print(f"leadstream up: broker {env['KAFKA_BOOTSTRAP_SERVERS']}", flush=True)
    children: list[subprocess.Popen[bytes]] = []
    interrupted = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        children.append(_spawn(["worker"], env))
        children.append(_spawn(["tail"], env))
        children.append(_spawn(["demo"], env))
        print(
            f"leadstream up: worker, demo traffic (with CRM outcomes) and tail running; "
            f"metrics at http://{settings.web_host}:{settings.web_port}/metrics ; "
            "`leadstream report --from-topics` shows the funnel; Ctrl-C stops all",
            flush=True,
        )
        while not interrupted:
            if any(c.poll() is not None for c in children):
                print("leadstream up: a child process exited; stopping", file=sys.stderr)
                break
            time.sleep(0.2)  # supervising loop, not synchronisation
    finally:
        print("leadstream up: stopping ...", flush=True)
        _stop(children)
        if broker is not None:
            broker.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM)]
    return 0 if interrupted or not failed else 1
