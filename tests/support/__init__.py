"""The test support package: servers, PostgreSQL, and each area's helpers and fixtures."""
