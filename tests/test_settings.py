import re
import ssl
import subprocess
from pathlib import Path

import pytest

from streams.kafkasecurity import PLAINTEXT, security_of
from streams.local.tls import TlsFiles, ensure_tls_files
from streams.settings import ENV_VARS, Settings, SettingsError
from tests.support import close_app_loops


def test_defaults_need_no_environment() -> None:
    s = Settings.from_env({})
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.input_topics == (
        "web.visits",
        "email.events",
        "webinar.events",
        "lead.profiles",
        "lead.outcomes",
    )
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
        (
            {"LEADSTREAM_PROCESSING_GUARANTEE": "exactly-once"},
            "use one of at_least_once, exactly_once",
        ),
        (
            {"LEADSTREAM_PROCESSING_GUARANTEE": "exactly_once"},
            "exactly_once needs LEADSTREAM_GROUP_INSTANCE_ID",
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
    # KAFKA_ only for how to reach Kafka: the address and the security settings.
    kafka = ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_", "KAFKA_SASL_", "KAFKA_SSL_")
    assert all(v.startswith(("LEADSTREAM_", *kafka)) for v in ENV_VARS.values())


def test_topic_roles_and_their_environment_come_from_settings() -> None:
    from streams.settings import topic_env, topic_roles

    roles = topic_roles()
    assert roles["profiles"] == Settings().topic_profiles
    assert set(roles) == {"web", "email", "webinar", "profiles", "outcomes", "qualified", "dlq"}
    renamed = {role: f"t.{name}" for role, name in roles.items()}
    s = Settings.from_env(topic_env(renamed))
    assert s.input_topics == tuple(
        renamed[r] for r in ("web", "email", "webinar", "profiles", "outcomes")
    )
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


# --------------------------------------------------------------------------- Kafka security


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA and a client certificate, as the local secure broker makes them (openssl)."""
    return ensure_tls_files(tmp_path_factory.mktemp("tls") / "tls")


PASSWORD = "pw-Kafka-secret-7f3a"


def sasl_ssl(tmp_path: Path, **extra: str) -> dict[str, str]:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")  # as a mounted secret or `echo` writes it
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "leadstream",
        "KAFKA_SASL_PASSWORD_FILE": str(secret),
        **extra,
    }


def test_kafka_is_plaintext_unless_configured() -> None:
    security = security_of(Settings.from_env({}))
    assert security == PLAINTEXT
    assert security.aiokafka_kwargs() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_gives_every_client_the_same_arguments(tmp_path: Path, tls: TlsFiles) -> None:
    settings = Settings.from_env(sasl_ssl(tmp_path, KAFKA_SSL_CA_FILE=str(tls.ca)))
    kwargs = security_of(settings).aiokafka_kwargs()
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "leadstream",
        "sasl_plain_password": PASSWORD,  # the file's trailing newline is not part of it
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # Only the given CA is trusted, not the system's as well.
    [ca] = context.get_ca_certs()
    assert dict(pair[0] for pair in ca["subject"])["commonName"].startswith("leadstream local CA")


def test_sasl_plaintext_has_no_tls_and_the_password_may_be_given_directly() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        }
    )
    kwargs = security_of(settings).aiokafka_kwargs()
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT" and kwargs["ssl_context"] is None
    assert kwargs["sasl_plain_password"] == PASSWORD


def test_tls_without_a_ca_file_trusts_the_system_and_can_present_a_client_certificate(
    tls: TlsFiles,
) -> None:
    system = security_of(Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL"}))
    assert system.ssl_context is not None and not system.client_certificate
    assert system.aiokafka_kwargs().keys() == {"security_protocol", "ssl_context"}
    mtls = security_of(
        Settings.from_env(
            {
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CA_FILE": str(tls.ca),
                "KAFKA_SSL_CERT_FILE": str(tls.client_cert),
                "KAFKA_SSL_KEY_FILE": str(tls.client_key),
            }
        )
    )
    assert mtls.client_certificate and mtls.describe() == "SSL (client certificate)"


def test_the_hostname_check_is_on_unless_turned_off(tls: TlsFiles) -> None:
    env = {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": str(tls.ca)}
    on = security_of(Settings.from_env(env)).ssl_context
    off = security_of(Settings.from_env({**env, "KAFKA_SSL_CHECK_HOSTNAME": "false"})).ssl_context
    assert on is not None and on.check_hostname
    # Off, the certificate itself is still verified against the CA.
    assert off is not None and not off.check_hostname and off.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS': use one of PLAINTEXT"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"},
            "KAFKA_SASL_MECHANISM='GSSAPI': use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
            },
            "needs KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)",
        ),
        (
            {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": PASSWORD},
            "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT "
            "does not use SASL",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SSL_CA_FILE": "/ca.pem"},
            "KAFKA_SSL_CA_FILE set, but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/nonexistent/ca.pem"},
            "KAFKA_SSL_CA_FILE='/nonexistent/ca.pem': No such file or directory",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEY_FILE": "/k.pem"},
            "KAFKA_SSL_KEY_FILE needs KAFKA_SSL_CERT_FILE",
        ),
        ({"KAFKA_SSL_CHECK_HOSTNAME": "maybe"}, "KAFKA_SSL_CHECK_HOSTNAME='maybe': expected bool"),
    ],
)
def test_bad_kafka_security_says_which_variable_and_why(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)) as raised:
        Settings.from_env(env)
    assert "\n" not in str(raised.value)


def test_password_files_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE"):
        Settings.from_env(sasl_ssl(tmp_path, KAFKA_SASL_PASSWORD=PASSWORD))
    missing = str(tmp_path / "missing")
    with pytest.raises(SettingsError, match=r"KAFKA_SASL_PASSWORD_FILE=.*missing'"):
        Settings.from_env(sasl_ssl(tmp_path, KAFKA_SASL_PASSWORD_FILE=missing))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SettingsError, match=r"KAFKA_SASL_PASSWORD_FILE=.*empty' is empty"):
        Settings.from_env(sasl_ssl(tmp_path, KAFKA_SASL_PASSWORD_FILE=str(empty)))
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()  # a directory: unreadable as a file even for root
    with pytest.raises(SettingsError, match=r"KAFKA_SASL_PASSWORD_FILE=.*: Is a directory"):
        Settings.from_env(sasl_ssl(tmp_path, KAFKA_SASL_PASSWORD_FILE=str(unreadable)))


def test_pem_files_that_are_not_certificates_or_keys_are_refused(
    tmp_path: Path, tls: TlsFiles
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    tls_env = {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": str(tls.ca)}
    with pytest.raises(SettingsError, match=r"KAFKA_SSL_CA_FILE=.*garbage.pem': not usable as PEM"):
        Settings.from_env({**tls_env, "KAFKA_SSL_CA_FILE": str(garbage)})
    with pytest.raises(SettingsError, match=r"KAFKA_SSL_CERT_FILE=.*: not usable as PEM"):
        Settings.from_env(
            {
                **tls_env,
                "KAFKA_SSL_CERT_FILE": str(tls.client_cert),
                "KAFKA_SSL_KEY_FILE": str(garbage),
            }
        )


def test_an_encrypted_client_key_is_refused_without_prompting(
    tmp_path: Path, tls: TlsFiles
) -> None:
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-in", str(tls.client_key), "-out", str(encrypted),
         "-passout", "pass:passphrase"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CERT_FILE": str(tls.client_cert),
        "KAFKA_SSL_KEY_FILE": str(encrypted),
    }
    with pytest.raises(SettingsError, match="KAFKA_SSL_KEY_FILE: the client key is encrypted"):
        Settings.from_env(env)


def test_the_kafka_password_never_shows_in_a_repr_or_an_error(tmp_path: Path) -> None:
    direct = {**sasl_ssl(tmp_path), "KAFKA_SASL_PASSWORD": PASSWORD}
    del direct["KAFKA_SASL_PASSWORD_FILE"]
    for env in (sasl_ssl(tmp_path), direct):
        settings = Settings.from_env(env)
        security = security_of(settings)
        assert security.password == PASSWORD
        for text in (repr(settings), repr(security), security.describe()):
            assert PASSWORD not in text
    # An error about another setting, with the password set, does not quote it either.
    for broken in ({"KAFKA_SASL_MECHANISM": "NOPE"}, {"KAFKA_SECURITY_PROTOCOL": "SASL_SSLX"}):
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({**direct, **broken})
        assert PASSWORD not in str(raised.value)


def test_exactly_once_takes_its_transactional_id_from_the_group_instance_id() -> None:
    s = Settings.from_env(
        {
            "LEADSTREAM_PROCESSING_GUARANTEE": "exactly_once",
            "LEADSTREAM_GROUP_INSTANCE_ID": "worker-0",
            "LEADSTREAM_APP_ID": "scoring",
        }
    )
    assert s.exactly_once and s.transactional_id == "scoring-worker-0"
    # Longer than a window's transaction (its paced write and commit), never below 10 s.
    assert s.transaction_timeout_ms == 10_000
    assert Settings.from_env({}, flush_interval_s=4.0).transaction_timeout_ms == 20_000
    assert not Settings.from_env({}).exactly_once


def test_every_input_topic_carries_a_kind_the_contract_validates() -> None:
    from streams.core import contract

    kinds = Settings().input_kinds
    assert tuple(kinds.values()) == contract.SOURCE_KINDS
    assert Settings().input_topics == tuple(kinds)
