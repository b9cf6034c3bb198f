"""Benchmarks and the fuzzing harness, outside the product packages; each module is a ``python -m bench.<name>`` command.

``linkage`` (quality, speed, scale, schema: ``tsunagu bench …``), ``attack``
(``tsunagu bench attack``), ``keys`` (sealing and the audit log), ``agents``
(an agent end to end), ``gateway`` (ingest, relink, incremental, load),
``federation`` (a transferred-in cohort against a peer) and ``fuzz``
(both services' OpenAPI, ≥ 10,000 requests). They print figures; tests
assert behaviour, not these figures.
"""
