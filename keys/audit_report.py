"""Auditors' reports over the two audit logs: every re-identification request joined across gateway and escrow, and anomalies.

Pure code over the JSON-lines exports (``keys.audit.export_lines``) of the
gateway and the escrow; verify each export first (``keys.audit.verify_export``),
then read it here. A request is keyed by its id: the gateway logs
``reidentify.request`` (target = request id) before it hands out a filing;
the escrow logs the filing, each approval or rejection, and the release under
the same target. Nothing here holds an identity: the logs hold pseudonyms only.

The gateway's accepted entry commits to what may be opened (``keys.binding``):
the escrow's filing, approvals and release must agree with it. An escrow that
acted on a request the gateway refused, or whose filing or release differs
from the gateway's entry (requester, purpose, legal basis, case reference,
number of records, the hash over the records or the justification), is
reported as an anomaly: an honest escrow refuses such filings, so each one
means an altered escrow, an older version or a rewritten log.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any, Iterable

from keys import binding
from keys.audit import AuditEntry
from keys.errors import KeysError

JST = timezone(timedelta(hours=9))
REQUEST = "reidentify.request"
APPROVE = "reidentify.approve"
REJECT = "reidentify.reject"
RELEASE = "reidentify.release"


class ReportInputError(KeysError):
    """An export cannot be read as a tsunagu audit export."""


@dataclass(frozen=True)
class AnomalyRules:
    """What counts as unusual (defaults: office hours 8:30–18:15 JST on weekdays)."""

    office_start: time = time(8, 30)
    office_end: time = time(18, 15)
    #: more requests than this by one user within ``window_days`` is flagged
    max_requests: int = 5
    window_days: int = 7
    #: the same requester and approver pair this many times or more is flagged
    pair_repeats: int = 3


@dataclass
class RequestReport:
    """One re-identification request as both logs tell it."""

    request_id: str
    requester: str = ""
    requested_at: str = ""
    purpose: str = ""
    legal_basis: str = ""
    case_ref: str = ""
    gateway_outcome: str = ""
    escrow_outcome: str = ""
    approvals: list[dict[str, str]] = field(default_factory=list)
    rejections: list[dict[str, str]] = field(default_factory=list)
    released_at: str = ""
    refusals: list[dict[str, str]] = field(default_factory=list)
    outcome: str = ""
    #: the escrow's own entry of the filing (actor, purpose, legal basis, case reference, outcome), to check against the gateway's
    escrow_filing: dict[str, str] = field(default_factory=dict)
    release_outcome: str = ""

    def to_json(self) -> dict[str, Any]:
        """The report row as JSON."""
        return asdict(self)


@dataclass(frozen=True)
class Anomaly:
    """Something an auditor should look at, with the requests it concerns and why (Japanese)."""

    kind: str
    actor: str
    request_ids: tuple[str, ...]
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The anomaly as JSON."""
        return {**asdict(self), "request_ids": list(self.request_ids)}


OUTCOMES = {
    "released": "開示済み",
    "approved": "承認済み（未受取）",
    "rejected": "却下",
    "pending": "承認待ち",
    "refused_gateway": "ゲートウェイで拒否",
    "refused_escrow": "エスクローで拒否",
    "not_filed": "エスクローに未提出",
    "escrow_unknown": "エスクローでの状態は不明（エスクローの監査ログ未読込）",
    "not_in_gateway_log": "ゲートウェイの記録なし",
}


def read_entries(lines: Iterable[str]) -> list[AuditEntry]:
    """The entries of an export, in log order (verify the export with ``keys.audit.verify_export`` first)."""
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise ReportInputError(f"{number} 行目が JSON ではありません（tsunagu の監査ログの書き出しではありません）。") from None
        if isinstance(item, dict) and item.get("type") == "entry":
            try:
                entries.append(AuditEntry.from_json(item.get("entry")))
            except KeysError as exc:
                raise ReportInputError(f"{number} 行目: {exc}") from None
    return entries


