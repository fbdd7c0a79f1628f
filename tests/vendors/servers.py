"""Real FTP, FTPS and SFTP servers on 127.0.0.1 for the file-transfer tests.

Each server runs in a thread of the test process over a temporary directory, on a free
port, so the uploader is exercised over real sockets, real TLS and real SSH; nothing in the
transport is mocked. The context managers are plain Python (the benchmark probe reuses
`run_sftp_server`); the pytest fixtures at the bottom wrap them. Test modules import the
fixtures explicitly (`from tests.vendors.servers import fixture_sftp_server`); each is
registered under its short name (`sftp_server`), which is what tests ask for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import io
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_OP_UNSUPPORTED
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

USERNAME = "vendor"
PASSWORD = "s3cret-upload"

# pyftpdlib configures INFO logging to stderr unless its logger already has a handler.
logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # refused logins are expected


@dataclass
class ServerInfo:
    """A running server: where it listens and the directory it writes to."""

    host: str
    port: int
    root: Path
    host_key: str = ""  # SFTP: the server's public key line, to pin
    ca_pem: str = ""  # FTPS: the server's self-signed certificate, to trust
    auth_attempts: list[str] = field(default_factory=list)  # SFTP: user names tried


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------
# FTP / FTPS (pyftpdlib)


def _self_signed_cert(directory: Path) -> tuple[Path, str]:
    """A certificate for 127.0.0.1 (key and cert in one PEM file for pyftpdlib) and the
    certificate alone, for the client to trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = directory / "server.pem"
    path.write_text(key_pem + cert_pem)
    return path, cert_pem


@contextlib.contextmanager
def run_ftp_server(root: Path, *, tls: bool = False) -> Iterator[ServerInfo]:
    root.mkdir(parents=True, exist_ok=True)
    authorizer = DummyAuthorizer()
    # e l r a d f m w: cd, list, read, append, delete, rename, mkdir, write.
    authorizer.add_user(USERNAME, PASSWORD, str(root), perm="elradfmw")
    ca_pem = ""
    handler: type[FTPHandler]
    if tls:
        from pyftpdlib.handlers import TLS_FTPHandler  # needs pyOpenSSL

        cert_dir = root.parent / f"{root.name}-tls"
        cert_dir.mkdir(exist_ok=True)
        certfile, ca_pem = _self_signed_cert(cert_dir)
        # A subclass per server: pyftpdlib caches the TLS context on the class.
        handler = type(
            "TestTLSHandler",
            (TLS_FTPHandler,),
            {"certfile": str(certfile), "tls_control_required": True, "tls_data_required": True},
        )
    else:
        handler = type("TestFTPHandler", (FTPHandler,), {})
    handler.authorizer = authorizer
    handler.banner = "FeeSync test FTP server ready."
    handler.auth_failed_timeout = 0.05  # pyftpdlib waits 3 s after a bad password
    # Its own IO loop: pyftpdlib's default is a process-wide singleton.
    server = FTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
    host, port = server.address
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.ioloop.loop(timeout=0.05, blocking=False)
        server.close_all()

    thread = threading.Thread(target=serve, name=f"ftp-{port}", daemon=True)
    thread.start()
    try:
        yield ServerInfo(host=host, port=port, root=root, ca_pem=ca_pem)
    finally:
        stop.set()
        thread.join(timeout=5)


# --------------------------------------------------------------------------------------
# SFTP (paramiko server side)


def generate_ed25519_key() -> paramiko.PKey:
    # paramiko cannot generate Ed25519 keys itself; cryptography can, in OpenSSH format.
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem))


def public_key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()} test-server"


class _LocalHandle(paramiko.SFTPHandle):
    def __init__(self, real_path: str, flags: int, fileobj: io.BufferedIOBase) -> None:
        super().__init__(flags)
        self.real_path = real_path
        self.readfile = fileobj
        self.writefile = fileobj

    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.writefile.fileno()))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)


