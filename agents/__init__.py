"""Agents: one per network segment — read, validate, encode, seal and deliver a department's records.

``agents/core`` is the pipeline every agent runs (one module per step:
``read``, ``validate``, ``token``, ``encode``, ``submission``, ``deliver``,
tied together by ``pipeline``); each ``*_network`` folder holds what is
specific to a segment: source mappings, the default field policy, an example
``agent.toml`` and small sample files (``python -m synthetic.samples``).
Deployment and format notes: README.md, section "Agents".
"""