def requests_report(gateway: Iterable[AuditEntry], escrow: Iterable[AuditEntry] | None) -> list[RequestReport]:
    """Every re-identification request in either log, oldest first: who, when, why, approvals and outcome.

    ``escrow=None`` (the escrow's log not at hand) gives a request the gateway accepted the outcome
    ``escrow_unknown``, never ``not_filed``: without that log nobody can tell whether it reached the escrow.
    """
    escrow_known = escrow is not None
    escrow = escrow if escrow is not None else ()
    reports: dict[str, RequestReport] = {}
    for e in gateway:
        if e.action != REQUEST or not e.target:
            continue
        r = reports.setdefault(e.target, RequestReport(e.target))
        r.requester, r.requested_at, r.purpose, r.legal_basis, r.case_ref = e.actor, e.time, e.purpose, e.legal_basis, e.case_ref
        r.gateway_outcome = e.outcome
    for e in escrow:
        if e.action not in (REQUEST, APPROVE, REJECT, RELEASE) or not e.target or e.target.startswith("（"):
            continue
        r = reports.setdefault(e.target, RequestReport(e.target))
        refused = e.outcome.startswith("refused")
        if refused:
            r.refusals.append({"time": e.time, "actor": e.actor, "action": e.action, "outcome": e.outcome})
        elif e.action == REQUEST:
            r.escrow_outcome = e.outcome
            r.escrow_filing = {"requester": e.actor, "purpose": e.purpose, "legal_basis": e.legal_basis,
                               "case_ref": e.case_ref, "outcome": e.outcome}
            if not r.requested_at:  # filed at the escrow, never logged by the gateway
                r.requester, r.requested_at, r.purpose, r.legal_basis, r.case_ref = e.actor, e.time, e.purpose, e.legal_basis, e.case_ref
        elif e.action == APPROVE:
            r.approvals.append({"approver": e.actor, "time": e.time})
        elif e.action == REJECT:
            r.rejections.append({"approver": e.actor, "time": e.time})
        elif e.action == RELEASE:
            r.released_at = e.time
            r.release_outcome = e.outcome
    for r in reports.values():
        r.outcome = _outcome(r)
        if not escrow_known and r.outcome == "not_filed":
            r.outcome = "escrow_unknown"
    return sorted(reports.values(), key=lambda r: (r.requested_at, r.request_id))


def _outcome(r: RequestReport) -> str:
    if not r.gateway_outcome:
        return "not_in_gateway_log"
    if r.gateway_outcome.startswith("refused") and not (r.escrow_outcome or r.released_at):
        return "refused_gateway"  # an escrow that acted anyway shows what it did, and binding_problems flags it
    if r.released_at:
        return "released"
    if r.rejections:
        return "rejected"
    if not r.escrow_outcome:
        return "refused_escrow" if any(x["action"] == REQUEST for x in r.refusals) else "not_filed"
    return _approval_state(r)


def _approval_state(r: RequestReport) -> str:
    # "filed: N records, K approvals required, …" is how the escrow logs a filing.
    try:
        needed = int(r.escrow_outcome.split(",")[1].split()[0])
    except (IndexError, ValueError):
        return "pending"
    return "approved" if len(r.approvals) >= needed else "pending"


def anomalies(reports: list[RequestReport], rules: AnomalyRules = AnomalyRules()) -> list[Anomaly]:
    """Requests without a case reference, users with many requests, requests outside office hours, repeated approval pairs."""
    found: list[Anomaly] = []
    for r in reports:
        if not r.case_ref.strip() or r.case_ref.startswith("（"):
            state = "ゲートウェイで拒否されています" if r.outcome == "refused_gateway" else "拒否されずに記録されています（改ざん・旧版の疑い）"
            found.append(Anomaly("no_case_ref", r.requester, (r.request_id,), f"案件番号のない再識別申請です（{state}）。"))
        for kind, reason in binding_problems(r):
            found.append(Anomaly(kind, r.requester, (r.request_id,), reason))
        if r.outcome == "not_in_gateway_log":
            found.append(Anomaly("not_in_gateway_log", r.requester, (r.request_id,),
                                 "エスクローにあるのにゲートウェイの監査ログにない申請です（書き出しの範囲か、改ざんを確認してください）。"))
        when = _jst(r.requested_at)
        if when is not None and not _office_hours(when, rules):
            found.append(Anomaly("off_hours", r.requester, (r.request_id,),
                                 f"勤務時間外（{when:%Y-%m-%d %a %H:%M} JST、勤務時間は平日 {rules.office_start:%H:%M}–{rules.office_end:%H:%M}）の申請です。"))
    found.extend(_many_requests(reports, rules))
    pairs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in reports:
        for a in r.approvals:
            pairs[(r.requester, a["approver"])].append(r.request_id)
    for (requester, approver), ids in sorted(pairs.items()):
        if len(ids) >= rules.pair_repeats:
            found.append(Anomaly("repeated_pair", requester, tuple(ids),
                                 f"申請者 {requester} の申請を同じ承認者 {approver} が {len(ids)} 回承認しています（基準 {rules.pair_repeats} 回）。"))
    return found


