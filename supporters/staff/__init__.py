"""The staff dashboard: reports, members, exports and the audit log.

The report tables (:mod:`supporters.staff.models`) are kept up to date in the same transaction
as every payment and subscription write, by session listeners that ``create_app`` installs
(:mod:`supporters.staff.listeners`); importing the package installs nothing.
"""
