"""A file exchange wired to a real SFTP server on loopback, or to a local directory.

`exchange` is parametrized over both transports: the same scenario runs over SSH (host
key pinned, password login) and over a plain directory. `root` is the directory the
financials side sees (the SFTP server's root, or the local directory).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.vendors.models import Integration
from tests.factories import CategoryFactory
from tests.vendors.servers import (
    PASSWORD,
    USERNAME,
    ServerInfo,
    run_ftp_server,
    run_sftp_server,
)


@dataclass
class Exchange:
    integration: Integration
    root: Path
    transport: str

    def outbound(self) -> list[str]:
        return sorted(p.name for p in (self.root / "outbound").iterdir() if p.is_file())

    def drop(self, name: str, text: str, *, done: bool = True) -> None:
        inbound = self.root / "inbound"
        inbound.mkdir(parents=True, exist_ok=True)
        (inbound / name).write_bytes(text.encode())
        if done:
            (inbound / f"{name}.done").write_bytes(b"")


def make_exchange(
    root: Path, *, server: ServerInfo | None, category: Any, **options: Any
) -> Integration:
    base: dict[str, Any] = {
        "outbound_dir": "outbound",
        "inbound_dir": "inbound",
        "item_types": "LIBFINE = 800000000001",
        "term": "2270",
    }
    if server is None:
        base.update(transport="local", local_path=str(root))
        credentials: dict[str, str] = {}
    else:
        base.update(transport="sftp", host=server.host, port=server.port, host_key=server.host_key)
        credentials = {"username": USERNAME, "password": PASSWORD}
    base.update(options)
    integration = Integration(
        vendor_kind="fileexchange",
        slug="fileexchange-test",
        name="Financials",
        enabled=True,
        service_url="http://127.0.0.1:8103/",
        timeout_seconds=5,
        import_after=dt.date(2026, 7, 1),
        options=base,
    )
    integration.credentials = credentials
    integration.save()
    integration.categories.set([category])
    return integration


@pytest.fixture
def libfine(db: Any) -> Any:
    return CategoryFactory(code="LIBFINE", description="Library fines")


@pytest.fixture(params=["sftp", "local", "ftps"])
def exchange(request: pytest.FixtureRequest, tmp_path: Path, libfine: Any) -> Iterator[Exchange]:
    root = tmp_path / "financials"
    root.mkdir()
    if request.param == "ftps":
        with run_ftp_server(root, tls=True) as server:
            integration = make_exchange(
                root,
                server=server,
                category=libfine,
                transport="ftps",
                tls_certificate=server.ca_pem,
            )
            yield Exchange(integration, root, "ftps")
    elif request.param == "sftp":
        with run_sftp_server(root) as server:
            yield Exchange(make_exchange(root, server=server, category=libfine), root, "sftp")
    else:
        yield Exchange(make_exchange(root, server=None, category=libfine), root, "local")


@contextlib.contextmanager
def cutting_proxy(backend: ServerInfo, *, after_bytes: int) -> Iterator[int]:
    """A TCP proxy in front of `backend` that cuts every connection once the client has
    sent `after_bytes`: a server whose line drops in the middle of an upload."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                sent += len(data)
                if limit is not None and sent > limit:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection((backend.host, backend.port))
            threading.Thread(target=pipe, args=(client, upstream, after_bytes), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client, None), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
