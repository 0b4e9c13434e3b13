from pathlib import Path

import pytest

from streams.settings import ENV_VARS, Settings, SettingsError
from tests.support import close_app_loops


def test_defaults_need_no_environment() -> None:
    s = Settings.from_env({})
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.input_topics == ("web.visits", "email.events", "webinar.events", "lead.profiles")
    assert s.store == "rocksdb://"


def test_environment_is_read_and_typed() -> None:
    s = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "a:1,b:2",
            "LEADSTREAM_PARTITIONS": "8",
            "LEADSTREAM_TICK_INTERVAL_SECONDS": "0.1",
            "LEADSTREAM_TOPIC_DLQ": "dead",
        }
    )
    assert (s.partitions, s.tick_interval_s, s.topic_dlq) == (8, 0.1, "dead")
    assert s.broker_url == "kafka://a:1;kafka://b:2"


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("1", True), ("Yes", True), ("off", False), ("0", False)]
)
def test_booleans_read_common_spellings(raw: str, value: bool) -> None:
    assert Settings.from_env({"LEADSTREAM_PRELOAD_CHANGELOG": raw}).preload_changelog is value


def test_overrides_win_over_environment() -> None:
    s = Settings.from_env({"LEADSTREAM_PARTITIONS": "8"}, partitions=2)
    assert s.partitions == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEADSTREAM_PARTITIONS": "four"}, "LEADSTREAM_PARTITIONS='four': expected int"),
        ({"LEADSTREAM_PARTITIONS": "0"}, "LEADSTREAM_PARTITIONS must be positive"),
        ({"LEADSTREAM_LOG_LEVEL": "warning"}, "use one of crit, error, warn, info, debug"),
        ({"LEADSTREAM_STORE": "redis://x"}, "use rocksdb:// (default) or memory://"),
        ({"LEADSTREAM_MODEL": "/nonexistent.toml"}, "no such file"),
        ({"LEADSTREAM_PRELOAD_CHANGELOG": "maybe"}, "expected bool (true/false)"),
        ({"LEADSTREAM_EVENT_LOOP": "trio"}, "use one of uvloop, asyncio"),
        ({"LEADSTREAM_FLUSH_INTERVAL_SECONDS": "0"}, "LEADSTREAM_FLUSH_INTERVAL_SECONDS must be"),
        ({"LEADSTREAM_FETCH_MAX_WAIT_SECONDS": "-1"}, "LEADSTREAM_FETCH_MAX_WAIT_SECONDS must be"),
        (
            {"LEADSTREAM_BATCH_LINGER_SECONDS": "-0.1"},
            "LEADSTREAM_BATCH_LINGER_SECONDS must be >= 0",
        ),
    ],
)
def test_bad_values_say_which_variable_and_why(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(TypeError, match="unknown settings: nope"):
        Settings.from_env({}, nope=1)


def test_every_field_has_a_distinct_variable() -> None:
    assert len(set(ENV_VARS.values())) == len(ENV_VARS)
    assert all(
        v == "KAFKA_BOOTSTRAP_SERVERS" or v.startswith("LEADSTREAM_") for v in ENV_VARS.values()
    )


def test_topic_roles_and_their_environment_come_from_settings() -> None:
    from streams.settings import topic_env, topic_roles

    roles = topic_roles()
    assert roles["profiles"] == Settings().topic_profiles
    assert set(roles) == {"web", "email", "webinar", "profiles", "qualified", "dlq"}
    renamed = {role: f"t.{name}" for role, name in roles.items()}
    s = Settings.from_env(topic_env(renamed))
    assert s.input_topics == tuple(renamed[r] for r in ("web", "email", "webinar", "profiles"))
    assert (s.topic_qualified, s.topic_dlq) == (renamed["qualified"], renamed["dlq"])


def test_rocksdb_memory_settings_reach_each_partitions_database(tmp_path: Path) -> None:
    from streams.faust_adapter.app import ROCKSDB_WRITE_BUFFERS, create_app

    settings = Settings.from_env(
        {"LEADSTREAM_ROCKSDB_WRITE_BUFFER_MIB": "4", "LEADSTREAM_ROCKSDB_BLOCK_CACHE_MIB": "8"},
        app_id="rocksdb-unit",
        data_dir=str(tmp_path),
        store="rocksdb://",
    )
    ls = create_app(settings)
    try:
        options = ls.table.data.rocksdb_options  # what opens every partition's database
        assert (
            options.write_buffer_size,
            options.max_write_buffer_number,
            options.block_cache_size,
        ) == (4 << 20, ROCKSDB_WRITE_BUFFERS, 8 << 20)
    finally:
        close_app_loops(ls.app)


def test_the_api_token_comes_from_the_variable_or_a_file_never_both(tmp_path: Path) -> None:
    token = "s3cret-token-of-enough-length"
    assert Settings.from_env({"LEADSTREAM_API_TOKEN": token}).http_token == token
    secret = tmp_path / "token"
    secret.write_text(token + "\n")
    assert Settings.from_env({"LEADSTREAM_API_TOKEN_FILE": str(secret)}).http_token == token
    assert Settings.from_env({}).http_token is None
    both = {"LEADSTREAM_API_TOKEN": token, "LEADSTREAM_API_TOKEN_FILE": str(secret)}
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env(both)
    with pytest.raises(SettingsError, match=r"LEADSTREAM_API_TOKEN_FILE=.*No such file"):
        Settings.from_env({"LEADSTREAM_API_TOKEN_FILE": str(tmp_path / "missing")})
    with pytest.raises(SettingsError, match="shorter than 16"):
        Settings.from_env({"LEADSTREAM_API_TOKEN": "short"})
    with pytest.raises(SettingsError, match="needs an API token"):
        Settings.from_env({"LEADSTREAM_METRICS_REQUIRE_TOKEN": "true"})


def test_the_token_never_shows_in_the_settings_repr() -> None:
    token = "s3cret-token-of-enough-length"
    assert token not in repr(Settings.from_env({"LEADSTREAM_API_TOKEN": token}))
