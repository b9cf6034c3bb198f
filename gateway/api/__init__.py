"""The gateway's HTTP API (FastAPI): thin routes per resource, dependencies in ``deps``."""
