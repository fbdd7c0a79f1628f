"""Streamed file upload to a vendor over FTP, FTPS or SFTP.

Used by the demographics export and the file-exchange kind to put files on a vendor's
server (and, for the file exchange, to list, fetch and move them: `FileSession`). It
knows nothing about vendors or about what is in the file:

* The file goes up under a temporary name (`<name>.part`) and is renamed into place only
  once every byte has arrived, so the vendor never picks up half a file and a failed upload
  leaves yesterday's complete file where it was.
* The content is an iterable of `bytes` chunks written as they come: memory stays flat
  whatever the size of the file.
* SFTP host keys are pinned: the server's key must equal `TransferTarget.host_key` and is
  checked before the password is sent. Nothing is ever auto-accepted or learnt.
* Every failure leaves as a `TransferError` whose message a clerk can read and whose
  `permanent` flag tells the task runner whether trying again can help.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import ftplib
import hashlib
import io
import posixpath
import socket
import ssl
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Literal, TypeVar

import paramiko

Protocol = Literal["ftp", "ftps", "sftp"]
PROTOCOLS: tuple[str, ...] = ("ftp", "ftps", "sftp")
DEFAULT_PORTS: dict[str, int] = {"ftp": 21, "ftps": 21, "sftp": 22}
TEMP_SUFFIX = ".part"
T = TypeVar("T")

# How much of the stream is handed to the socket at once (FTP data connection / SFTP file).
_WRITE_BLOCK = 256 * 1024


@dataclass(frozen=True)
class TransferTarget:
    """Where a file goes. `host_key` is required for SFTP: the server's public key as an
    OpenSSH line (``ssh-ed25519 AAAA... comment``; a ``known_hosts`` line also works).
    `tls_ca_pem` (FTPS only) trusts this PEM certificate/CA instead of the system's CAs,
    for a vendor whose server uses a private or self-signed certificate."""

    protocol: Protocol
    host: str
    port: int
    username: str
    password: str
    directory: str = "."
    host_key: str = ""
    timeout: float = 15.0
    tls_ca_pem: str = ""
    #: SFTP: an OpenSSH private key (PEM text) to log in with instead of the password.
    private_key: str = ""

    def __repr__(self) -> str:
        # Keep the password out of logs and task-run error reports.
        return (
            f"TransferTarget(protocol={self.protocol!r}, host={self.host!r}, port={self.port!r}, "
            f"username={self.username!r}, password='***', directory={self.directory!r})"
        )


@dataclass(frozen=True)
class UploadResult:
    bytes_sent: int
    remote_path: str
    elapsed_s: float


class TransferError(Exception):
    """An upload that did not happen. `message` is shown to staff as is; `permanent=True`
    means retrying unchanged cannot succeed (a refused login, a host key that does not
    match, a setting that is missing), `False` means it may (timeouts, refused connections,
    a dropped line)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class _SourceFailed(Exception):
    """Wraps an exception raised by the caller's chunk iterator, so it is not mistaken for
    a network failure (an OSError from the database is not 'the server did not answer')."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


# --------------------------------------------------------------------------------------
# Host keys


def _parse_key_line(key_line: str) -> tuple[str, bytes]:
    """(key type, public key blob) from an OpenSSH public key or known_hosts line."""
    parts = key_line.strip().split()
    # A known_hosts line starts with the host pattern(s); an authorized_keys-style line
    # starts with the key type. The type is the token followed by the base64 blob.
    for i in range(len(parts) - 1):
        key_type, blob_b64 = parts[i], parts[i + 1]
        try:
            blob = base64.b64decode(blob_b64, validate=True)
        except (binascii.Error, ValueError):
            continue
        # The blob starts with its own key type as an SSH string; check they agree.
        if len(blob) > 4:
            n = int.from_bytes(blob[:4], "big")
            if blob[4 : 4 + n] == key_type.encode():
                return key_type, blob
    raise ValueError("not an OpenSSH public key line")


def _fingerprint_blob(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def fingerprint(key_line: str) -> str:
    """The OpenSSH SHA256 fingerprint (``SHA256:...``, as `ssh-keygen -lf` prints it) of a
    public key line. Raises ValueError if the line is not a public key."""
    return _fingerprint_blob(_parse_key_line(key_line)[1])


def _host_key_algorithms(key_type: str) -> list[str]:
    # Offer the server only the algorithm(s) of the pinned key, so a server with several
    # host keys (RSA and Ed25519, say) presents the one we pinned rather than another one
    # that would then look like a mismatch. Same rule as paramiko's Transport.connect().
    if key_type == "ssh-rsa":
        return ["rsa-sha2-512", "rsa-sha2-256"]
    return [key_type]


# --------------------------------------------------------------------------------------
# Errors in plain words


def _where(target: TransferTarget) -> str:
    return f"{target.protocol.upper()} server {target.host}:{target.port}"


def _network_error(target: TransferTarget, exc: BaseException) -> TransferError:
    where = _where(target)
    if isinstance(exc, TransferError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransferError(
            f"The {where} presented a TLS certificate that could not be verified "
            f"({exc.verify_message}). The upload was refused.",
            permanent=True,
        )
    if isinstance(exc, TimeoutError):
        return TransferError(
            f"The {where} did not answer within {target.timeout:g} seconds.", permanent=False
        )
    if isinstance(exc, ConnectionRefusedError):
        return TransferError(
            f"The {where} refused the connection (nothing is listening on that port, or a "
            "firewall is in the way).",
            permanent=False,
        )
    if isinstance(exc, socket.gaierror):
        return TransferError(
            f"The server name {target.host!r} could not be found ({exc.strerror}).",
            permanent=False,
        )
    if isinstance(exc, ftplib.error_perm):
        return TransferError(f"The {where} refused the request: {str(exc).strip()}", permanent=True)
    if isinstance(exc, ftplib.error_temp):
        return TransferError(
            f"The {where} is temporarily unable to take the file: {str(exc).strip()}",
            permanent=False,
        )
    if isinstance(exc, paramiko.SSHException) and "protocol banner" in str(exc):
        return TransferError(
            # Either nothing answered, or something that is not an SSH server did.
            f"The {where} did not answer within {target.timeout:g} seconds with an SSH "
            "greeting (is the port right?).",
            permanent=False,
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return TransferError(
            f"The {where} refused the login for user {target.username!r}. "
            "Check the user name and password.",
            permanent=True,
        )
    if isinstance(exc, PermissionError):
        return TransferError(
            f"The {where} does not allow user {target.username!r} to write in "
            f"{target.directory!r}: {exc.strerror or exc}",
            permanent=True,
        )
    if isinstance(exc, FileNotFoundError):
        return TransferError(
            f"The {where} has no directory {target.directory!r} for user "
            f"{target.username!r}: {exc.strerror or exc}",
            permanent=True,
        )
    # Anything else (connection reset, SSH negotiation broke off, unexpected FTP reply) is
    # treated as passing: the next run tries again, and staff see what happened.
    detail = str(exc).strip() or type(exc).__name__
    return TransferError(f"The upload to the {where} failed: {detail}", permanent=False)


def _check(target: TransferTarget, remote_name: str) -> None:
    if target.protocol not in PROTOCOLS:
        raise TransferError(
            f"Unknown transfer protocol {target.protocol!r}; use ftp, ftps or sftp.",
            permanent=True,
        )
    if not remote_name or "/" in remote_name or "\\" in remote_name or remote_name in (".", ".."):
        # A file name, not a path: the directory comes from the target, and a name with a
        # slash could write outside it.
        raise TransferError(f"{remote_name!r} is not a valid file name.", permanent=True)
    if target.protocol == "sftp":
        if not target.host_key.strip():
            raise TransferError(
                f"No host key is pinned for the SFTP server {target.host}:{target.port}. "
                "Ask the vendor for their server's public host key (an 'ssh-ed25519 AAAA...' "
                "line) and enter it in the integration's settings; FeeSync never accepts an "
                "unknown host key.",
                permanent=True,
            )
        try:
            _parse_key_line(target.host_key)
        except ValueError:
            raise TransferError(
                "The pinned SFTP host key is not an OpenSSH public key line "
                "(expected something like 'ssh-ed25519 AAAA...').",
                permanent=True,
            ) from None


# --------------------------------------------------------------------------------------
# Public entry point


def upload_stream(
    target: TransferTarget, remote_name: str, chunks: Iterable[bytes]
) -> UploadResult:
    """Upload `chunks` to `target.directory/remote_name`, replacing any file of that name.

    The bytes go to `remote_name + ".part"` first and are renamed into place at the end, so
    the remote file is either the previous complete one or the new complete one. If the
    chunk iterator itself raises, the partial upload is removed (best effort) and that
    exception propagates unchanged; network and server failures raise `TransferError`.
    """
    _check(target, remote_name)
    started = time.monotonic()
    upload = _sftp_upload if target.protocol == "sftp" else _ftp_upload
    try:
        sent, remote_path = upload(target, remote_name, _guard_source(chunks))
    except _SourceFailed as failed:
        raise failed.original from None
    except TransferError:
        raise
    except (OSError, EOFError, ftplib.Error, paramiko.SSHException) as exc:
        raise _network_error(target, exc) from exc
    return UploadResult(
        bytes_sent=sent, remote_path=remote_path, elapsed_s=time.monotonic() - started
    )


def _guard_source(chunks: Iterable[bytes]) -> Iterator[bytes]:
    iterator = iter(chunks)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise _SourceFailed(exc) from exc
        if chunk:
            yield chunk


def _blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Re-cut the stream into blocks of about `_WRITE_BLOCK` bytes: many tiny chunks would
    mean many tiny network writes; one huge chunk is passed through as is."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= _WRITE_BLOCK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


# --------------------------------------------------------------------------------------
# FTP / FTPS


class _FTPTLS(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on data connections.

    Many FTPS servers (vsftpd's default `require_ssl_reuse`, FileZilla Server) refuse a data
    connection that does not reuse the control session, and ftplib does not do it."""

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        # Skip FTP_TLS's own wrapping (no session reuse): open the plain data connection...
        conn, size = super(ftplib.FTP_TLS, self).ntransfercmd(cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]  # set by prot_p()
            # ...and wrap it ourselves, resuming the control connection's TLS session.
            session = getattr(self.sock, "session", None)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


