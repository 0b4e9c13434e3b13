"""The local CA and certificates (openssl): a TLS client trusting only the CA accepts
the broker's certificate for 127.0.0.1 and localhost, and a server that requires a
client certificate accepts the client's. Checked with Python's ssl, no broker."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import stat
from pathlib import Path

import pytest

from streams.local.kafka import free_ports
from streams.local.tls import TlsError, TlsFiles, ensure_tls_files


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_tls_files(tmp_path_factory.mktemp("tls") / "tls")


async def handshake(tls: TlsFiles, host: str, *, client_cert: bool, require: bool) -> None:
    """A TLS server with the broker's keystore; a client trusting only the CA."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tls.ca)
    server_ctx.load_cert_chain(tls.broker_keystore)
    server_ctx.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_NONE
    client_ctx = ssl.create_default_context(cafile=tls.ca)
    if client_cert:
        client_ctx.load_cert_chain(tls.client_cert, tls.client_key)
    peers: list[str] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        peers.append(dict(p[0] for p in peer["subject"])["commonName"] if peer else "")
        writer.write(await reader.readexactly(2))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", free_ports(1)[0], ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection(host, port, ssl=client_ctx)
        try:
            writer.write(b"ok")
            # TLS 1.3 reports a refused client certificate on the first read, not at connect.
            assert await reader.readexactly(2) == b"ok"
        finally:
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()
    if require:
        assert peers == ["leadstream"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_broker_certificate_is_trusted_for_the_loopback_names(
    tls: TlsFiles, host: str
) -> None:
    await handshake(tls, host, client_cert=False, require=False)


async def test_the_client_certificate_is_accepted_where_one_is_required(tls: TlsFiles) -> None:
    await handshake(tls, "127.0.0.1", client_cert=True, require=True)
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        await handshake(tls, "127.0.0.1", client_cert=False, require=True)


def test_files_are_made_once_and_keys_stay_private(tls: TlsFiles) -> None:
    before = tls.ca.read_bytes()
    assert ensure_tls_files(tls.directory).ca.read_bytes() == before  # clients keep trusting
    for key in (tls.broker_keystore, tls.client_key, tls.directory / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    # Kafka's PEM keystore: an unencrypted PKCS#8 key first, then the chain.
    text = tls.broker_keystore.read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----") and text.count("CERTIFICATE-----") == 4


def test_another_directory_is_another_ca(tls: TlsFiles, tmp_path: Path) -> None:
    other = ensure_tls_files(tmp_path / "other")
    assert other.ca.read_bytes() != tls.ca.read_bytes()


def test_without_openssl_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TlsError, match="`openssl` was not found on PATH"):
        ensure_tls_files(tmp_path / "tls")
    assert not (tmp_path / "tls").exists()
