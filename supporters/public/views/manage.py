"""The embeds' admin page: the sites allowed to frame them, and each embed with its snippet."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from supporters import web
from supporters.extensions import db
from supporters.members.auth import admin_required, current_actor
from supporters.params import parse_int
from supporters.public import origins
from supporters.public.forms import OriginForm, RemoveOriginForm
from supporters.public.views.blueprint import bp
from supporters.public.views.embeds import EMBEDS


def _render(form: OriginForm, status: int = 200) -> tuple[str, int]:
    web.allow_csp("frame-src", "'self'")  # the live previews
    embeds = [(name, web.external_url(endpoint), height) for endpoint, name, height in EMBEDS]
    return (
        render_template(
            "public/manage_embeds.html",
            form=form,
            remove_form=RemoveOriginForm(),
            origins=origins.listed_origins(),
            embeds=embeds,
            resize_url=web.external_url("public.resize_script"),
            api_url=web.external_url("public.describe_api"),
        ),
        status,
    )


@bp.get("/staff/embeds")
@admin_required
def manage_embeds() -> tuple[str, int]:
    """The allowed sites, and each embed with its snippet and a live preview (admins)."""
    return _render(OriginForm())


@bp.post("/staff/embeds")
@admin_required
def add_origin() -> Response | tuple[str, int]:
    """Allow a site to frame the embeds and read the API (admins; audited)."""
    form = OriginForm()
    if form.validate_on_submit():
        try:
            row = origins.add_origin(form.origin.data or "", current_actor())
            db.session.commit()
        except origins.InvalidOrigin as exc:
            db.session.rollback()
            form.origin.errors = [str(exc)]
        except IntegrityError:  # the same site added at the same moment elsewhere
            db.session.rollback()
            form.origin.errors = [_("This site is allowed already.")]
        else:
            flash(_("%(origin)s may now show the embeds.", origin=row.origin), "success")
            return redirect(url_for("public.manage_embeds"))
    return _render(form, 400)


@bp.post("/staff/embeds/remove")
@admin_required
def remove_origin() -> Response | tuple[str, int]:
    """Stop allowing a site (admins; audited)."""
    form = RemoveOriginForm()
    origin_id = parse_int(form.origin_id.data or "") if form.validate_on_submit() else None
    if origin_id is None:
        return _render(OriginForm(), 400)
    row = origins.remove_origin(origin_id, current_actor())
    db.session.commit()
    if row is not None:
        flash(_("%(origin)s may no longer show the embeds.", origin=row.origin), "success")
    return redirect(url_for("public.manage_embeds"))
