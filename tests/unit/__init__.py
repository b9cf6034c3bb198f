"""Unit tests: in-process, nothing started (tools/split_tests.py states the rule)."""
