"""The HTTP API: the check, screen, events, keys and look-up endpoints.

    api.py         the blueprints
    auth.py        who is calling: API keys and their scopes
    keys.py        API keys: create, list, revoke, authenticate, allow-lists
    schemas.py     request and response shapes
    openapi.py     the OpenAPI document
    problems.py    every error as application/problem+json
"""
