"""Contact Guard service."""