def _ftps_context(target: TransferTarget) -> ssl.SSLContext:
    if target.tls_ca_pem.strip():
        return ssl.create_default_context(cadata=target.tls_ca_pem)
    return ssl.create_default_context()


def _ftp_connect(target: TransferTarget) -> ftplib.FTP:
    ftp: ftplib.FTP
    if target.protocol == "ftps":
        ftp = _FTPTLS(context=_ftps_context(target), timeout=target.timeout)
    else:
        # Plain FTP is what some vendors still offer; the target says which one to use.
        ftp = ftplib.FTP(timeout=target.timeout)  # noqa: S321 - protocol chosen by the district's settings
    try:
        ftp.connect(target.host, target.port, timeout=target.timeout)
        try:
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.auth()
            ftp.login(target.username, target.password)
        except ftplib.error_perm as exc:
            if str(exc).startswith("530"):
                raise TransferError(
                    f"The {_where(target)} refused the login for user {target.username!r}. "
                    "Check the user name and password.",
                    permanent=True,
                ) from exc
            raise
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()  # encrypt the data connection too, not only the password
        if target.directory not in ("", "."):
            ftp.cwd(target.directory)
        ftp.voidcmd("TYPE I")  # binary: bytes arrive exactly as sent
    except BaseException:
        _ftp_close(ftp)
        raise
    return ftp


