"""Recurring support through Stripe: tiers, subscriptions, payments, webhooks.

Where things are: ``models`` (tiers, customers, subscriptions, payments, disputes, events);
``membership`` (what a subscription's status gives its member); the services ``choices`` (the
reader's pick and the price that sells it), ``customers``, ``checkout``, ``subscriptions`` (the
idempotent sync, duplicates), ``payments`` (the ledger), ``disputes``, ``self_service``,
``figures`` (what readers see), ``repricing``, ``reconcile``, ``stripe_sync`` (products and
prices) and ``offers`` (a personal link to a pre-filled checkout, its pages in ``offer_views``); what they refuse or ignore in ``errors``. The services talk to a payment provider
through ``backend``: Stripe (``stripe_gateway``, the only package that imports ``stripe``) or
the ``demo_checkout``, both answering in ``provider``'s dataclasses. ``webhooks`` (the endpoint
and each event's job), ``views`` and ``cli`` are the boundaries that commit; ``background``
registers the jobs the workers run (events, the hourly reconciliation). ``imports`` writes
subscription histories in bulk.
"""
