"""The return path: a signed list of a department's own record tokens that a caseworker decided to act on.

A caseworker picks support cases and an action (``line_notice``, ``home_visit`` …
from the policy's ``[support.actions]``) under a purpose of use the policy
allows today; the gateway looks up each case's person's records *of that
source* in the current run and signs the list of their tokens
(``keys.return_list``) with its return-path key. The department's agent
resolves the tokens to its own records locally (``agents.core.returns``).
No identity passes the gateway and no escrow step is needed, because the
department already holds those records. Every list is stored as sent and
logged in the audit log in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy import insert, select

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import (
    CaseNotFound,
    NoCases,
    NoRecords,
    NoRun,
    PurposeRefused,
    ReturnKeyInvalid,
    ReturnListNotFound,
    TooMany,
    UnknownAction,
    UnknownSource,
)
from gateway.identity import User
from gateway.link import current_run_id
from transparency.tlog_checkpoint import Signer
from keys.return_list import write_return_list
from service.settings import signing_key_at_rest

KEY_FILE = "return-signing.pem"
MAX_RECORDS = 5000


def signer(gw: Gateway) -> Signer:
    """The gateway's return-path signing key (made on first use; a 0600 PKCS#8 file like the audit key)."""
    path = gw.settings.home / "keys" / KEY_FILE
    key = signing_key_at_rest(path)
    if key is None:
        raise ReturnKeyInvalid(f"{path} は Ed25519 の秘密鍵ではありません。")
    return Signer(f"tsunagu-returns-{gw.policy.municipality_code}", key)


def verifier_key(gw: Gateway) -> str:
    """The return-path verifier key to give the departments' agents (``name+hash+key``)."""
    return signer(gw).verifier.vkey()


def create(gw: Gateway, user: User, source: str, action: str, purpose: str, case_ids: Sequence[int]) -> dict[str, Any]:
    """Sign and store the list of ``source`` record tokens of the cases' persons; logged in the same transaction."""
    vocab = gw.policy.document.support
    if action not in vocab.actions:
        raise UnknownAction(f"依頼内容「{action}」はポリシーにありません（使えるもの: {', '.join(vocab.actions)}）。")
    if gw.policy.network_of(source) is None:
        raise UnknownSource(f"データ元「{source}」はポリシーにありません。")
    decision = gw.policy.may_use_purpose(purpose, utcnow().date())
    if not decision.allowed:
        raise PurposeRefused(decision.reason)
    ids = list(dict.fromkeys(int(c) for c in case_ids))
    if not ids:
        raise NoCases("対象の支援記録を 1 件以上選んでください。")
    if len(ids) > MAX_RECORDS:
        raise TooMany(f"1 つのリストは {MAX_RECORDS} 件までです。")
    sc, a = models.support_cases, models.assignments
    list_id = "rl-" + uuid.uuid4().hex[:20]
    now = utcnow()
    with gw.engine.begin() as conn:
        run_id = current_run_id(conn)
        if run_id is None:
            raise NoRun("まだ名寄せが実行されていません。")
        cases = {r.id: r.person_id for r in conn.execute(select(sc.c.id, sc.c.person_id).where(sc.c.id.in_(ids)))}
        missing = [i for i in ids if i not in cases]
        if missing:
            raise CaseNotFound(f"支援記録 {', '.join(map(str, missing))} はありません。")
        rows = conn.execute(select(a.c.person_id, a.c.token).where(a.c.run_id == run_id, a.c.source == source,
                                                                     a.c.person_id.in_(set(cases.values())))).all()
        tokens_of: dict[str, list[str]] = {}
        for r in rows:
            tokens_of.setdefault(r.person_id, []).append(r.token)
        items = [(token, case_id) for case_id in ids for token in sorted(tokens_of.get(cases[case_id], []))]
        without = [i for i in ids if not tokens_of.get(cases[i])]
        if not items:
            raise NoRecords(f"選んだ支援記録の人物には、データ元「{source}」の記録がありません。")
        items = list(dict((t, c) for t, c in items).items())
        key = signer(gw)
        manifest = {"list_id": list_id, "municipality": gw.policy.municipality_code, "source": source, "action": action,
                    "action_label": vocab.actions[action], "purpose": purpose, "created_at": now.isoformat(timespec="seconds") + "Z",
                    "signing_key": key.name}
        data = write_return_list(manifest, [t for t, _ in items], key.private_key)
        digest = json.loads(data.partition(b"\n")[0])["manifest"]["content_sha256"]
        conn.execute(insert(models.return_lists).values(id=list_id, source=source, action=action, purpose=purpose, created_at=now,
                                                        created_by=user.username, records=len(items), content_sha256=digest,
                                                        signed=data.decode("utf-8")))
        conn.execute(insert(models.return_list_items), [{"list_id": list_id, "token": t, "case_id": c} for t, c in items])
        gw.record(user.username, user.role, "returns.send", f"records={len(items)} action={action} sha256={digest}",
                  target=f"{list_id}:{source}", connection=conn)
    return {"id": list_id, "source": source, "action": action, "purpose": purpose, "records": len(items),
            "cases_without_record": without, "content_sha256": digest, "created_at": now, "created_by": user.username}


def list_lists(gw: Gateway, limit: int = 100) -> list[dict[str, Any]]:
    """Every list sent, newest first (no tokens)."""
    t = models.return_lists
    with gw.engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.source, t.c.action, t.c.purpose, t.c.created_at, t.c.created_by, t.c.records,
                                   t.c.content_sha256).order_by(t.c.created_at.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def signed_list(gw: Gateway, user: User, list_id: str) -> bytes:
    """The signed list as sent, to be carried to the department (its handing out is logged)."""
    t = models.return_lists
    with gw.engine.begin() as conn:
        data = conn.execute(select(t.c.signed).where(t.c.id == list_id)).scalar()
        if data is None:
            raise ReturnListNotFound(f"対象者リスト {list_id} はありません。")
        gw.record(user.username, user.role, "returns.download", "ok", target=list_id, connection=conn)
    return data.encode("utf-8")


def write_file(gw: Gateway, user: User, list_id: str, folder: Path) -> Path:
    """Write the signed list to ``folder/<list_id>.jsonl`` (for carrying across networks)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{list_id}.jsonl"
    path.write_bytes(signed_list(gw, user, list_id))
    return path
