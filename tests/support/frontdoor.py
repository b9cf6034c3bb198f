"""Helpers of the front-door tests of both services."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def declared_too_large(base_url: str, path: str, length: int) -> bytes:
    """Send only the headers of a POST that declares ``length`` body bytes; the status line the server answers with.

    A raw socket, because an HTTP client would send the body it declared; the
    server must refuse on the header alone, before reading any body.
    """
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=300) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode("ascii"))
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]
