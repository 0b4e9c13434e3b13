"""A worker restarted with an edited scoring model reads every stored lead under the
new model, and publishes what the edit changed once, with cause ``model_change``."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.integration.harness import TopicReader, Topics, Worker, event, poll
from tests.integration.test_pipeline import FAST_MODEL, for_lead, lead_view, send

#: The fast model's click rule, worth 10 points.
CLICK = 'points = 10\ncap = { count = 2, per = "1d" }'


def test_an_edited_model_reaches_stored_leads_and_downstream_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(f"model-{uuid.uuid4().hex[:8]}")
    lead = f"lead-{uuid.uuid4().hex[:8]}"
    at = time.time() - 60
    clicks = [
        ("email", event("email", lead, f"{lead}-c{i}", at + i, action="click", campaign_id="c"))
        for i in range(2)
    ]
    first = Worker(kafka_bootstrap, topics, tmp_path / "a", model_path=FAST_MODEL).start()
    try:
        first.wait_ready()
        send(first, clicks)  # 2 x 10 points: warm
        poll(
            lambda: (v := lead_view(first, lead)) is not None and v["stage"] == "warm",
            timeout=30,
            what="warm under the first model",
        )
    finally:
        assert first.stop() == 0, first.log_tail()

    text = FAST_MODEL.read_text()
    assert CLICK in text
    edited = tmp_path / "edited.toml"
    edited.write_text(text.replace(CLICK, CLICK.replace("10", "3")))  # 2 x 3 = 6: below exit 10
    qualified = TopicReader(kafka_bootstrap, topics.qualified)
    for run in ("b", "c"):  # the second restart must publish nothing more
        worker = Worker(kafka_bootstrap, topics, tmp_path / run, model_path=edited).start()
        try:
            worker.wait_ready()
            view = poll(
                lambda w=worker: (
                    (v := lead_view(w, lead)) is not None and v["stage"] == "cold" and v
                ),
                timeout=30,
                what="cold under the edited model",
            )
            assert view["score"] == pytest.approx(6.0)
            got = qualified.wait_for(
                lambda ms: any(m["cause"] == "model_change" for m in for_lead(ms, lead)),
                timeout=30,
                what="the model_change transition",
            )
        finally:
            assert worker.stop() == 0, worker.log_tail()
    changes = [m for m in for_lead(got, lead) if m["cause"] == "model_change"]
    assert [(c["from_stage"], c["to_stage"]) for c in changes] == [("warm", "cold")]
    assert changes[0]["sequence"] == 2 and changes[0]["trigger_event_id"] is None