_FILED = re.compile(r"^filed: (?P<records>[0-9]+) records, .*records_sha256=(?P<records_sha256>[0-9a-f]{64}),"
                    r" justification_sha256=(?P<justification_sha256>[0-9a-f]{64})$")
_RELEASED = re.compile(r"^released: (?P<records>[0-9]+) records(?:, records_sha256=(?P<records_sha256>[0-9a-f]{64}))?$")


def binding_problems(r: RequestReport) -> list[tuple[str, str]]:
    """Where the escrow acted beyond what the gateway's entry covers: (anomaly kind, reason in Japanese) pairs."""
    acted = bool(r.escrow_outcome or r.released_at or r.approvals)
    if not acted or not r.gateway_outcome:
        return []  # nothing done at the escrow, or no gateway entry at all (flagged as not_in_gateway_log)
    if r.gateway_outcome.startswith("refused"):
        return [("gateway_refused_but_acted",
                 f"ゲートウェイが拒否した申請（{r.gateway_outcome[:80]}）を、エスクローが受け付けて処理しています。拒否された申請は開示できません。")]
    bound = binding.parse_outcome(r.gateway_outcome)
    if bound is None:
        return [("unbound_gateway_entry",
                 "ゲートウェイの記録が開示してよい記録を特定していない（accepted: … の形式でない）のに、エスクローが処理しています（旧版か改ざんの疑い）。")]
    found = []
    gateway_fields = {"requester": r.requester, "purpose": r.purpose, "legal_basis": r.legal_basis, "case_ref": r.case_ref}
    labels = {"requester": "申請者", "purpose": "利用目的", "legal_basis": "法的根拠", "case_ref": "案件番号",
              "records": "記録の件数", "records_sha256": "記録の一覧（ハッシュ）", "justification_sha256": "理由（ハッシュ）"}
    if r.escrow_filing:
        filed = dict(r.escrow_filing)
        m = _FILED.match(filed.pop("outcome"))
        if m is None:
            found.append(("binding_mismatch", "エスクローの受付記録に、記録の件数とハッシュがありません（旧版か改ざんの疑い）。"))
        else:
            filed |= {"records": int(m["records"]), "records_sha256": m["records_sha256"], "justification_sha256": m["justification_sha256"]}
        logged = gateway_fields | {"records": bound.records, "records_sha256": bound.records_sha256,
                                   "justification_sha256": bound.justification_sha256}
        for name, value in filed.items():
            if logged[name] != value:
                found.append(("binding_mismatch", f"エスクローが受け付けた申請の{labels[name]}（{value}）が、"
                                                  f"ゲートウェイの記録（{logged[name]}）と一致しません。"))
    if r.release_outcome:
        m = _RELEASED.match(r.release_outcome)
        if m is None or int(m["records"]) > bound.records or (m["records_sha256"] or bound.records_sha256) != bound.records_sha256:
            found.append(("binding_mismatch", f"エスクローの開示（{r.release_outcome[:120]}）が、ゲートウェイが記録した"
                                              f" {bound.records} 件の記録と一致しません。"))
    return found


def _many_requests(reports: list[RequestReport], rules: AnomalyRules) -> list[Anomaly]:
    by_user: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for r in reports:
        when = _jst(r.requested_at)
        if when is not None and r.requester:
            by_user[r.requester].append((when, r.request_id))
    window = timedelta(days=rules.window_days)
    found = []
    for user, items in sorted(by_user.items()):
        items.sort()
        start, worst = 0, (0, 0, 0)
        for end in range(len(items)):
            while items[end][0] - items[start][0] > window:
                start += 1
            if end - start + 1 > worst[0]:
                worst = (end - start + 1, start, end)
        count, first, last = worst
        if count > rules.max_requests:
            found.append(Anomaly("many_requests", user, tuple(i for _, i in items[first:last + 1]),
                                 f"{user} が {rules.window_days} 日間に {count} 件申請しています（基準 {rules.max_requests} 件）。"))
    return found


def _jst(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp).astimezone(JST)
    except ValueError:
        return None


def _office_hours(when: datetime, rules: AnomalyRules) -> bool:
    return when.weekday() < 5 and rules.office_start <= when.time() <= rules.office_end


def counts(reports: list[RequestReport]) -> dict[str, int]:
    """How many requests ended in each outcome."""
    return dict(Counter(r.outcome for r in reports))