def _ftp_close(ftp: ftplib.FTP) -> None:
    if ftp.sock is None:  # already closed
        return
    try:
        ftp.quit()
    except (OSError, EOFError, ftplib.Error):
        ftp.close()


def _ftp_upload(
    target: TransferTarget, remote_name: str, chunks: Iterable[bytes]
) -> tuple[int, str]:
    temp_name = remote_name + TEMP_SUFFIX
    ftp = _ftp_connect(target)
    sent = 0
    try:
        try:
            # Same steps as ftplib.storbinary, but fed from an iterator instead of a file.
            with ftp.transfercmd(f"STOR {temp_name}") as conn:
                for block in _blocks(chunks):
                    conn.sendall(block)
                    sent += len(block)
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()  # a clean TLS close, or the server may drop the file
            ftp.voidresp()
        except BaseException:
            # Drop the half file; the connection may be unusable, so on a fresh one.
            _ftp_discard(target, temp_name, ftp)
            raise
        _ftp_replace(ftp, temp_name, remote_name)
    finally:
        _ftp_close(ftp)
    return sent, posixpath.join(target.directory or ".", remote_name)


def _ftp_replace(ftp: ftplib.FTP, temp_name: str, remote_name: str) -> None:
    _replace(ftp.rename, ftp.delete, temp_name, remote_name, errors=(ftplib.error_perm,))


