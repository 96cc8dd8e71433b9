"""Decide one contact attempt: the model, the rule kinds, policy files."""
