"""Run by .ci/run with the Python of a fresh virtualenv that has only the built wheel installed,
from a directory outside the repository: the installed package must migrate a new database and
serve its pages, templates and static files from the wheel alone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    here = Path.cwd()
    import supporters

    package = Path(supporters.__file__).resolve().parent
    assert "site-packages" in package.parts, f"supporters imported from {package}, not the wheel"
    assert not (here / "supporters").exists(), "run this outside the repository"

    instance = Path(tempfile.mkdtemp(prefix="supporters-wheel-"))
    env = {**os.environ, "SUPPORTERS_INSTANCE_PATH": str(instance), "FLASK_APP": "supporters"}
    flask = [sys.executable, "-m", "flask", "--app", "supporters"]
    subprocess.run([*flask, "db", "upgrade"], env=env, check=True)
    subprocess.run([*flask, "seed-demo"], env=env, check=True, stdout=subprocess.DEVNULL)

    os.environ["SUPPORTERS_INSTANCE_PATH"] = str(instance)
    app = supporters.create_app()
    assert Path(app.template_folder or "").is_relative_to(package), app.template_folder
    client = app.test_client()
    for path, expected in (
        ("/", "Support"),
        ("/polls/", "Poll"),
        ("/sign-in", "Sign in"),
        ("/static/css/site.css", "{"),
        ("/healthz", "ok"),
    ):
        response = client.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 200, (path, response.status_code)
        assert expected in body, (path, body[:300])
    print(f"wheel OK: migrated, seeded and served from {package}")


if __name__ == "__main__":
    main()
