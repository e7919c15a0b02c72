"""Member accounts: passwordless sign-in, sessions, profile, staff roles."""
