"""Patrons propose and vote on the topics the newsroom covers next."""
