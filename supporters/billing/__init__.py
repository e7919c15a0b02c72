"""Recurring support through Stripe: tiers, subscriptions, payments, webhooks."""
