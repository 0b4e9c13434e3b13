import dataclasses
import re
from pathlib import Path

from streams.settings import ENV_VARS, Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.read_text().split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block


def _settings_table() -> str:
    text = README.read_text()
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
        assert float(documented[env]) == default, f"{env}: README says {documented[env]}"
        checked += 1
    assert checked >= 5
