"""The test suite, as packages mirroring the code: helpers are imported as ``tests.<folder>.<module>`` (servers: ``tests._server``)."""
