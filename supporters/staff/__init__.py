"""The staff dashboard: reports, members, exports and the audit log."""
