"""Leaving Patreon: import its members export, keep paid-up patrons entitled until their paid
period ends (as grants), and follow how many move over."""
