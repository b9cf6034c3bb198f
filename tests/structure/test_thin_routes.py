"""Routes are thin: no route module of either JSON API runs SQL itself; it calls the service's functions.

A query a route needs lives in the service module that owns the tables
(``gateway/agents.py``, ``gateway/scheduler.py``, ``escrow/db.py`` …), once,
so two routes (or a route and a web page) that show the same rows share it.
This reads the imports (``ast``) and imports nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUTES = sorted([*(ROOT / "gateway" / "api" / "routes").glob("*.py"), *(ROOT / "escrow" / "api" / "routes").glob("*.py"),
                 ROOT / "gateway" / "federation" / "api.py"])
#: Route modules allowed a database import, and why.
EXEMPT = {
    # The health check's question is whether the database answers at all (SELECT 1), not a query of the service.
    "gateway/api/routes/health.py": "health check",
}


def _database_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        found += [n for n in names if n.split(".")[0] in ("sqlalchemy", "sqlite3", "psycopg")
                  or n in ("gateway.models",) or (isinstance(node, ast.ImportFrom) and node.module == "gateway"
                                                  and any(a.name == "models" for a in node.names))]
    return found


def test_no_route_module_queries_the_database() -> None:
    assert len(ROUTES) > 20
    found = {path.relative_to(ROOT).as_posix(): names for path in ROUTES
             if path.relative_to(ROOT).as_posix() not in EXEMPT and (names := _database_imports(path))}
    assert found == {}, f"move the query into the service module that owns the table: {found}"
