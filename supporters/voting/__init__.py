"""Patrons propose and vote on the topics the newsroom covers next.

- ``models.py``: polls, their options and tier rules, topics, ballots and their choices;
- ``clock.py``: the voting clock, and the state it gives a poll (tests freeze it here, the
  demo replays its history on it);
- ``errors.py``: why an operation was refused, with a message fit to show;
- ``eligibility.py``: who may vote in a poll, why not, and with what weight;
- ``weights.py``: the weighting rules and the cap on one ballot's share;
- ``ballots.py``: casting a ballot (the tuned vote path), and ballots imported in bulk;
- ``polls.py``: finding polls and running them (drafts, publishing, closing);
- ``topics.py``: proposals, review and a topic's way to publication;
- ``results.py``: figures from SQL aggregates, turnout, who may see them, who voted for what;
- ``forms.py`` and ``views/``: the pages, public ones apart from the staff's.

Voting builds on ``members`` and ``billing`` (who is a patron) and never imports ``staff``.
"""
