"""The HTTP API with a token: data endpoints need it, probes do not, Faust's internal
views are off, and an oversize URL is refused without a traceback in the log."""

from __future__ import annotations

import http.client
import secrets
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.integration.harness import Topics, Worker


def get(worker: Worker, path: str, token: str | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def test_a_token_guards_the_data_and_nothing_leaks(kafka_bootstrap: str, tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")  # as a mounted secret: trailing newline
    worker = Worker(
        kafka_bootstrap,
        Topics(f"http-{uuid.uuid4().hex[:8]}"),
        tmp_path / "worker",
        extra_env={
            "LEADSTREAM_API_TOKEN_FILE": str(token_file),
            "LEADSTREAM_METRICS_REQUIRE_TOKEN": "true",
        },
    ).start()
    try:
        worker.wait_ready()
        assert get(worker, "/health")[0] == 200
        assert get(worker, "/ready")[0] == 200
        status, headers = get(worker, "/leads/someone")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert get(worker, "/leads/someone", "wrong-token-of-some-length")[0] == 401
        assert get(worker, "/leads/someone", token)[0] == 404  # authorized: unknown lead
        assert get(worker, "/metrics")[0] == 401
        assert get(worker, "/metrics", token)[0] == 200
        for internal in ("/table/", "/stats/", "/graph/"):
            assert get(worker, internal, token)[0] == 404, internal
        assert get(worker, "/router/")[0] == 401  # lead forwarding needs it: guarded
        assert get(worker, "/router/", token)[0] == 200
        # A URL longer than aiohttp's 8 KB line limit, with personal data in it.
        conn = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=10)
        conn.request("GET", "/leads/jane.doe@example.com" + "x" * 9000)
        assert conn.getresponse().status == 400
        conn.close()
        assert get(worker, "/health")[0] == 200  # still serving
    finally:
        assert worker.stop() == 0, worker.log_tail()
    log = worker.log_tail(100_000)
    assert "rejected a malformed HTTP request (LineTooLong)" in log
    assert "Traceback" not in log and "jane.doe" not in log
    assert token not in log
