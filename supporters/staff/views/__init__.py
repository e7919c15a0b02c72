"""Staff pages: one blueprint, ``staff``, its routes by page group.

* :mod:`.reports`: the overview, the reports, and their CSV downloads;
* :mod:`.members`: the members list and its CSV, one member's page, their role;
* :mod:`.money`: renewals that failed, disputes to answer;
* :mod:`.mail`: the latest emails and where each stands, the addresses that bounce;
* :mod:`.admin`: tiers, funding goals, staff accounts, the audit log (admins);
* :mod:`.background`: failed and dead jobs, failed webhook events, retries (admins).

Staff read; admins also change. Every admin change is audited by the service it calls. The
blueprint and the helpers its templates share are in :mod:`.blueprint`.
"""

from supporters.staff.views import admin, background, mail, members, money, reports
from supporters.staff.views.blueprint import bp

__all__ = ["admin", "background", "bp", "mail", "members", "money", "reports"]
