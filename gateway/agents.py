"""The agents the gateway accepts submissions from: their signing keys, network and sources.

A source belongs to one registered agent (``source_owners``): registering a
second agent for it is refused, and only an administrator's hand-over
(:func:`handover_source`, logged in the audit log) gives it to another one,
so two agents never overwrite each other's snapshots.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, func, insert, select, update

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import (
    AgentKeyDiffers,
    AgentMismatch,
    AgentRevoked,
    AlreadyOwner,
    NoReason,
    NoSources,
    SourceNotOnNetwork,
    SourceOwned,
    UnknownAgent,
)
from keys.enrolment import AgentPublic

log = logging.getLogger("tsunagu.gateway.agents")


@dataclass(frozen=True, slots=True)
class RegisteredAgent:
    """An agent as the gateway knows it."""

    agent_id: str
    signing_key: Ed25519PublicKey
    signing_key_id: str
    network: str
    sources: tuple[str, ...]
    status: str


def register_agent(gw: Gateway, agent: AgentPublic, network: str, sources: list[str], actor: str = "cli") -> RegisteredAgent:
    """Register ``agent`` to submit ``sources`` from ``network``; the policy must place each source on that network."""
    if not sources:
        raise NoSources("エージェントが提出するデータ元を 1 つ以上指定してください（--source）。")
    for source in sources:
        on = gw.policy.network_of(source)
        if on != network:
            where = f"{on} にあります" if on else "ポリシーにありません"
            raise SourceNotOnNetwork(f"データ元「{source}」は{where}。ネットワーク {network} のエージェントには登録できません。")
    with gw.engine.begin() as conn:
        o = models.source_owners
        taken = conn.execute(select(o.c.source, o.c.agent_id).where(o.c.source.in_(sorted(set(sources))),
                                                                   o.c.agent_id != agent.agent_id)).all()
        if taken:
            names = "、".join(f"「{t.source}」（エージェント {t.agent_id}）" for t in taken)
            raise SourceOwned(f"データ元 {names} はすでに別のエージェントの担当です。1 つのデータ元を 2 つのエージェントが提出すると"
                              "互いの記録を上書きするため、登録しません。担当を替えるときは、このエージェントを担当なしで登録せず、"
                              f"tsunagu gateway agent handover --source <データ元> --to {agent.agent_id} で引き継いでください。")
        known = conn.execute(select(models.agents).where(models.agents.c.agent_id == agent.agent_id)).first()
        if known is not None and known.status == "revoked":
            raise AgentRevoked(f"エージェント {agent.agent_id} は失効しています。新しい ID で鍵を作り直してください。")
        if known is not None and known.signing_key_id != agent.signing_key_id:
            raise AgentKeyDiffers(f"エージェント {agent.agent_id} は別の鍵で登録済みです。鍵を替えるなら先に失効させてください。")
        if known is None:
            conn.execute(insert(models.agents).values(
                agent_id=agent.agent_id, signing_key=agent.signing_key.public_bytes_raw(), signing_key_id=agent.signing_key_id,
                network=network, status="enrolled", registered_at=utcnow()))
        else:
            conn.execute(update(models.agents).where(models.agents.c.agent_id == agent.agent_id).values(network=network))
            conn.execute(delete(models.agent_sources).where(models.agent_sources.c.agent_id == agent.agent_id))
        conn.execute(insert(models.agent_sources), [{"agent_id": agent.agent_id, "source": s} for s in sorted(set(sources))])
        conn.execute(delete(o).where(o.c.agent_id == agent.agent_id, o.c.source.not_in(sorted(set(sources)))))
        owned = set(conn.execute(select(o.c.source).where(o.c.agent_id == agent.agent_id)).scalars())
        new = [{"source": s, "agent_id": agent.agent_id, "since": utcnow()} for s in sorted(set(sources)) if s not in owned]
        if new:
            conn.execute(insert(o), new)
        gw.record(actor, "admin", "agent.register", "ok", target=f"{agent.agent_id}:{network}:{','.join(sorted(set(sources)))}",
                  connection=conn)
    return get_agent(gw, agent.agent_id)


def source_owner(gw: Gateway, source: str) -> str | None:
    """The agent that owns ``source`` (None if no agent was ever registered for it)."""
    with gw.engine.connect() as conn:
        return conn.execute(select(models.source_owners.c.agent_id).where(models.source_owners.c.source == source)).scalar()


def handover_source(gw: Gateway, source: str, to_agent: str, reason: str, actor: str = "cli",
                    public: AgentPublic | None = None) -> dict[str, str]:
    """Give ``source`` to the agent ``to_agent``: from now on only its snapshots are accepted (logged).

    ``public``: the new agent's public key, to register it in the same step when the gateway does not know it yet
    (a new agent taking over the only source of its network could not be registered otherwise). The source's
    current records stay until the new owner's first snapshot replaces them.
    """
    if not reason.strip():
        raise NoReason("引き継ぎの理由を指定してください（--reason）。")
    if public is not None:
        if public.agent_id != to_agent:
            raise AgentMismatch(f"公開鍵ファイルはエージェント {public.agent_id} のもので、{to_agent} ではありません。")
        with gw.engine.begin() as conn:
            known = conn.execute(select(models.agents).where(models.agents.c.agent_id == to_agent)).first()
            if known is None:
                conn.execute(insert(models.agents).values(
                    agent_id=to_agent, signing_key=public.signing_key.public_bytes_raw(), signing_key_id=public.signing_key_id,
                    network=gw.policy.network_of(source) or "", status="enrolled", registered_at=utcnow()))
                gw.record(actor, "admin", "agent.register", "ok", target=f"{to_agent}:{gw.policy.network_of(source)}:",
                          connection=conn)
            elif known.signing_key_id != public.signing_key_id:
                raise AgentKeyDiffers(f"エージェント {to_agent} は別の鍵で登録済みです。")
    agent = get_agent(gw, to_agent)
    if agent.status != "enrolled":
        raise AgentRevoked(f"エージェント {to_agent} は失効しています。失効したエージェントには引き継げません。")
    on = gw.policy.network_of(source)
    if on != agent.network:
        where = f"{on} にあります" if on else "ポリシーにありません"
        raise SourceNotOnNetwork(f"データ元「{source}」は{where}。ネットワーク {agent.network} のエージェント {to_agent} には引き継げません。")
    o, a = models.source_owners, models.agent_sources
    with gw.engine.begin() as conn:
        previous = conn.execute(select(o.c.agent_id).where(o.c.source == source)).scalar()
        if previous == to_agent:
            raise AlreadyOwner(f"データ元「{source}」はすでにエージェント {to_agent} の担当です。")
        if previous is None:
            conn.execute(insert(o).values(source=source, agent_id=to_agent, since=utcnow()))
        else:
            conn.execute(update(o).where(o.c.source == source).values(agent_id=to_agent, since=utcnow()))
            conn.execute(delete(a).where(a.c.agent_id == previous, a.c.source == source))
        if conn.execute(select(a.c.source).where(a.c.agent_id == to_agent, a.c.source == source)).first() is None:
            conn.execute(insert(a).values(agent_id=to_agent, source=source))
        gw.record(actor, "admin", "source.handover", "ok", target=f"{source}:{previous or '-'}->{to_agent}", connection=conn)
    log.info("source %s handed over from %s to %s by %s: %s", source, previous or "-", to_agent, actor, reason)
    return {"source": source, "from": previous or "", "to": to_agent}


def revoke_agent(gw: Gateway, agent_id: str, reason: str, actor: str = "cli") -> None:
    """Revoke ``agent_id``: every later submission of it is refused."""
    with gw.engine.begin() as conn:
        done = conn.execute(update(models.agents).where(models.agents.c.agent_id == agent_id, models.agents.c.status == "enrolled")
                            .values(status="revoked", revoked_at=utcnow(), revoked_reason=reason)).rowcount
    if not done:
        get_agent(gw, agent_id)
        raise AgentRevoked(f"エージェント {agent_id} はすでに失効しています。")
    gw.record(actor, "admin", "agent.revoke", "ok", target=agent_id)


def get_agent(gw: Gateway, agent_id: str) -> RegisteredAgent:
    """The registered agent ``agent_id``; 401 if the gateway does not know it."""
    with gw.engine.connect() as conn:
        row = conn.execute(select(models.agents).where(models.agents.c.agent_id == agent_id)).first()
        sources = conn.execute(select(models.agent_sources.c.source).where(models.agent_sources.c.agent_id == agent_id)).scalars().all()
    if row is None:
        raise UnknownAgent(f"エージェント {agent_id} は登録されていません。管理者に登録を依頼してください。")
    return RegisteredAgent(row.agent_id, Ed25519PublicKey.from_public_bytes(row.signing_key), row.signing_key_id,
                           row.network, tuple(sorted(sources)), row.status)


def list_agents(gw: Gateway) -> list[dict]:
    """Every agent with its network, sources and status."""
    with gw.engine.connect() as conn:
        rows = conn.execute(select(models.agents).order_by(models.agents.c.agent_id)).all()
        pairs = conn.execute(select(models.agent_sources)).all()
    sources: dict[str, list[str]] = {}
    for p in pairs:
        sources.setdefault(p.agent_id, []).append(p.source)
    return [{"agent_id": r.agent_id, "signing_key_id": r.signing_key_id, "network": r.network, "status": r.status,
             "sources": sorted(sources.get(r.agent_id, [])), "registered_at": r.registered_at, "revoked_at": r.revoked_at}
            for r in rows]


# ---- what agents sent: the listings of the API and the administrator's dashboard --------------------------


def recent_submissions(gw: Gateway, limit: int) -> list[dict]:
    """The latest ``limit`` submissions, newest first (metadata only: who, which source, when, how many records)."""
    s = models.submissions
    with gw.engine.connect() as conn:
        rows = conn.execute(select(s.c.id, s.c.agent_id, s.c.sequence, s.c.network, s.c.source, s.c.schema_version,
                                   s.c.linkage_key_id, s.c.received_at, s.c.channel, s.c.record_count, s.c.accepted)
                            .order_by(s.c.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def recent_refusals(gw: Gateway, limit: int) -> list[dict]:
    """The latest ``limit`` refusals at the gateway's doors (``ingest_events``), newest first."""
    e = models.ingest_events
    with gw.engine.connect() as conn:
        rows = conn.execute(select(e).order_by(e.c.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def last_submissions(gw: Gateway) -> dict[str, object]:
    """When each agent last submitted: agent id → the newest ``received_at``."""
    s = models.submissions
    with gw.engine.connect() as conn:
        return dict(conn.execute(select(s.c.agent_id, func.max(s.c.received_at)).group_by(s.c.agent_id)).all())
