"""Certificates for the local broker's TLS listeners, made with ``openssl``: no downloads.

:func:`ensure_tls_files` writes, once per directory (kept afterwards, so a client's CA
file stays valid across broker restarts):

- ``ca.pem`` / ``ca.key``: a private CA, the one clients trust (``KAFKA_SSL_CA_FILE``);
- ``broker.pem``: the broker's unencrypted key and certificate chain, for Kafka's
  ``ssl.keystore.type=PEM``, valid for ``127.0.0.1`` and ``localhost``;
- ``client.pem`` / ``client.key``: a client certificate (``CN=leadstream``) for
  listeners that require one (mTLS).

Keys are EC P-256 (fast to make, accepted by Java and OpenSSL alike), readable by
the owner only. Example::

    tls = ensure_tls_files(data_dir / "tls")
    context = ssl.create_default_context(cafile=tls.ca)
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: Names the broker's certificate is valid for: what the local listeners advertise.
BROKER_NAMES = ("IP:127.0.0.1", "DNS:localhost")
#: Subject of the client certificate (the principal a broker's ACLs would name).
CLIENT_NAME = "leadstream"
VALID_DAYS = 825

#: One config for every step, so no system openssl.cnf defaults (which differ
#: between distributions) add or clash with extensions.
_CONFIG = f"""\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = leadstream
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[broker]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = {", ".join(BROKER_NAMES)}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


class TlsError(RuntimeError):
    """openssl is missing or failed; the message has its output."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The files :func:`ensure_tls_files` made in ``directory``."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def broker_keystore(self) -> Path:
        return self.directory / "broker.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca, self.broker_keystore, self.client_cert))


def ensure_tls_files(directory: Path) -> TlsFiles:
    """The CA, broker and client files in ``directory``, made unless all are there."""
    files = TlsFiles(directory)
    if files.complete() and files.client_key.is_file():
        return files
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsError(
            "`openssl` was not found on PATH; it makes the local broker's TLS "
            "certificates. Install it (e.g. `apt-get install openssl`)."
        )
    # Made aside and renamed into place: an interrupted run leaves no half set behind.
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, mode=0o700)
    (partial / "openssl.cnf").write_text(_CONFIG)
    # A CA name of its own per directory: two local CAs are told apart in errors.
    ca_name = f"/CN=leadstream local CA {secrets.token_hex(4)}"
    _run(openssl, partial, "req", "-x509", *_new_key("ca.key"), "-extensions", "ca",
         "-days", str(VALID_DAYS), "-subj", ca_name, "-out", "ca.pem")  # fmt: skip
    for name, subject in (("broker", "/CN=localhost"), ("client", f"/CN={CLIENT_NAME}")):
        _run(openssl, partial, "req", *_new_key(f"{name}.key"), "-subj", subject,
             "-out", f"{name}.csr")  # fmt: skip
        _run(openssl, partial, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-set_serial", f"0x{secrets.token_hex(16)}",
             "-days", str(VALID_DAYS), "-extfile", "openssl.cnf", "-extensions", name,
             "-out", f"{name}.crt")  # fmt: skip
    ca = (partial / "ca.pem").read_text()
    # Kafka's PEM keystore: the private key (PKCS#8), then the chain up to the CA.
    broker = (partial / "broker.key").read_text() + (partial / "broker.crt").read_text() + ca
    (partial / "broker.pem").write_text(broker)
    (partial / "client.crt").rename(partial / "client.pem")
    for leftover in ("broker.key", "broker.crt", "broker.csr", "client.csr", "openssl.cnf"):
        (partial / leftover).unlink()
    for path in partial.iterdir():
        path.chmod(0o600 if path.suffix == ".key" or path.name == "broker.pem" else 0o644)
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    return files


def _new_key(keyout: str) -> tuple[str, ...]:
    return ("-new", "-config", "openssl.cnf", "-nodes", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", keyout)  # fmt: skip


def _run(openssl: str, cwd: Path, *args: str) -> None:
    result = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise TlsError(
            f"openssl {args[0]} failed (exit {result.returncode}) in {cwd}:\n"
            + (result.stdout + result.stderr).strip()
        )
