"""Commands of this area (none yet)."""


def register(group):
    """Add this module's commands to the ``guard`` group."""
