"""The ``leadstream`` commands that only wire a module to the command line:
``model test`` (streams.modeltest) and ``lead`` (streams.leadhistory)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from scoring import LeadState, apply, load_default_model
from streams.cli import main
from streams.core import contract
from streams.leadhistory import history_body

PASSING = """
[[leads]]
name = "a crawler's user agent counts nothing"
events = [{ at = "0s", source = "web", url = "https://x/demo", user_agent = "Googlebot/2.1" }]
expect = { score = 0, bots_filtered = 1 }
"""
FAILING = PASSING.replace("score = 0,", "score = 50,")


def test_model_test_exits_0_when_every_example_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixtures = tmp_path / "leads.toml"
    fixtures.write_text(PASSING)
    assert main(["model", "test", str(fixtures)]) == 0
    assert "crawler" in capsys.readouterr().out


def test_model_test_exits_1_and_says_what_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixtures = tmp_path / "leads.toml"
    fixtures.write_text(FAILING)
    assert main(["model", "test", str(fixtures)]) == 1
    out = capsys.readouterr().out
    assert "score" in out and "50" in out


def test_model_test_exits_2_on_a_model_that_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixtures = tmp_path / "leads.toml"
    fixtures.write_text(PASSING)
    bad = tmp_path / "model.toml"
    bad.write_text("this is not a model")
    assert main(["model", "test", str(fixtures), "--model", str(bad)]) == 2
    assert "invalid scoring model" in capsys.readouterr().err


def _history() -> dict[str, Any]:
    """What the API answers for a lead with one pricing-page visit."""
    model = load_default_model()
    t = 1_790_000_000.0
    raw = {"event_id": "e1", "lead_id": "lead-1", "occurred_at": int(t * 1000)}
    raw |= {"url": "https://example.com/pricing", "duration_seconds": 60}
    event = contract.decode_event("web", orjson.dumps(raw), now=t, max_future_skew_s=300)
    state, _ = apply(LeadState("lead-1"), event, model)
    return history_body(state, model, t)


HISTORY = _history()


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer " + "t" * 16:
            self.send_response(401)
            self.end_headers()
        elif self.path == "/leads/lead-1/history":
            body = orjson.dumps(HISTORY)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_lead_prints_the_history_with_the_api_token(
    api: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEADSTREAM_API_TOKEN", "t" * 16)
    assert main(["lead", "lead-1", "--url", api]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lead lead-1: ") and "pricing" in out


def test_lead_says_unknown_lead_and_wrong_token_in_one_line(
    api: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEADSTREAM_API_TOKEN", "t" * 16)
    assert main(["lead", "nobody", "--url", api]) == 1
    assert capsys.readouterr().err.strip() == "leadstream lead: no such lead"
    monkeypatch.setenv("LEADSTREAM_API_TOKEN", "u" * 16)
    assert main(["lead", "lead-1", "--url", api]) == 2
    assert "token" in capsys.readouterr().err


def test_lead_says_when_no_worker_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lead", "lead-1", "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot reach" in capsys.readouterr().err
