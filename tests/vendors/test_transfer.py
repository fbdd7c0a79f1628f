"""The streamed uploader against real FTP, FTPS and SFTP servers on loopback."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from apps.vendors.transfer import (
    TransferError,
    TransferTarget,
    fingerprint,
    upload_stream,
)
from tests.vendors.servers import (  # noqa: F401 - fixtures, registered by being imported
    PASSWORD,
    USERNAME,
    ServerInfo,
    fixture_ftp_server,
    fixture_ftps_server,
    fixture_sftp_server,
    fixture_silent_server,
    free_port,
    generate_ed25519_key,
    public_key_line,
    run_sftp_server,
)


def _target(info: ServerInfo, protocol: str, **overrides: object) -> TransferTarget:
    values: dict[str, object] = {
        "protocol": protocol,
        "host": info.host,
        "port": info.port,
        "username": USERNAME,
        "password": PASSWORD,
        "host_key": info.host_key,
        "tls_ca_pem": info.ca_pem,
        "timeout": 30.0,  # generous: the machine may be busy
    }
    values.update(overrides)
    return TransferTarget(**values)  # type: ignore[arg-type]


def _payload(size: int) -> bytes:
    # Not a repeating pattern of the chunk size, so a reordered or dropped chunk shows.
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


def _chunks(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _files(root: Path) -> list[str]:
    return sorted(os.listdir(root))


@pytest.fixture
def server(request: pytest.FixtureRequest) -> ServerInfo:
    return request.getfixturevalue(f"{request.param}_server")


PROTOCOLS = ["ftp", "ftps", "sftp"]


@pytest.mark.parametrize("server", PROTOCOLS, indirect=True)
def test_file_arrives_whole_under_its_name(server: ServerInfo) -> None:
    protocol = _protocol_of(server)
    data = _payload(1_000_003)

    result = upload_stream(_target(server, protocol), "demographics.csv", _chunks(data))

    assert (server.root / "demographics.csv").read_bytes() == data
    assert _files(server.root) == ["demographics.csv"]  # no .part left behind
    assert result.bytes_sent == len(data)
    assert result.remote_path.endswith("demographics.csv")
    assert result.elapsed_s > 0


@pytest.mark.parametrize("server", PROTOCOLS, indirect=True)
def test_an_existing_file_is_replaced(server: ServerInfo) -> None:
    protocol = _protocol_of(server)
    (server.root / "demographics.csv").write_bytes(b"yesterday\r\n" * 1000)

    upload_stream(_target(server, protocol), "demographics.csv", [b"today\r\n"])

    assert (server.root / "demographics.csv").read_bytes() == b"today\r\n"
    assert _files(server.root) == ["demographics.csv"]


@pytest.mark.parametrize("server", PROTOCOLS, indirect=True)
def test_a_failure_mid_stream_leaves_the_previous_file_intact(server: ServerInfo) -> None:
    protocol = _protocol_of(server)
    previous = b"student_id,first_name\r\n" + b"1001,Ada\r\n" * 5000
    (server.root / "demographics.csv").write_bytes(previous)

    class DatabaseWentAway(Exception):
        pass

    def failing() -> Iterator[bytes]:
        yield b"student_id,first_name\r\n"
        yield b"2002,Grace\r\n" * 50_000  # enough that bytes are on the wire
        raise DatabaseWentAway("connection to the database was lost")

    # The caller's own error comes out unchanged (it is not a network failure).
    with pytest.raises(DatabaseWentAway):
        upload_stream(_target(server, protocol), "demographics.csv", failing())

    assert (server.root / "demographics.csv").read_bytes() == previous
    # The half file is cleaned up (best effort; the servers here allow it).
    _wait_for(lambda: _files(server.root) == ["demographics.csv"])


@pytest.mark.parametrize("server", PROTOCOLS, indirect=True)
def test_a_directory_on_the_server(server: ServerInfo) -> None:
    protocol = _protocol_of(server)
    (server.root / "inbound").mkdir()

    result = upload_stream(
        _target(server, protocol, directory="inbound"), "demo.csv", [b"a,b\r\n", b"1,2\r\n"]
    )

    assert (server.root / "inbound" / "demo.csv").read_bytes() == b"a,b\r\n1,2\r\n"
    assert result.remote_path == "inbound/demo.csv"


@pytest.mark.parametrize("server", PROTOCOLS, indirect=True)
def test_wrong_password_is_a_permanent_error(server: ServerInfo) -> None:
    protocol = _protocol_of(server)

    with pytest.raises(TransferError) as caught:
        upload_stream(_target(server, protocol, password="wrong"), "x.csv", [b"data"])

    assert caught.value.permanent is True
    assert "refused the login" in caught.value.message
    assert USERNAME in caught.value.message
    assert "wrong" not in caught.value.message  # the password is never echoed
    assert _files(server.root) == []


@pytest.mark.parametrize("server", PROTOCOLS, indirect=True)
def test_a_missing_directory_is_a_permanent_error(server: ServerInfo) -> None:
    protocol = _protocol_of(server)

    with pytest.raises(TransferError) as caught:
        upload_stream(_target(server, protocol, directory="no-such-dir"), "x.csv", [b"data"])

    assert caught.value.permanent is True
    assert protocol.upper() in caught.value.message
    assert _files(server.root) == []


def test_ftps_refuses_a_certificate_it_cannot_verify(ftps_server: ServerInfo) -> None:
    # Without the self-signed certificate trusted, the system CAs do not vouch for it.
    target = _target(ftps_server, "ftps", tls_ca_pem="")

    with pytest.raises(TransferError) as caught:
        upload_stream(target, "x.csv", [b"data"])

    assert caught.value.permanent is True
    assert "certificate" in caught.value.message
    assert _files(ftps_server.root) == []


# --- SFTP host key pinning --------------------------------------------------------------


def test_sftp_wrong_host_key_is_refused_before_logging_in(sftp_server: ServerInfo) -> None:
    other_key = public_key_line(generate_ed25519_key())

    with pytest.raises(TransferError) as caught:
        upload_stream(_target(sftp_server, "sftp", host_key=other_key), "x.csv", [b"data"])

    error = caught.value
    assert error.permanent is True
    assert "host key does not match the pinned key" in error.message
    assert f"expected {fingerprint(other_key)}" in error.message
    assert f"got {fingerprint(sftp_server.host_key)}" in error.message
    assert "The upload was refused." in error.message
    assert sftp_server.auth_attempts == []  # the password never left FeeSync
    assert _files(sftp_server.root) == []


def test_sftp_without_a_pinned_key_is_refused(sftp_server: ServerInfo) -> None:
    with pytest.raises(TransferError) as caught:
        upload_stream(_target(sftp_server, "sftp", host_key=""), "x.csv", [b"data"])

    assert caught.value.permanent is True
    assert "No host key is pinned" in caught.value.message
    assert sftp_server.auth_attempts == []


def test_sftp_pins_the_key_type_the_server_offers_second(tmp_path: Path) -> None:
    # A server with an Ed25519 and an ECDSA host key; the district pinned the ECDSA one.
    # The client must ask for ECDSA, not take the Ed25519 key and call it a mismatch.
    ed_key, ec_key = generate_ed25519_key(), paramiko.ECDSAKey.generate()
    with run_sftp_server(tmp_path / "root", host_keys=[ed_key, ec_key]) as info:
        target = _target(info, "sftp", host_key=public_key_line(ec_key))
        upload_stream(target, "x.csv", [b"data"])
        assert (info.root / "x.csv").read_bytes() == b"data"


def test_sftp_replaces_without_posix_rename(tmp_path: Path) -> None:
    # A server without OpenSSH's posix-rename extension, whose plain rename will not
    # overwrite: the old file is moved aside, the new one renamed in, the old one removed.
    with run_sftp_server(tmp_path / "root", posix_rename=False) as info:
        (info.root / "d.csv").write_bytes(b"old")
        upload_stream(_target(info, "sftp"), "d.csv", [b"new"])
        assert (info.root / "d.csv").read_bytes() == b"new"
        assert _files(info.root) == ["d.csv"]


def test_fingerprint_matches_openssh() -> None:
    # paramiko's own fingerprint property follows OpenSSH (base64 SHA-256 of the key blob,
    # padding stripped), so it is an independent check of ours.
    key = generate_ed25519_key()
    line = public_key_line(key)
    assert fingerprint(line) == key.fingerprint
    assert fingerprint(f"sftp.vendor.example {line}") == key.fingerprint  # known_hosts line
    with pytest.raises(ValueError):
        fingerprint("not a key")


# --- failures that may pass -------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_refused_is_not_permanent(protocol: str) -> None:
    info = ServerInfo(host="127.0.0.1", port=free_port(), root=Path("/nonexistent"))
    target = _target(info, protocol, host_key=public_key_line(generate_ed25519_key()))

    with pytest.raises(TransferError) as caught:
        upload_stream(target, "x.csv", [b"data"])

    assert caught.value.permanent is False
    assert "refused the connection" in caught.value.message


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_that_does_not_answer_times_out(silent_server: ServerInfo, protocol: str) -> None:
    target = _target(
        silent_server, protocol, timeout=0.5, host_key=public_key_line(generate_ed25519_key())
    )
    started = time.monotonic()

    with pytest.raises(TransferError) as caught:
        upload_stream(target, "x.csv", [b"data"])

    assert caught.value.permanent is False
    assert time.monotonic() - started < 30  # a silent server never answers: it did not hang
    assert "did not answer within 0.5 seconds" in caught.value.message


def test_a_path_is_not_a_file_name(sftp_server: ServerInfo) -> None:
    with pytest.raises(TransferError) as caught:
        upload_stream(_target(sftp_server, "sftp"), "../etc/passwd", [b"x"])
    assert caught.value.permanent is True


def test_the_password_stays_out_of_repr(sftp_server: ServerInfo) -> None:
    assert PASSWORD not in repr(_target(sftp_server, "sftp"))


# --- memory -----------------------------------------------------------------------------


def test_sftp_upload_memory_stays_flat(sftp_server: ServerInfo) -> None:
    """40 MB through the uploader (client and server in this process) while the traced
    peak stays a small fraction of it: nothing holds the whole file."""
    total = 40 * 1024 * 1024
    block = os.urandom(64 * 1024)

    def stream() -> Iterator[bytes]:
        for _ in range(total // len(block)):
            yield block

    tracemalloc.start()
    try:
        result = upload_stream(_target(sftp_server, "sftp"), "big.bin", stream())
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.bytes_sent == total
    assert (sftp_server.root / "big.bin").stat().st_size == total
    assert peak < 12 * 1024 * 1024, f"peak {peak / 2**20:.1f} MB for a 40 MB upload"


# --- helpers ----------------------------------------------------------------------------


def _protocol_of(info: ServerInfo) -> str:
    if info.host_key:
        return "sftp"
    return "ftps" if info.ca_pem else "ftp"


def _wait_for(condition: object, timeout: float = 60.0) -> None:
    # The server may finish closing the aborted transfer just after the client gave up.
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        threading.Event().wait(0.05)
