"""Read-only report queries: SQL aggregates over the rollups and indexed columns, by report.

* :mod:`.headline`: patrons and MRR now and 30 days ago, funding goals, the poll's turnout;
* :mod:`.monthly`: patrons and recurring revenue month by month, and money received;
* :mod:`.retention`: sign-up cohorts and lifetime value;
* :mod:`.at_risk`: failed payments (recovered or not) and patrons who may leave;
* :mod:`.disputes`: disputes to answer and decided;
* :mod:`.member_page`: one member's subscriptions, history, votes and proposals;
* :mod:`.digest`: the day's figures of the staff's daily email;
* :mod:`.admin_pages`: what the admin pages list (tiers, goals, staff accounts, the audit log);
* :mod:`.background`: failed and dead jobs, and webhook events that failed.

The members list, with its search and keyset pages, is :mod:`supporters.staff.member_list`.

Every figure is per currency where it is money (never summed across currencies) and comes
from the rollup tables of :mod:`supporters.staff.models`, whose size grows with the number of
months, currencies and tiers, not with members or payments. The few Python loops here run over
those aggregated rows (one per month and kind), never over members, subscriptions or payments.

Rounding: amounts are integers in minor units. A yearly plan counts as ``amount // 12`` per
month (rounded down, per subscription, as billing's public figures do). Averages and rates
are exact fractions, rounded half up only when shown.
"""
