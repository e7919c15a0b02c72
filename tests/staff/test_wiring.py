"""How the report tables are kept: listeners that ``create_app`` installs, rules without SQL."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from flask import Flask

from supporters.extensions import db
from supporters.staff import ledger, listeners


def test_each_app_installs_the_listeners_and_none_twice(app: Flask) -> None:
    # Every test builds an app on the one shared session: a second install would count twice.
    session = db.session()
    installed = {name: list(getattr(session.dispatch, name)) for name, _ in listeners.LISTENERS}
    assert {name: installed[name].count(fn) for name, fn in listeners.LISTENERS} == {
        name: 1 for name, _ in listeners.LISTENERS
    }


def test_importing_the_staff_package_installs_nothing() -> None:
    script = """
import pkgutil, importlib
import sqlalchemy as sa
import supporters.staff
for module in pkgutil.walk_packages(supporters.staff.__path__, "supporters.staff."):
    importlib.import_module(module.name)
from supporters.extensions import db
from supporters.staff.listeners import LISTENERS
print(sum(sa.event.contains(db.session, name, fn) for name, fn in LISTENERS))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "0"


def test_the_ledger_rules_use_no_database() -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(Path(ledger.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    database = {
        module
        for module in imported
        if module.split(".")[0] in ("sqlalchemy", "flask", "flask_sqlalchemy")
        or module in ("supporters.extensions", "supporters.db")
    }
    assert database == set()
