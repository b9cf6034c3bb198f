"""Request bodies bounded in size and JSON nesting depth before any parser sees them (an ASGI middleware).

A body is read up to the limit of its path (a ``Content-Length`` above it is
refused without reading a byte) and then handed to the application from
memory. A JSON body (``application/json``, ``*+json``, or none declared, as
FastAPI parses those) is scanned for its nesting depth first; for JSON Lines
(``application/x-ndjson``) the first line, which the standard ``json`` module
parses, is scanned (the records are read by orjson, whose own depth limit
raises a clean error). Python's ``json`` recurses per level, so a body of
``[[[[…`` would otherwise end in a ``RecursionError`` (a 500) deep inside a
handler. A lone surrogate escape (``"\\ud800"``) is refused too: it parses
into a string nothing downstream can encode.

Large bodies are read by at most ``large_at_once`` requests at a time, so a
handful of clients cannot make the service hold many copies of the largest
allowed body.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Awaitable, Callable

import numpy as np

MAX_DEPTH = 32
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CHUNK = 1 << 20
#: bodies up to this size are scanned on the event loop; larger ones in a worker thread
_INLINE_SCAN = 256 * 1024
_STEP = np.zeros(256, dtype=np.int8)
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: (status, code, Japanese detail, scope) -> an ASGI app answering the refusal in the service's own format
Refuse = Callable[[int, str, str, Scope], Callable[[Scope, Receive, Send], Awaitable[None]]]


def json_depth(data: bytes, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``data`` (strings skipped), without parsing it.

    With ``stop_above``, counting stops as soon as the depth passes it (the
    answer is then some depth above ``stop_above``). -1: a closing bracket
    comes before its opening one (not JSON).
    """
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    opening = brackets.count(b"[") + brackets.count(b"{")
    if stop_above is not None and opening <= stop_above and opening * 2 == len(brackets) and not brackets.startswith((b"]", b"}")):
        return opening  # an upper bound, and within the limit: nothing to count
    steps = _STEP[np.frombuffer(brackets, dtype=np.uint8)]
    depth, deepest = 0, 0
    for start in range(0, len(steps), _CHUNK):
        running = np.cumsum(steps[start:start + _CHUNK], dtype=np.int64) + depth
        if int(running.min()) < 0:
            return -1  # a closing bracket before its opening one: not JSON, and it could hide a deep part
        deepest = max(deepest, int(running.max()))
        depth = int(running[-1])
        if stop_above is not None and deepest > stop_above:
            break
    return deepest


_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


def lone_surrogate(data: bytes) -> bool:
    """True if a JSON text holds a ``\\uD800``–``\\uDFFF`` escape that is not half of a pair.

    ``json`` turns such an escape into a Python string that cannot be encoded
    (no database, log or hash takes it), so it is refused at the door.
    """
    if b"\\u" not in data:
        return False
    high_ends = -1  # where the last high surrogate escape ended, waiting for its low half
    for m in _ESCAPE.finditer(data):
        if high_ends >= 0 and m.start() != high_ends:
            return True
        code = int(m.group(1), 16) if m.group(1) else -1
        if 0xD800 <= code < 0xDC00:
            if high_ends >= 0:
                return True
            high_ends = m.end()
        elif 0xDC00 <= code < 0xE000:
            if high_ends != m.start():
                return True
            high_ends = -1
        elif high_ends >= 0:
            return True
    return high_ends >= 0


class BodyLimits:
    """ASGI middleware: refuse bodies above their path's byte limit or nested deeper than ``max_depth``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, refuse: Refuse, default_bytes: int,
                 path_bytes: dict[str, int] | None = None, max_depth: int = MAX_DEPTH, large_at_once: int = 2) -> None:
        """``path_bytes``: path prefix → byte limit (the longest matching prefix wins; others get ``default_bytes``)."""
        self.app = app
        self.refuse = refuse
        self.default_bytes = default_bytes
        self.path_bytes = sorted((path_bytes or {}).items(), key=lambda kv: -len(kv[0]))
        self.max_depth = max_depth
        self._large = asyncio.Semaphore(large_at_once)

    def limit_for(self, path: str) -> int:
        """The byte limit of ``path``."""
        for prefix, limit in self.path_bytes:
            if path.startswith(prefix):
                return limit
        return self.default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read, bound and check the body, then call the application with it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                await self.refuse(400, "bad_content_length", "Content-Length ヘッダーが正しくありません。", scope)(scope, receive, send)
                return
            if size > limit:
                await self._too_large(limit, scope, receive, send)
                return
        if limit > self.default_bytes:
            async with self._large:
                body = await self._read(receive, limit)
        else:
            body = await self._read(receive, limit)
        if body is None:
            await self._too_large(limit, scope, receive, send)
            return
        if body and _is_json(headers.get(b"content-type", b"")):
            head = body.partition(b"\n")[0] if b"ndjson" in headers.get(b"content-type", b"").lower() else body
            depth = json_depth(head, self.max_depth) if len(head) <= _INLINE_SCAN else \
                await asyncio.to_thread(json_depth, head, self.max_depth)
            if depth > self.max_depth:
                await self.refuse(400, "json_too_deep", f"JSON の入れ子が深すぎます（上限 {self.max_depth} 段）。", scope)(scope, receive, send)
                return
            if depth < 0:
                await self.refuse(400, "malformed_json", "JSON として読めません（閉じ括弧が開き括弧より先にあります）。", scope)(scope, receive, send)
                return
            if lone_surrogate(head):
                await self.refuse(400, "invalid_unicode", "JSON の文字列に、対になっていないサロゲート（\\uD800〜\\uDFFF）があります。", scope)(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        await self.refuse(413, "too_large", f"リクエストの本文が上限 {limit} バイトを超えています。", scope)(scope, receive, send)

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";")[0].strip().lower()
    return media in (b"", b"application/json", b"application/x-ndjson") or media.endswith(b"+json")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def _receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return _receive
