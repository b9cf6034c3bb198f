"""The test suite: ``unit/<package>/`` and ``integration/<package>/`` mirror the code (``tools/split_tests.py`` states the rule and keeps it); helpers are imported from ``tests.support``."""
