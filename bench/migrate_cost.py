"""What migrating a stored lead to an edited model costs, per lead, without Kafka.

    python -m bench.migrate_cost [--leads N]

After a rollout, each stored lead of another model is migrated when a tick (scheduled
at once) or an event first reads it: decoded, migrated (``scoring.migrate``), its next
change solved and its state encoded again. This times that path per lead on the
bench's stored states (``sample_states``, the recovery measure's), against the same
path without the migration (decode, next change, encode: what any first read and
write of a lead costs), and extrapolates to one million leads on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import load_default_model, load_model_text, next_change_at
from scoring.migrate import migrate
from streams.core.statecodec import decode_state, encode_state
from streams.local.workload import sample_states

#: The edit: web pricing worth more, the MQL entry lower (in the bundled model).
EDITS = (("points = 10\n", "points = 12\n"), ("entry = { score = 50,", "entry = { score = 45,"))


def edited_model_text() -> str:
    text = (Path(__file__).resolve().parent.parent / "scoring" / "default_model.toml").read_text()
    for old, new in EDITS:
        if old not in text:
            raise SystemExit(f"bench.migrate_cost: the bundled model has no {old!r} to edit")
        text = text.replace(old, new, 1)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.migrate_cost")
    parser.add_argument("--leads", type=int, default=20_000)
    args = parser.parse_args(argv)
    old, new = load_default_model(), load_model_text(edited_model_text(), "edited")
    now = time.time()
    raws = [encode_state(s) for s in sample_states(args.leads, seed=3, now=now, model=old)]

    def read_write(model_edit: bool) -> float:
        started = time.perf_counter()
        changes = 0
        for raw in raws:
            state = decode_state(raw)
            if model_edit:
                changes += len(migrate(state, new, now))
            next_change_at(state, new)
            encode_state(state)
        seconds = time.perf_counter() - started
        if model_edit:
            print(f"stage changes caused by the edit: {changes:,} of {len(raws):,} leads")
        return seconds

    base = read_write(model_edit=False)
    with_migration = read_write(model_edit=True)
    per_base, per_migrated = base / len(raws) * 1e6, with_migration / len(raws) * 1e6
    print(f"read and write a lead:           {per_base:8.1f} us")
    print(
        f"read, migrate and write a lead:  {per_migrated:8.1f} us ({per_migrated / per_base:.2f}x)"
    )
    print(f"1,000,000 leads migrated on one core: {per_migrated:.0f} s of CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
