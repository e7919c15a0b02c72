"""Staff pages of figures: the overview, the reports, and their CSV downloads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import abort, render_template, request
from flask_babel import format_timedelta
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from supporters import downloads, jobs
from supporters.db import utcnow
from supporters.i18n import date as format_date
from supporters.i18n import money
from supporters.members.auth import staff_required
from supporters.staff import charts, exports
from supporters.staff.forms import PaymentExportForm
from supporters.staff.models import MovementKind, month_number, month_start
from supporters.staff.queries import at_risk, disputes, headline, monthly, retention
from supporters.staff.views.blueprint import bp

MONTHS_ON_OVERVIEW = 12
# MRR movements that add revenue; the others (contraction, churn) take it away.
GAINS = {
    MovementKind.NEW,
    MovementKind.REACTIVATION,
    MovementKind.EXPANSION,
}


def short_month(day: dt.date) -> str:
    return format_date(day, "MMM yy")


def _money_format(currency: str) -> Callable[[int], str]:
    return lambda amount: money(amount, currency)


# -- overview ------------------------------------------------------------------------------------


@bp.get("/")
@staff_required
def overview() -> str:
    """Are we growing, who is leaving, what is failing: the figures staff open every Monday."""
    now = utcnow()
    figures = headline.now_figures(now)
    months = monthly.last_months(MONTHS_ON_OVERVIEW, now)
    patrons = monthly.patron_months(months)
    revenue = monthly.revenue_months(months)
    labels = [short_month(m.start) for m in patrons]
    complete = [m for m in patrons[:-1] if m.churn_rate is not None]
    failed_count, failed_amounts = at_risk.failed_payments_in(month_number(now))
    job_queue = jobs.stats(now)
    chart = {
        "patrons": charts.line_chart(
            _("Active patrons at the end of each month"),
            labels,
            [charts.Series(_("Patrons"), [m.patrons_at_end for m in patrons])],
        ),
        "joins": charts.bar_chart(
            _("New, returning and cancelled patrons per month"),
            labels,
            [
                charts.Series(_("New"), [m.new for m in patrons]),
                charts.Series(_("Returning"), [m.reactivated for m in patrons], tone=3),
                charts.Series(_("Cancelled"), [m.churned for m in patrons], tone=2),
            ],
        ),
        "mrr": {
            currency: charts.line_chart(
                _("Monthly recurring revenue in %(currency)s", currency=currency),
                labels,
                [charts.Series(_("MRR"), [m.mrr_at_end for m in series])],
                _money_format(currency),
            )
            for currency, series in revenue.items()
        },
        "received": {
            currency: charts.bar_chart(
                _("Money received per month in %(currency)s", currency=currency),
                labels,
                [
                    charts.Series(
                        _("Subscriptions"), [m.paid - m.refunded - m.disputed for m in series]
                    ),
                    charts.Series(_("Gifts"), [m.gifts for m in series]),
                ],
                _money_format(currency),
            )
            for currency, series in revenue.items()
        },
    }
    return render_template(
        "staff/overview.html",
        now=now,
        figures=figures,
        patrons=patrons,
        revenue=revenue,
        last_complete=complete[-1] if complete else None,
        goals=headline.goal_progress(figures),
        failed_count=failed_count,
        failed_amounts=failed_amounts,
        past_due=at_risk.past_due_count(),
        disputes=disputes.disputes_due(),
        turnout=headline.current_poll_turnout(figures, now),
        job_queue=job_queue,
        job_lag=format_timedelta(job_queue.lag(now), threshold=1),
        chart=chart,
        payment_form=PaymentExportForm(formdata=None),
    )


# -- beyond the basics ---------------------------------------------------------------------------


@bp.get("/reports")
@staff_required
def reports() -> str:
    """MRR movements, cohort retention, lifetime value, failed payments and who is at risk."""
    now = utcnow()
    figures = headline.now_figures(now)
    months = monthly.last_months(MONTHS_ON_OVERVIEW, now)
    revenue = monthly.revenue_months(months)
    failures = at_risk.failure_months(months)
    labels = [short_month(month_start(m)) for m in months]
    movement_charts = {}
    for currency, series in revenue.items():
        gained = [sum(v for k, v in m.movements.items() if k in GAINS) for m in series]
        lost = [sum(v for k, v in m.movements.items() if k not in GAINS) for m in series]
        movement_charts[currency] = charts.bar_chart(
            _("MRR gained and lost per month in %(currency)s", currency=currency),
            labels,
            [charts.Series(_("Gained"), gained), charts.Series(_("Lost"), lost)],
            _money_format(currency),
        )
    failure_charts = {}
    for currency in sorted({f.currency for f in failures}):
        by_month = {f.month: f for f in failures if f.currency == currency}
        failure_charts[currency] = charts.bar_chart(
            _("Failed payments in %(currency)s by the month they first failed", currency=currency),
            labels,
            [
                charts.Series(
                    _("Recovered"), [getattr(by_month.get(m), "recovered_count", 0) for m in months]
                ),
                charts.Series(
                    _("Not recovered"),
                    [getattr(by_month.get(m), "failed_count", 0) for m in months],
                ),
            ],
        )
    return render_template(
        "staff/reports.html",
        revenue=revenue,
        movement_charts=movement_charts,
        cohorts=retention.cohorts(monthly.last_months(18, now), now),
        lifetime=retention.lifetime_values(figures, now),
        failures=failures,
        failure_charts=failure_charts,
        at_risk=at_risk.at_risk(),
        kinds=monthly.MRR_KINDS,
        payment_form=PaymentExportForm(formdata=None),
    )


@bp.get("/reports/<name>.csv")
@staff_required
def download_report(name: str) -> Response:
    """One report table or chart's figures as CSV."""
    dataset = exports.DATASETS.get(name)
    if dataset is None:
        abort(404)
    stamp = utcnow().strftime("%Y-%m-%d")
    return downloads.stream_csv(f"{name}-{stamp}.csv", dataset.header, dataset.rows())


@bp.get("/payments.csv")
@staff_required
def export_payments() -> Response | tuple[str, int]:
    """Payments invoiced in a date range, as CSV."""
    form = PaymentExportForm(request.args)
    if not form.validate():
        return render_template("staff/export_payments.html", payment_form=form), 400
    start, end = form.date_from.data, form.date_to.data
    return downloads.stream_csv(
        f"payments-{start}-{end}.csv", exports.PAYMENT_HEADER, exports.payment_rows(start, end)
    )
