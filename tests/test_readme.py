import dataclasses
import re
from pathlib import Path

from streams.settings import ENV_VARS, Settings

README = Path(__file__).resolve().parents[1] / "README.md"
#: The full settings table; the README shows the ones most deployments set.
OPERATIONS = README.parent / "docs" / "operations.md"


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.read_text().split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block


def _settings_table(doc: Path = OPERATIONS) -> str:
    text = doc.read_text()
    return text.split("<!-- settings-table:start -->")[1].split("<!-- settings-table:end -->")[0]


def test_settings_table_lists_every_variable_once() -> None:
    documented = re.findall(r"^\| `([A-Z_]+)` \|", _settings_table(), flags=re.M)
    assert sorted(documented) == sorted(ENV_VARS.values())


def test_settings_table_states_the_numeric_defaults() -> None:
    documented = dict(re.findall(r"^\| `([A-Z_]+)` \| `([^`]*)` \|", _settings_table(), re.M))
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    checked = 0
    for name, env in ENV_VARS.items():
        default = fields[name].default
        if isinstance(default, bool) or not isinstance(default, int | float):
            continue
        assert float(documented[env]) == default, f"{env}: the docs say {documented[env]}"
        checked += 1
    assert checked >= 5


def test_the_readmes_short_table_agrees_with_the_full_one() -> None:
    full = dict(re.findall(r"^\| `([A-Z_]+)` \| (`[^`]*`) \|", _settings_table(), re.M))
    short = re.findall(r"^\| `([A-Z_]+)` \| (`[^`]*`) \|", _settings_table(README), re.M)
    assert len(short) >= 8
    for env, default in short:
        assert full.get(env) == default, f"{env}: README says {default}, the docs {full.get(env)}"
