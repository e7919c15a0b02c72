"""The demo: ``flask --app supporters seed-demo`` fills an empty database with a believable story.

- ``cli.py``: the command, the one module the app loads (``create_app`` registers it); it
  imports the seeder only when it runs;
- ``seeder.py``: the story's order, chunk by chunk, up to the rebuilt report tables;
- ``story.py``: what every part shares: the moment it is told from, its dice, its tallies;
- ``members.py``: the admin, the editor and the readers;
- ``billing.py``: tiers and funding goals; ``subscriptions.py``: each patron's subscription
  and payments;
- ``voting.py``: topics, polls and ballots.

Every row is written by the feature that owns its table, through its services: its imports
for the bulk, the staff's and the voting services for the rest. A schema change touches the
feature, not the demo. The demo sits on top of every feature and may import any of them; none
imports it.
"""
