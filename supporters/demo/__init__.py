"""The demo: ``flask --app supporters seed-demo`` fills an empty database with a believable story.

- ``cli.py``: the command, the one module the app loads (``create_app`` registers it); it
  imports the seeder only when it runs;
- ``seeder.py``: the story's order, from the staff's accounts to the rebuilt report tables.

The demo sits on top of every feature and may import any of them; none imports it.
"""
