"""Why a voting operation was refused: one exception per reason, each with a message fit to show
to the person (the views map each reason to its status code)."""

from __future__ import annotations


class VotingError(Exception):
    """A refused operation; ``message`` is fit to show to the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PollNotFound(VotingError):
    """No such poll, or a draft that only staff may see."""


class PollNotOpen(VotingError):
    """The poll is not taking ballots (not open yet, or closed)."""


class NotEligible(VotingError):
    """This member may not vote (or propose) now."""


class InvalidBallot(VotingError):
    """The ballot names no option, too many, or options of another poll."""


class InvalidPoll(VotingError):
    """The poll cannot be published or changed as asked."""


class TransitionRefused(VotingError):
    """The poll or topic is not in a state that allows this (edited by someone else?)."""
