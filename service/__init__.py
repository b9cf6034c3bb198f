"""The service base the gateway and the escrow share: refusals, passwords, the database engine and the account lifecycle.

Both services keep their own users, sessions, audit log and screens (the
escrow takes nobody's word for who is asking, trust boundary 3); what they do
the same way is written once, here:

* :mod:`service.errors` — :class:`~service.errors.Refusal`, the one exception a
  refusal is raised as, and the one place it becomes an HTTP answer;
* :mod:`service.passwords` — Argon2id password hashes (argon2-cffi) and
  session tokens;
* :mod:`service.db` — the SQLAlchemy engine factory (SQLite with WAL, full
  fsync and foreign keys enforced, or PostgreSQL);
* :mod:`service.accounts` — create, sign in, disable, delete, change roles,
  reset and change passwords, lift a login lock: each change committed with
  its audit entry;
* :mod:`service.frontdoor` — the password rule, the login throttle, request
  body limits and the counting of anonymous refusals;
* :mod:`service.audit_store` — the SQL store of the tamper-evident audit log
  (the log's formats and proofs are the pure :mod:`keys` library's);
* :mod:`service.witness_http` — the C2SP tlog-witness endpoint;
* :mod:`service.pools` — the fork pool that runs the pure linkage library's
  heavy steps on this machine's cores (the gateway, ``tsunagu link``, benchmarks);
* :mod:`service.web` — the skeleton of a server-rendered UI: the session
  cookie, CSRF, the Jinja environment, the sign-in screen, the base template
  and style sheet.
"""
