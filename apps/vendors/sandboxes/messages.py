"""A request and a response as the sandbox code sees them: the server parses the one and
writes the other, the control API and the vendor protocols only deal in these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from apps.vendors.sandboxes.faults import FaultConfig
from apps.vendors.sandboxes.values import json_default


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    #: The fault the server applies to this request (set before the protocol sees it).
    faults: FaultConfig | None = None

    @property
    def host(self) -> str | None:
        return self.headers.get("host")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: object, status: int = 200) -> Response:
        body = json.dumps(data, default=json_default, separators=(",", ":")).encode()
        return cls(status, body, "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode())
