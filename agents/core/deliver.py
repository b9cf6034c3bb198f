"""Deliver: the outbox, HTTPS push with retries, and bundle files for 可搬媒体 / 中継サーバ.

Idempotent by (agent, sequence) and content. A submission is written to the outbox
before anything is sent; it leaves the outbox only when the gateway has
answered ``accepted`` or ``duplicate`` (or when it has been written to a
bundle), and a receipt is written first. A crash, a gateway that is down or
a timeout after the gateway stored it all leave the same bytes in the
outbox, and the next run sends those bytes again with the same sequence
number: the gateway answers ``duplicate`` rather than storing it twice.
A receipt counts only for the bytes it was written for (matched by SHA-256,
not by sequence alone): after ``state/`` is restored from a backup, an old
receipt with the same number does not make a new submission look delivered.
Federation submissions wait in the same outbox and are pushed to their own
route.

Only the agent opens connections: there is no listening socket here.

Layout under the agent home::

    outbox/<sequence>.jsonl   submission bytes waiting to be delivered
    outbox/<sequence>.json    what it is (source, batch id, record count, input fingerprint)
    sent/<sequence>.json      receipt: how and when it was delivered, the gateway's answer
    refused/<sequence>.jsonl  submissions the gateway refused (4xx), kept with refused/<sequence>.json
    stale/<sequence>.jsonl    submissions set aside unsent: made for a chain position the gateway no longer
                              expects (after a refusal or a restore); their sources are snapshotted again
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from agents.core.config import GatewaySection
from keys.documents import write_atomic
from keys.submission import write_state_request

SUBMISSIONS_PATH = "/api/v1/submissions"
STATE_PATH = "/api/v1/submissions/state"
FEDERATION_PATH = "/api/v1/federation/submissions"
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class DeliveryConfigError(Exception):
    """The gateway settings cannot be used (e.g. plain HTTP to another machine, a missing CA file)."""


@dataclass(slots=True)
class Pending:
    """One submission in the outbox."""

    sequence: int
    path: Path
    meta: dict[str, Any]

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "?"))

    @property
    def kind(self) -> str:
        """``submission`` (chained snapshot) or ``federation``."""
        return str(self.meta.get("kind", "submission"))


@dataclass(slots=True)
class Outcome:
    """What happened to one submission: ``delivered``, ``bundled``, ``refused``, ``pending`` (still in the outbox) or
    ``stale`` (set aside unsent; its source is snapshotted again)."""

    sequence: int
    source: str
    status: str
    message: str
    response: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _name(sequence: int) -> str:
    return f"{sequence:010d}"


class Outbox:
    """Submissions not yet delivered, their receipts once delivered, and the refused ones."""

    def __init__(self, home: Path) -> None:
        self.dir = home / "outbox"
        self.sent_dir = home / "sent"
        self.refused_dir = home / "refused"
        self.stale_dir = home / "stale"

    def put(self, sequence: int, data: bytes, meta: dict[str, Any]) -> Pending:
        """Store a submission durably before any attempt to deliver it."""
        path = self.dir / f"{_name(sequence)}.jsonl"
        meta = {**meta, "sequence": sequence, "sha256": hashlib.sha256(data).hexdigest()}
        write_atomic(self.dir / f"{_name(sequence)}.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        write_atomic(path, data)
        return Pending(sequence, path, meta)

    def put_lines(self, sequence: int, head: bytes, lines: list[bytes], meta: dict[str, Any]) -> Pending:
        """:meth:`put` for a submission given as its signed first line and its record lines, written without joining them."""
        path = self.dir / f"{_name(sequence)}.jsonl"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{path.name}.", suffix=".tmp")
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as handle:
                for block in (head, b"\n"):
                    handle.write(block)
                    digest.update(block)
                for line in lines:
                    handle.write(line)
                    handle.write(b"\n")
                    digest.update(line)
                    digest.update(b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            meta = {**meta, "sequence": sequence, "sha256": digest.hexdigest()}
            write_atomic(self.dir / f"{_name(sequence)}.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Pending(sequence, path, meta)

    def pending(self) -> list[Pending]:
        """Submissions waiting, oldest first; any whose receipt is for these very bytes (a crash after delivery) are cleared."""
        out = []
        for path in sorted(self.dir.glob("*.jsonl")) if self.dir.is_dir() else []:
            if not path.stem.isdigit():
                continue
            sequence = int(path.stem)
            meta_path = path.with_suffix(".json")
            meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {"sequence": sequence}
            digest = meta.get("sha256") or hashlib.sha256(path.read_bytes()).hexdigest()
            meta["sha256"] = digest
            if self._receipted(path.stem, digest):
                self._drop(path)
                continue
            out.append(Pending(sequence, path, meta))
        return out

    def _receipted(self, name: str, digest: str) -> bool:
        receipt = self.sent_dir / f"{name}.json"
        try:
            return json.loads(receipt.read_text(encoding="utf-8")).get("sha256") == digest
        except (OSError, ValueError, AttributeError):
            return False

    def set_aside(self, item: Pending, reason: str = "") -> None:
        """Move an unsent submission to ``stale/``: the gateway no longer expects its chain position."""
        name = _name(item.sequence)
        write_atomic(self.stale_dir / f"{name}.jsonl", item.path.read_bytes())
        write_atomic(self.stale_dir / f"{name}.json",
                     json.dumps({**item.meta, "set_aside_at": _now(), "reason": reason}, ensure_ascii=False, indent=1).encode("utf-8"))
        self._drop(item.path)

    def size(self) -> int:
        """How many submissions are waiting."""
        return len(self.pending())

    def mark_delivered(self, item: Pending, via: str, response: dict[str, Any]) -> None:
        """Write the receipt, then remove the submission from the outbox."""
        receipt = {**item.meta, "via": via, "delivered_at": _now(), "response": response}
        write_atomic(self.sent_dir / f"{_name(item.sequence)}.json", json.dumps(receipt, ensure_ascii=False, indent=1).encode("utf-8"))
        self._drop(item.path)

    def mark_refused(self, item: Pending, status: int, error: dict[str, Any]) -> None:
        """Move a refused submission to ``refused/`` with the gateway's reason."""
        name = _name(item.sequence)
        write_atomic(self.refused_dir / f"{name}.jsonl", item.path.read_bytes())
        note = {**item.meta, "refused_at": _now(), "http_status": status, "error": error}
        write_atomic(self.refused_dir / f"{name}.json", json.dumps(note, ensure_ascii=False, indent=1).encode("utf-8"))
        self._drop(item.path)

    def _drop(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls(gateway: GatewaySection) -> ssl.SSLContext | bool:
    parts = urlsplit(gateway.url)
    if parts.scheme == "http":
        if not _is_loopback(parts.hostname or ""):
            raise DeliveryConfigError(f"ゲートウェイ {gateway.url} へは https:// で接続してください（http:// はこの機械の中 127.0.0.1 だけです）。")
        return False
    if gateway.ca_file is None:
        return True
    if not gateway.ca_file.is_file():
        raise DeliveryConfigError(f"ゲートウェイの証明書（ca_file）{gateway.ca_file} がありません。")
    try:
        return ssl.create_default_context(cafile=str(gateway.ca_file))
    except ssl.SSLError as exc:
        raise DeliveryConfigError(f"ゲートウェイの証明書（ca_file）{gateway.ca_file} を読めません（{exc.reason}）。PEM 形式か確認してください。") from None


@dataclass(slots=True)
class _Answer:
    status: str  # delivered | refused | unreachable
    message: str
    response: dict[str, Any] = field(default_factory=dict)
    http_status: int = 0


class Pusher:
    """Posts submission bytes to the gateway, retrying with exponential backoff while it is unreachable or busy."""

    def __init__(
        self,
        gateway: GatewaySection,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._gateway = gateway
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=gateway.url, verify=_tls(gateway), timeout=gateway.timeout_seconds, transport=transport,
            headers={"Content-Type": "application/x-ndjson", "User-Agent": "tsunagu-agent/1"},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> "Pusher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def push(self, data: bytes, path: str = SUBMISSIONS_PATH) -> _Answer:
        """Send one submission; never raises for network trouble (the answer says ``unreachable``)."""
        gateway = self._gateway
        last = ""
        for attempt in range(gateway.attempts):
            if attempt:
                self._sleep(min(gateway.max_backoff_seconds, gateway.backoff_seconds * 2 ** (attempt - 1)))
            try:
                response = self._client.post(path, content=data)
            except httpx.TransportError as exc:
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    return _Answer("unreachable", f"ゲートウェイ {gateway.url} の証明書を検証できません。agent.toml の ca_file が"
                                   "ゲートウェイの証明書（またはその発行元）か確認してください。")
                last = f"ゲートウェイ {gateway.url} に接続できません（{type(exc).__name__}）"
                continue
            body = _json(response)
            if response.status_code in (200, 201) and body.get("status") in ("accepted", "duplicate"):
                return _Answer("delivered", "受け付けられました" if body["status"] == "accepted" else "受付済みでした（重複送信）",
                               body, response.status_code)
            if response.status_code in _RETRY_STATUS:
                last = f"ゲートウェイが応答 {response.status_code} を返しました（{reason(body, response)}）"
                continue
            detail = reason(body, response)
            if response.status_code == 409 and body.get("error") == "replay":
                message = f"この連番はゲートウェイで使用済みです（409: {detail}）。エージェントの state/ を復元していないか確認してください。"
            elif body.get("error") == "unknown_version":
                # Made before the agent was upgraded (an old wire format): the same bytes would be refused every time.
                message = (f"この提出は更新前の版の tsunagu が作った形式のため、ゲートウェイが受け付けませんでした"
                           f"（{response.status_code} unknown_version: {detail}）。送り直さずに refused/ に移しました。"
                           "このデータ元は次回の実行で新しい形式で作り直して送るので、データは失われません。")
            else:
                message = f"ゲートウェイが受け付けませんでした（{response.status_code}: {detail}）"
            return _Answer("refused", message, body, response.status_code)
        return _Answer("unreachable", f"{last}。{gateway.attempts} 回試しました。提出は送信待ちに残し、次回送り直します。")

    def state(self, agent_id: str, signing_key: Any) -> dict[str, Any] | None:
        """The gateway's record of what it accepted from this agent (signed question); None if it cannot be reached.

        Raises :class:`GatewayRefused` when the gateway answers but refuses (unknown or revoked agent, clock far off).
        """
        data = write_state_request(agent_id, signing_key, _now())
        try:
            response = self._client.post(STATE_PATH, content=data, headers={"Content-Type": "application/json"})
        except httpx.TransportError:
            return None
        body = _json(response)
        if response.status_code == 200 and "sequence" in body:
            return body
        if response.status_code in _RETRY_STATUS or response.status_code == 404:
            return None  # 404: a gateway older than the state route; the run goes on as before
        raise GatewayRefused(f"ゲートウェイがこのエージェントの状態の問い合わせを受け付けませんでした（{response.status_code}: "
                             f"{reason(body, response)}）")


class GatewayRefused(Exception):
    """The gateway answered the agent's state question with a refusal; the message has the gateway's reason."""


def reason(body: dict[str, Any], response: httpx.Response) -> str:
    """The gateway's reason for an error answer, with its request id when it gave one (for the gateway's log)."""
    text = str(body.get("detail") or body.get("error") or response.reason_phrase or "理由の記載なし")
    request_id = body.get("request_id") or response.headers.get("x-request-id")
    return f"{text}（問い合わせ番号 {request_id}）" if request_id else text


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def push_pending(outbox: Outbox, pusher: Pusher) -> list[Outcome]:
    """Send every waiting submission, oldest first; stop at the first one the gateway cannot be reached for.

    After a refused snapshot the later ones waiting name a submission the gateway does not have (the hash chain),
    so they are set aside (``stale``) for their sources to be snapshotted again.
    """
    outcomes = []
    pending = outbox.pending()
    broken = False
    for position, item in enumerate(pending):
        if broken and item.kind == "submission":
            outbox.set_aside(item, "an earlier submission was refused")
            outcomes.append(Outcome(item.sequence, item.source, "stale", "前の提出が拒否されたため送らず、次回作り直します"))
            continue
        answer = pusher.push(item.path.read_bytes(), FEDERATION_PATH if item.kind == "federation" else SUBMISSIONS_PATH)
        if answer.status == "delivered":
            outbox.mark_delivered(item, "push", answer.response)
        elif answer.status == "refused":
            outbox.mark_refused(item, answer.http_status, answer.response)
            broken = broken or item.kind == "submission"
        else:
            # Order matters (a later snapshot replaces an earlier one): keep the rest waiting too.
            outcomes.extend(Outcome(p.sequence, p.source, "pending", answer.message) for p in pending[position:])
            break
        outcomes.append(Outcome(item.sequence, item.source, answer.status, answer.message, answer.response))
    return outcomes


def write_bundles(outbox: Outbox, directory: Path, agent_id: str) -> list[Outcome]:
    """Write every waiting submission to ``directory`` as one plain ``.jsonl`` file each (the same bytes).

    A bundle holds every record's sealed identity, so it is readable by its
    owner only (0600; a folder made here is 0700): whoever carries it across
    must not leave a copy others can read.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    outcomes = []
    for item in outbox.pending():
        label = "federation" if item.kind == "federation" else item.source
        target = directory / f"{agent_id}-{_name(item.sequence)}-{label}.jsonl"
        write_atomic(target, item.path.read_bytes(), mode=0o600)
        outbox.mark_delivered(item, "bundle", {"bundle": str(target)})
        outcomes.append(Outcome(item.sequence, item.source, "bundled", f"持ち出し用ファイル {target} に書きました"))
    return outcomes
