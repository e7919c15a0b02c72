"""The staff dashboard: reports, members, exports and the audit log.

Importing the package (``create_app`` does, through the blueprint) declares the report tables
and installs the session listeners that keep them up to date in every unit of work.
"""

from supporters.staff import models, rollups

__all__ = ["models", "rollups"]

rollups.install()