def _ftp_discard(target: TransferTarget, temp_name: str, broken: ftplib.FTP) -> None:
    broken.close()
    with contextlib.suppress(Exception):
        ftp = _ftp_connect(target)
        try:
            ftp.delete(temp_name)
        finally:
            _ftp_close(ftp)


# --------------------------------------------------------------------------------------
# SFTP


def _sftp_connect(target: TransferTarget) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
    pinned_type, pinned_blob = _parse_key_line(target.host_key)
    sock = socket.create_connection((target.host, target.port), timeout=target.timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = target.timeout
        transport.handshake_timeout = target.timeout
        transport.auth_timeout = target.timeout
        options = transport.get_security_options()
        try:
            options.key_types = _host_key_algorithms(pinned_type)
        except ValueError:
            raise TransferError(
                f"The pinned SFTP host key is of type {pinned_type!r}, which FeeSync cannot "
                "check. Ask the vendor for an ssh-ed25519, ecdsa or rsa host key.",
                permanent=True,
            ) from None
        # Key exchange only: the server proves it holds the private half of the key it
        # shows. No credentials have been sent yet.
        transport.start_client(timeout=target.timeout)
        if not transport.initial_kex_done:
            # start_client() returns quietly when its time is up.
            raise TimeoutError("SSH negotiation timed out")
        server_key = transport.get_remote_server_key()
        if server_key.asbytes() != pinned_blob:
            expected = _fingerprint_blob(pinned_blob)
            got = _fingerprint_blob(server_key.asbytes())
            raise TransferError(
                f"The SFTP server's host key does not match the pinned key (expected "
                f"{expected}, got {got}). "
                "The upload was refused. If the vendor has changed its server key, confirm "
                "the new key with them and update the integration's settings.",
                permanent=True,
            )
        _sftp_authenticate(transport, target)
        sftp = paramiko.SFTPClient.from_transport(transport)
        channel = sftp.get_channel() if sftp is not None else None
        if sftp is None or channel is None:
            raise TransferError(
                f"The {_where(target)} would not open an SFTP session.", permanent=False
            )
        # Every read and write on the session gives up after `timeout` seconds, so a server
        # that stalls mid-upload cannot hang the nightly task.
        channel.settimeout(target.timeout)
    except BaseException:
        transport.close()
        raise
    return transport, sftp


def _private_key(text: str) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text.strip() + "\n"))
        except (paramiko.SSHException, ValueError):
            continue
    raise TransferError(
        "The SFTP private key is not an unencrypted OpenSSH private key "
        "(expected the whole text from -----BEGIN OPENSSH PRIVATE KEY----- or "
        "-----BEGIN RSA PRIVATE KEY----- to its END line).",
        permanent=True,
    )


