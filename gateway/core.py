"""One gateway deployment opened in this process: settings, database, policy and audit log together."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine

from gateway import models
from gateway.config import Settings, load_settings
from gateway.db import migrate, utcnow
from gateway.errors import AuditKeyInvalid, PolicyInvalid
from keys.audit import AuditEntry
from service.audit_store import AuditStore
from transparency.tlog_checkpoint import Signer
from service.frontdoor.refusals import RefusalCounter
from service.frontdoor.throttle import LoginThrottle, ThrottleRules
from transparency.tlog_witness import Witness
from policy import Policy, PolicyError, default_policy, load_policy
from service.db import make_engine
from service.settings import signing_key_at_rest

log = logging.getLogger("tsunagu.gateway")

_AUDIT_KEY = "audit-signing.pem"


class Gateway:
    """The gateway at ``settings.home``: use :meth:`open`."""

    def __init__(self, settings: Settings, engine: Engine, policy: Policy, signer: Signer) -> None:
        """Assemble an opened gateway (see :meth:`open`)."""
        self.settings = settings
        self.engine = engine
        self.policy = policy
        self.audit = AuditStore(engine, signer, f"tsunagu.gateway/{policy.municipality_code}")
        self.signer = signer
        #: the gateway's witness (it cosigns the escrow's checkpoints) and the witnesses it submits its own to
        self.witness_folder = settings.home / "witness"
        #: called with each accepted submission (gateway.ingest.IngestResult), e.g. to schedule a linkage run
        self.listeners: list[Callable[[Any], None]] = []
        #: failed sign-ins per account and client address (shared with the escrow: service.frontdoor)
        self.throttle = LoginThrottle(engine, ThrottleRules(base_seconds=settings.login_backoff_seconds))
        #: refusals counted in memory; a few per kind and period get an ``ingest_events`` row, all get one audit summary
        self.refusals = RefusalCounter(self._summarise_refusals)

    @classmethod
    def open(cls, home: Path | None = None, **overrides: Any) -> "Gateway":
        """Open (creating folders, the audit signing key and the schema if needed) the gateway at ``home``."""
        settings = load_settings(home, **overrides)
        for folder in (settings.home, settings.log_dir, settings.home / "keys"):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            policy = load_policy(settings.policy_file) if settings.policy_file else default_policy()
        except PolicyError as exc:
            raise PolicyInvalid(str(exc)) from None
        configure_logging(settings)
        engine = make_engine(settings.database_url, manual_checkpoint=True)  # checkpoints: the scheduler's job
        migrate(engine)
        gw = cls(settings, engine, policy, _audit_signer(settings.home / "keys" / _AUDIT_KEY))
        # The witness key is made with the home, like the audit key (0600 in <home>/witness/).
        Witness.ensure(gw.witness_folder, f"{gw.audit.origin}/witness")
        return gw

    def record(self, actor: str, role: str, action: str, outcome: str, target: str = "",
               connection: Connection | None = None) -> None:
        """Append an entry to the tamper-evident audit log (pseudonyms only) before reporting success.

        Pass ``connection`` (inside the transaction that makes the change) so the
        change and its entry commit together or not at all.
        """
        self.audit.append(AuditEntry.now(actor=actor, role=role, action=action, outcome=outcome, target=target),
                          connection=connection)

    def event(self, channel: str, status: int, code: str, detail: str, **where: Any) -> None:
        """Log a refused request or submission in ``ingest_events`` and the log file (no identity data).

        Refusals are counted first: past a few of one kind in a period only the
        count is kept (summarised into one audit entry per period), so that
        nobody can grow the database by sending bad requests.
        """
        if not self.refusals.admit(f"{channel}:{code}"):
            return
        with self.engine.begin() as conn:
            conn.execute(insert(models.ingest_events).values(at=utcnow(), channel=channel, status=status, code=code,
                                                             detail=detail, **where))
        log.warning("%s %s %s: %s %s", channel, status, code, detail, {k: v for k, v in where.items() if v is not None})

    def _summarise_refusals(self, outcome: str, total: int) -> None:
        self.record("(unauthenticated)", "-", "refusals.summary", outcome)
        log.warning("refusals summarised: %s", outcome)

    def close(self) -> None:
        """Write the pending refusal counts, then release the database connections."""
        self.refusals.flush()
        self.engine.dispose()


def _audit_signer(path: Path) -> Signer:
    # The gateway signs its own audit checkpoints unattended, so the key rests
    # like a TLS server key: a 0600 PKCS#8 file in the gateway's home.
    key = signing_key_at_rest(path)
    if key is None:
        raise AuditKeyInvalid(f"{path} は Ed25519 の秘密鍵ではありません。")
    return Signer("tsunagu-gateway", key)


class _GatewayLog(logging.handlers.RotatingFileHandler):
    """The log file of the gateway opened last in this process."""


def configure_logging(settings: Settings) -> None:
    """Send the ``tsunagu`` loggers to ``<home>/logs/gateway.log`` (rotated, 10 × 10 MiB)."""
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("tsunagu")
    path = str(settings.log_dir / "gateway.log")
    for old in [h for h in root.handlers if isinstance(h, _GatewayLog)]:
        if old.baseFilename == path:
            return
        root.removeHandler(old)
        old.close()
    handler = _GatewayLog(path, maxBytes=10 * 1024 * 1024, backupCount=10, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
