"""The pure linkage library: records, Japanese normalisation, encoding, matching, evaluation.

No network, no database, no global state: the agents and the gateway are the
shells that do I/O and call into this package.
"""
