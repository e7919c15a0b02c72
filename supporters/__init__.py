"""supporters: a self-hosted reader-supporter membership backend for independent newsrooms."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from supporters import config, params

ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger(__name__)


def app_folder(name: str) -> Path:
    """``templates`` or ``migrations``: inside the package when installed from a wheel (see
    ``setup.py``), else beside it in the repository (an editable install, a checkout)."""
    packaged = Path(__file__).resolve().parent / name
    return packaged if packaged.is_dir() else ROOT / name


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: settings, extensions, blueprints, error handlers, commands.

    :raises supporters.config.ConfigError: a required production setting is missing or unsafe.
    """
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(app_folder("templates")),
        instance_path=os.environ.get("SUPPORTERS_INSTANCE_PATH") or None,
    )
    app.config.from_mapping(config.load(app.instance_path, test_config))
    config.validate(app.config)
    params.init_app(app)  # before any route: a route's converters are looked up as it is added
    os.makedirs(app.instance_path, exist_ok=True)

    if app.config["PROXY_COUNT"]:
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count
        )

    _init_extensions(app)
    _register_blueprints(app)

    from supporters import web

    web.init_app(app)

    from supporters import doctor
    from supporters.billing.cli import billing_cli
    from supporters.demo.cli import seed_demo
    from supporters.members import cli as members_cli
    from supporters.patreon.cli import import_cli
    from supporters.staff.cli import staff_cli

    app.cli.add_command(members_cli.create_staff)
    app.cli.add_command(members_cli.members_cli)
    app.cli.add_command(seed_demo)
    app.cli.add_command(doctor.doctor)
    app.cli.add_command(billing_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(import_cli)

    _register_mail(app)
    _register_jobs(app)

    from supporters import jobs

    jobs.init_app(app)  # last: every feature has registered its jobs

    if app.config["IS_PRODUCTION"]:
        for warning in config.warnings_about(app.config):
            log.warning(warning)
    return app


def _init_extensions(app: Flask) -> None:
    from supporters import db as db_module
    from supporters.billing.membership import SUBSCRIPTION_WITH_SESSION
    from supporters.extensions import babel, csrf, db, limiter, login_manager, migrate
    from supporters.members.auth import init_login

    db_module.configure_engine_options(app.config)
    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(app_folder("migrations")),
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
        render_item=db_module.render_migration_item,
    )
    csrf.init_app(app)
    limiter.init_app(app)
    # Members import no other feature: billing hands them its hook, so that a signed-in
    # member's current subscription is loaded with the session, in one statement.
    init_login(app, login_manager, SUBSCRIPTION_WITH_SESSION)

    from supporters.i18n import select_locale, select_timezone

    babel.init_app(
        app,
        locale_selector=select_locale,
        timezone_selector=select_timezone,
        default_translation_directories=str(Path(__file__).parent / "translations"),
    )
    # Import every feature's models so the metadata (migrations, create_all in tests) is whole.
    import supporters.audit
    import supporters.billing.grant_models
    import supporters.billing.models
    import supporters.jobs.models
    import supporters.mail.models
    import supporters.members.models
    import supporters.patreon.models
    import supporters.public.models
    import supporters.site_settings
    import supporters.voting.models  # noqa: F401
    from supporters.staff import listeners as report_listeners

    # Every payment and subscription write also updates the staff report tables, in the same
    # transaction: the listeners go on the session here, not as a side effect of an import.
    report_listeners.install(db)
    _register_figures(app)


def _register_figures(app: Flask) -> None:
    """Readers' figures (the support page's funding goals) come from the staff report tables."""
    from supporters.billing import figures
    from supporters.staff.queries import headline

    figures.use_totals(app, headline.totals)


def _register_mail(app: Flask) -> None:
    """The outbox's delivery, and what each feature emails about and when."""
    from supporters import mail
    from supporters.billing import emails as billing_emails
    from supporters.patreon import invitations as patreon_invitations
    from supporters.staff import emails as staff_emails
    from supporters.voting import emails as voting_emails

    mail.init_app(app)
    billing_emails.init_app(app)
    voting_emails.init_app(app)
    staff_emails.init_app(app)
    patreon_invitations.init_app(app)


def _register_jobs(app: Flask) -> None:
    """Each feature's background jobs and their schedule (mail's are in ``_register_mail``)."""
    from supporters.billing import background as billing_background
    from supporters.members import background as members_background

    members_background.init_app(app)
    billing_background.init_app(app)


def _register_blueprints(app: Flask) -> None:
    from supporters.billing import offer_views  # noqa: F401  (adds the offer pages to billing's)
    from supporters.billing.views import bp as billing_bp
    from supporters.members.views import bp as members_bp
    from supporters.public.views import bp as public_bp
    from supporters.staff.views import bp as staff_bp
    from supporters.voting.views import bp as voting_bp

    app.register_blueprint(members_bp)
    app.register_blueprint(billing_bp)
    app.register_blueprint(voting_bp)
    app.register_blueprint(staff_bp)

    from supporters.patreon import views as patreon_views

    patreon_views.init_app(app)
    app.register_blueprint(public_bp)