def _sftp_authenticate(transport: paramiko.Transport, target: TransferTarget) -> None:
    if target.private_key.strip():
        transport.auth_publickey(target.username, _private_key(target.private_key))
        if not transport.is_authenticated():
            raise paramiko.AuthenticationException("not authenticated")
        return
    try:
        transport.auth_password(target.username, target.password)
    except paramiko.BadAuthenticationType as exc:
        # Some servers take the password only through keyboard-interactive.
        if "keyboard-interactive" not in exc.allowed_types:
            raise TransferError(
                f"The {_where(target)} does not accept password logins (it allows: "
                f"{', '.join(exc.allowed_types) or 'nothing'}).",
                permanent=True,
            ) from exc

        def answer(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
            return [target.password for _prompt in prompts]

        transport.auth_interactive(target.username, answer)
    if not transport.is_authenticated():
        raise paramiko.AuthenticationException("not authenticated")


def _sftp_upload(
    target: TransferTarget, remote_name: str, chunks: Iterable[bytes]
) -> tuple[int, str]:
    directory = target.directory or "."
    remote_path = posixpath.join(directory, remote_name)
    temp_path = remote_path + TEMP_SUFFIX
    transport, sftp = _sftp_connect(target)
    sent = 0
    try:
        try:
            with sftp.open(temp_path, "wb") as remote_file:
                # Don't wait for each 32 KB write's acknowledgement before sending the next
                # (a round trip each otherwise: the difference between seconds and
                # minutes for a big file); errors still surface at close(), which waits
                # for all of them.
                remote_file.set_pipelined(True)
                for block in _blocks(chunks):
                    remote_file.write(block)
                    sent += len(block)
        except BaseException:
            with contextlib.suppress(Exception):
                sftp.remove(temp_path)
            raise
        _sftp_replace(sftp, temp_path, remote_path)
    finally:
        sftp.close()
        transport.close()
    return sent, remote_path


def _sftp_replace(sftp: paramiko.SFTPClient, temp_path: str, remote_path: str) -> None:
    try:
        # OpenSSH's posix-rename replaces an existing file atomically.
        sftp.posix_rename(temp_path, remote_path)
        return
    except OSError as exc:
        if exc.errno is not None:
            raise  # no such file / permission denied: a real failure, not a missing extension
    # The server lacks the extension; plain SFTP v3 rename refuses to overwrite.
    _replace(sftp.rename, sftp.remove, temp_path, remote_path, errors=(OSError,))


def _replace(
    rename: Callable[[str, str], object],
    remove: Callable[[str], object],
    temp: str,
    final: str,
    *,
    errors: tuple[type[Exception], ...],
) -> None:
    """Rename `temp` to `final`, replacing `final` if the server will not do it in one step.

    The old file is moved aside (not deleted) before the new one takes its name, and put
    back if that fails, so the vendor is never left with no file at all."""
    try:
        # Most servers replace an existing file on rename, atomically.
        rename(temp, final)
        return
    except errors as exc:
        first_failure = exc
    backup = final + ".old"
    with contextlib.suppress(*errors):
        remove(backup)
    try:
        rename(final, backup)
    except errors:
        # `final` is not there either: the rename failed for another reason (permissions,
        # the temp file vanished). Report that first failure.
        raise first_failure from None
    try:
        rename(temp, final)
    except errors:
        with contextlib.suppress(*errors):
            rename(backup, final)
        raise
    with contextlib.suppress(*errors):
        remove(backup)


# --------------------------------------------------------------------------------------
# Fetching a file (SFTP): the roster import's nightly fetch from the SIS's export directory


@dataclass(frozen=True)
class FetchedFile:
    name: str
    content: bytes
    modified: float  # the server's mtime, seconds since the epoch


def sftp_fetch_newest(
    target: TransferTarget, *, suffixes: tuple[str, ...] = (".zip", ".csv")
) -> FetchedFile | None:
    """The newest complete file in `target.directory` whose name ends in one of `suffixes`
    (files still being written, `*.part`, are passed over), or None when there is none.
    Same host-key pinning and plain-words errors as the uploads."""
    if target.protocol != "sftp":
        raise TransferError("Fetching a file is done over SFTP only.", permanent=True)
    if not target.host_key:
        raise TransferError(
            "No SFTP host key is pinned: paste the server's public key line into the setting.",
            permanent=True,
        )
    try:
        transport, sftp = _sftp_connect(target)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise _network_error(target, exc) from exc
    try:
        directory = target.directory or "."
        entries = [
            e
            for e in sftp.listdir_attr(directory)
            if e.filename.lower().endswith(suffixes) and not e.filename.endswith(TEMP_SUFFIX)
        ]
        if not entries:
            return None
        newest = max(entries, key=lambda e: (e.st_mtime or 0, e.filename))
        with sftp.open(posixpath.join(directory, newest.filename), "rb") as remote:
            remote.prefetch()
            content = remote.read()
        return FetchedFile(newest.filename, content, float(newest.st_mtime or 0))
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise _network_error(target, exc) from exc
    finally:
        sftp.close()
        transport.close()


# --------------------------------------------------------------------------------------
# Sessions: several operations on one connection (the file exchange's inbound side)


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int


class FileSession:
    """One connection to an SFTP or FTPS server for listing, fetching, moving and removing
    files in its directories (`upload_stream` stays the way to write one). Use as a context
    manager; every failure leaves as a `TransferError` in plain words."""

    def __init__(self, target: TransferTarget) -> None:
        _check(target, "session")  # the protocol and the pinned key
        self.target = target
        self._sftp: paramiko.SFTPClient | None = None
        self._transport: paramiko.Transport | None = None
        self._ftp: ftplib.FTP | None = None

    def __enter__(self) -> FileSession:
        try:
            if self.target.protocol == "sftp":
                self._transport, self._sftp = _sftp_connect(self.target)
            else:
                self._ftp = _ftp_connect(dataclasses.replace(self.target, directory="."))
        except TransferError:
            raise
        except (OSError, EOFError, ftplib.Error, paramiko.SSHException) as exc:
            raise _network_error(self.target, exc) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sftp is not None:
            self._sftp.close()
        if self._transport is not None:
            self._transport.close()
        if self._ftp is not None:
            _ftp_close(self._ftp)

    def _client(self) -> ftplib.FTP:
        if self._ftp is None:
            raise TransferError(f"The {_where(self.target)} is not connected.", permanent=False)
        return self._ftp

    def _do(self, what: Callable[[], T]) -> T:
        try:
            return what()
        except TransferError:
            raise
        except (OSError, EOFError, ftplib.Error, paramiko.SSHException) as exc:
            raise _network_error(self.target, exc) from exc

    def listdir(self, directory: str) -> list[RemoteFile]:
        """The plain files in `directory` (sub-directories left out)."""

        def run() -> list[RemoteFile]:
            if self._sftp is not None:
                return [
                    RemoteFile(a.filename, a.st_size or 0)
                    for a in self._sftp.listdir_attr(directory)
                    if a.st_mode is not None and stat.S_ISREG(a.st_mode)
                ]
            ftp = self._client()
            out = []
            for name, facts in ftp.mlsd(directory, facts=["type", "size"]):
                if facts.get("type") == "file":
                    out.append(RemoteFile(name, int(facts.get("size", 0))))
            return out

        return self._do(run)

    def ensure_dir(self, directory: str) -> None:
        def run() -> None:
            if self._sftp is not None:
                try:
                    self._sftp.stat(directory)
                except FileNotFoundError:
                    self._sftp.mkdir(directory)
                return
            ftp = self._client()
            with contextlib.suppress(ftplib.error_perm):
                ftp.mkd(directory)

        self._do(run)

    def fetch(self, path: str, into: IO[bytes]) -> int:
        """Copy the remote file into the local file object; returns the bytes read."""

        def run() -> int:
            if self._sftp is not None:
                with self._sftp.open(path, "rb") as remote:
                    remote.prefetch()
                    size = 0
                    while block := remote.read(_WRITE_BLOCK):
                        into.write(block)
                        size += len(block)
                    return size
            ftp = self._client()
            counted = [0]

            def take(block: bytes) -> None:
                into.write(block)
                counted[0] += len(block)

            ftp.retrbinary(f"RETR {path}", take, blocksize=_WRITE_BLOCK)
            return counted[0]

        return self._do(run)

    def put(self, path: str, data: bytes) -> None:
        """Write a small file (a rejects file, a probe) in place."""

        def run() -> None:
            if self._sftp is not None:
                with self._sftp.open(path, "wb") as remote:
                    remote.write(data)
                return
            ftp = self._client()
            ftp.storbinary(f"STOR {path}", io.BytesIO(data))

        self._do(run)

    def move(self, source: str, destination: str) -> None:
        """Rename, replacing `destination` if it exists."""
        if self._sftp is not None:
            sftp = self._sftp
            self._do(lambda: _sftp_replace(sftp, source, destination))
            return
        ftp = self._client()
        self._do(lambda: _ftp_replace(ftp, source, destination))

    def remove(self, path: str) -> None:
        def run() -> None:
            if self._sftp is not None:
                self._sftp.remove(path)
            elif self._ftp is not None:
                self._ftp.delete(path)

        self._do(run)
