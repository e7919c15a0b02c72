"""On the newsroom's own pages: embeds framed by its sites, and a read-only public API.

Both are served to everyone alike (no cookie, no member read), cacheable with strong ETags
made from the figures they show, which come from the staff report tables and counters.
"""