class LocalSFTPInterface(paramiko.SFTPServerInterface):
    """The smallest useful SFTP file system: a directory on disk seen as '/'."""

    root: Path
    supports_posix_rename = True

    def __init__(self, server: paramiko.ServerInterface, root: str, *args: object) -> None:
        super().__init__(server)
        self.root = Path(root).resolve()

    def canonicalize(self, path: str) -> str:
        return os.path.normpath("/" + path.lstrip("/")).replace("//", "/")

    def _real(self, path: str) -> str:
        # normpath of an absolute path cannot climb above '/', so this stays under root.
        return str(self.root / self.canonicalize(path).lstrip("/"))

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> object:
        real = self._real(path)
        try:
            fd = os.open(real, flags | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        return _LocalHandle(real, flags, os.fdopen(fd, mode))

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        real = self._real(path)
        try:
            out = []
            for name in os.listdir(real):
                attr = paramiko.SFTPAttributes.from_stat(os.lstat(os.path.join(real, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._real(path)))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.lstat(self._real(path)))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    def remove(self, path: str) -> int:
        try:
            os.remove(self._real(path))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        # SFTP v3 semantics (and OpenSSH's): plain rename never overwrites.
        old, new = self._real(oldpath), self._real(newpath)
        if os.path.exists(new):
            return SFTP_FAILURE
        try:
            os.rename(old, new)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)
        return SFTP_OK

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        if not self.supports_posix_rename:
            return SFTP_OP_UNSUPPORTED
        try:
            os.replace(self._real(oldpath), self._real(newpath))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return SFTP_NO_SUCH_FILE
            return paramiko.SFTPServer.convert_errno(exc.errno)
        return SFTP_OK

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        try:
            os.mkdir(self._real(path))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)
        return SFTP_OK

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_OK


class _PasswordServer(paramiko.ServerInterface):
    def __init__(self, info: ServerInfo) -> None:
        self.info = info

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        self.info.auth_attempts.append(username)
        if username == USERNAME and password == PASSWORD:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


@contextlib.contextmanager
def run_sftp_server(
    root: Path,
    *,
    host_keys: list[paramiko.PKey] | None = None,
    posix_rename: bool = True,
) -> Iterator[ServerInfo]:
    """An SFTP server on 127.0.0.1; `info.host_key` is the line of its first host key."""
    root.mkdir(parents=True, exist_ok=True)
    keys = host_keys or [generate_ed25519_key()]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    host, port = listener.getsockname()[:2]
    info = ServerInfo(host=host, port=port, root=root, host_key=public_key_line(keys[0]))
    interface = type(
        "TestSFTPInterface", (LocalSFTPInterface,), {"supports_posix_rename": posix_rename}
    )
    stop = threading.Event()
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            for key in keys:
                transport.add_server_key(key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, interface, str(root))
            transports.append(transport)
            # Negotiation runs in the transport's own thread; a failed one just ends it.
            with contextlib.suppress(Exception):
                transport.start_server(event=threading.Event(), server=_PasswordServer(info))

    thread = threading.Thread(target=serve, name=f"sftp-{port}", daemon=True)
    thread.start()
    try:
        yield info
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for transport in transports:
            transport.close()


@contextlib.contextmanager
def run_silent_server() -> Iterator[ServerInfo]:
    """A port that accepts connections (the kernel completes them) but never says a word:
    what a hung server looks like to a client."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    host, port = listener.getsockname()[:2]
    try:
        yield ServerInfo(host=host, port=port, root=Path("/nonexistent"))
    finally:
        listener.close()


# --------------------------------------------------------------------------------------
# pytest fixtures


@pytest.fixture(name="ftp_server")
def fixture_ftp_server(tmp_path: Path) -> Iterator[ServerInfo]:
    with run_ftp_server(tmp_path / "ftp-root") as info:
        yield info


@pytest.fixture(name="ftps_server")
def fixture_ftps_server(tmp_path: Path) -> Iterator[ServerInfo]:
    with run_ftp_server(tmp_path / "ftps-root", tls=True) as info:
        yield info


@pytest.fixture(name="sftp_server")
def fixture_sftp_server(tmp_path: Path) -> Iterator[ServerInfo]:
    with run_sftp_server(tmp_path / "sftp-root") as info:
        yield info


@pytest.fixture(name="silent_server")
def fixture_silent_server() -> Iterator[ServerInfo]:
    with run_silent_server() as info:
        yield info
