"""What billing refuses or leaves alone, and says why.

:class:`BillingError` is a member's request that cannot be done, with a message fit to show
them. :class:`Ignored` is something of the Stripe account that is not this installation's to
act on: the webhook records the event with the reason and answers 200.
"""

from __future__ import annotations

from supporters.billing.provider import SubscriptionInfo


class BillingError(Exception):
    """Something the member asked for cannot be done; ``message`` is fit to show them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AlreadySupporting(BillingError):
    """The member already has a live subscription: change it instead of starting another."""


class Ignored(Exception):
    """Something this installation does not act on, by design; ``str(exc)`` says why.

    Stripe sends every event of the account (other installations', other tools', the
    Dashboard's): acting on them would count strangers and money that is not ours, and retrying
    would not change the answer.
    """


class UnknownCustomer(Ignored):
    """A subscription, invoice or checkout of a customer no member here is linked to."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} belongs to no member here")
        self.customer_id = customer_id


class UnknownCharge(Ignored):
    """A refund or dispute of a charge that is none of the payments recorded here.

    It may be ours all the same, its payment not recorded yet (the webhook then looks for it
    through Stripe), or another integration's.
    """


class ForeignProduct(Ignored):
    """A subscription for a product this installation did not make: not support, even on a
    member's own customer (the Dashboard, a shop on the same account)."""

    def __init__(self, info: SubscriptionInfo) -> None:
        super().__init__(
            f"subscription {info.id} is for product {info.product_id or '(none)'},"
            " which this installation did not make"
        )
