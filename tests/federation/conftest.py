"""Fixtures of the federation tests (defined in federation_support)."""
