"""The return path, agent side: resolve a signed list of our own record tokens to our own records, locally.

The gateway sends a department the record tokens of children a caseworker
decided to act on (``keys.return_list``). The department's agent checks the
gateway's signature (with the return-path verifier key the gateway's
administrator gave it), recomputes the token of every record in its own
source file with its linkage secret, and writes the matching records' own
ids with the action asked for to a file for its own system. Nothing leaves
the agent's network; tokens it cannot find are reported, not guessed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from agents.core.config import AgentConfig, ConfigError, load_mapping
from agents.core.pipeline import load_gaiji
from agents.core.read import read_table
from agents.core.token import RecordTokeniser
from agents.core.validate import validate
from keys.documents import write_atomic
from transparency.tlog_checkpoint import Verifier
from keys.enrolment import load_linkage_secret
from keys.return_list import ReturnList, ReturnListError, read_return_list

COLUMNS = ("record_id", "action", "action_label", "purpose", "list_id")


@dataclass(slots=True)
class Resolved:
    """What became of a list: the file written, how many records matched, and the tokens not found."""

    list_id: str
    source: str
    out: Path
    matched: int
    unknown: list[str] = field(default_factory=list)


def verify(data: bytes, gateway_vkey: str, config: AgentConfig) -> ReturnList:
    """Check the signature and that the list is for this municipality and one of this agent's sources."""
    try:
        listing = read_return_list(data, Verifier.from_vkey(gateway_vkey).public_key)
    except ValueError as exc:  # a malformed verifier key
        raise ReturnListError(str(exc)) from None
    m = listing.manifest
    if m["municipality"] != config.agent.municipality:
        raise ReturnListError(f"この対象者リストは自治体 {m['municipality']} 宛てです（このエージェント: {config.agent.municipality}）。")
    return listing


def resolve(config: AgentConfig, passphrase: str, data: bytes, gateway_vkey: str, out_dir: Path | None = None) -> Resolved:
    """Resolve a signed return list to this agent's records and write ``<out_dir>/<list_id>.csv`` (0600)."""
    listing = verify(data, gateway_vkey, config)
    m = listing.manifest
    entry = next((e for e in config.sources if load_mapping(e.mapping).source == m["source"]), None)
    if entry is None:
        raise ConfigError(f"対象者リストのデータ元「{m['source']}」は、このエージェントの agent.toml にありません。")
    mapping = load_mapping(entry.mapping)
    validated = validate(read_table(entry.file, mapping, load_gaiji(config)), mapping)
    tokeniser = RecordTokeniser(load_linkage_secret(config.home, passphrase).secret, mapping.source)
    by_token = {tokeniser.token(r.record_id): r.record_id for r in validated.records}
    wanted = list(dict.fromkeys(listing.tokens))
    unknown = [t for t in wanted if t not in by_token]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    matched = 0
    for token in wanted:
        if token in by_token:
            writer.writerow([by_token[token], m["action"], m.get("action_label", ""), m["purpose"], m["list_id"]])
            matched += 1
    folder = out_dir or (config.home / "returns")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = folder / f"{m['list_id']}.csv"
    write_atomic(out, buffer.getvalue().encode("utf-8-sig"), mode=0o600)
    return Resolved(m["list_id"], m["source"], out, matched, unknown)
