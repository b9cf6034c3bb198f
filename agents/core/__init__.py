"""The agent pipeline: read → validate → token → encode/seal → submission → deliver (``pipeline`` runs them in order)."""
