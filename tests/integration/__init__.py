"""Integration tests: each starts a server, a database, a browser, a process or a Dask cluster."""
