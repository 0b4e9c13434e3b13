"""Settings of the local developer tooling (the local broker), apart from the worker's."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from streams.settings import FromEnv, SettingsError


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "leadstream")


@dataclass(frozen=True, slots=True)
class LocalSettings(FromEnv):
    """Where the local broker's jars are cached and which ports it listens on."""

    cache_dir: str = field(
        default_factory=_default_cache_dir, metadata={"env": "LEADSTREAM_CACHE_DIR"}
    )
    kafka_port: int = field(default=9092, metadata={"env": "LEADSTREAM_KAFKA_PORT"})
    kafka_controller_port: int = field(
        default=9093, metadata={"env": "LEADSTREAM_KAFKA_CONTROLLER_PORT"}
    )
    #: A SASL_SSL listener too (SCRAM, a local CA; streams.local.kafka), to try
    #: leadstream against a secured Kafka. 0: none.
    kafka_sasl_ssl_port: int = field(default=0, metadata={"env": "LEADSTREAM_KAFKA_SASL_SSL_PORT"})

    def validate(self) -> None:
        for name in ("kafka_port", "kafka_controller_port"):
            if not 0 < getattr(self, name) < 65536:
                raise SettingsError(f"{LOCAL_ENV_VARS[name]} must be a port number")
        if not 0 <= self.kafka_sasl_ssl_port < 65536:
            raise SettingsError(f"{LOCAL_ENV_VARS['kafka_sasl_ssl_port']} must be a port number")


#: Field name -> environment variable.
LOCAL_ENV_VARS: dict[str, str] = {
    f.name: f.metadata["env"] for f in dataclasses.fields(LocalSettings)
}
