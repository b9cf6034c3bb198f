"""Federation: linking children who transferred in (転入) with the gateway of the municipality they came from.

config (federation.toml, peers) → protocol (signed messages, refusals) → store (federation encodings from the
My Number agent) → match (per-field scoring of the federation encodings) → service (queries, answers, handles,
handovers, bundles) → api (routes). See README.md, section "Federation".
"""
