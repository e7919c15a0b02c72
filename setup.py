"""Build hook: the wheel carries the top-level ``templates/`` and ``migrations/`` folders.

They stay beside the package in the repository (where a newcomer looks for them), and are
copied into ``supporters/`` when a wheel is built, so that ``pip install .`` and an installed
wheel serve pages and run ``flask --app supporters db upgrade`` from any directory. An editable
install reads them from the repository instead (``supporters.app_folder``).
"""

from __future__ import annotations

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

APP_FOLDERS = ("templates", "migrations")


class BuildWithAppFolders(build_py):
    """``build_py`` that also copies the app's templates and migrations into the package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in APP_FOLDERS:
            target = os.path.join(self.build_lib, "supporters", name)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(name, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))


setup(cmdclass={"build_py": BuildWithAppFolders})
