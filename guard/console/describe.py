"""The console's pages in the OpenAPI document: HTML for a browser, behind a session cookie."""

from __future__ import annotations

from guard.http.openapi import register_path

_HTML = {"text/html": {"schema": {"type": "string"}}}
_SIGNED = ("Needs a console session (cookie `guard_console`, from /console/login); without "
           "one, a redirect to the sign-in page.")
_FORM = ("A form post carrying the session's CSRF token (`csrf`); changes need an admin "
         "key's session and are written to the audit log.")

# path -> {method: (operationId, summary)}
PAGES = {
    "/console/": {"get": ("consoleOverview", "Verdicts per day, top stopping rules, outbox, "
                                             "CRM sync.")},
    "/console/login": {"get": ("consoleSignInForm", "The sign-in form (field `key`)."),
                       "post": ("consoleSignIn", "Sign in with a key of scope admin or "
                                                 "console.")},
    "/console/logout": {"post": ("consoleSignOut", "End the session everywhere.")},
    "/console/audit": {"get": ("consoleAudit", "What was changed through the console.")},
    "/console/decisions": {"get": ("consoleDecisions", "Decisions, filtered, newest first, "
                                                      "50 a page.")},
    "/console/decisions/{decision_id}": {"get": ("consoleDecision", "One decision.")},
    "/console/people": {"get": ("consolePeople", "Find people (`q`).")},
    "/console/people/{person_id}": {"get": ("consolePerson", "A person's profile, flags and "
                                                             "timeline.")},
    "/console/people/{person_id}/erase": {"post": ("consoleErase", "Erase a person (`confirm`: "
                                                                   "their id).")},
    "/console/outbox": {"get": ("consoleOutbox", "Held and unknown sends.")},
    "/console/outbox/{row_id}/retry": {"post": ("consoleOutboxRetry", "Send a row again.")},
    "/console/outbox/{row_id}/mark-sent": {"post": ("consoleOutboxMarkSent",
                                                    "Settle an unknown row as sent.")},
    "/console/keys": {"get": ("consoleKeys", "API keys."),
                      "post": ("consoleCreateKey", "Create a key, shown once.")},
    "/console/keys/{key_id}/revoke": {"post": ("consoleRevokeKey", "Revoke a key.")},
    "/console/policy": {"get": ("consolePolicy", "The rules in force and the editor."),
                        "post": ("consolePolicyAction", "Check, test, simulate or publish "
                                                        "the draft (`policy`, `action`).")},
    "/console/policy/versions/{version_id}/restore": {
        "post": ("consoleRestorePolicy", "Put a stored policy version back in force.")},
    "/console/static/{filename}": {"get": ("consoleStatic", "The console's stylesheet.")},
    "/console/{rest}": {"get": ("consoleUnknownPage", "No such page (404)."),
                        "post": ("consoleUnknownForm", "No such page (404).")},
}


def describe() -> None:
    """Register every console page in the OpenAPI document."""
    for path, methods in PAGES.items():
        operations = {}
        for method, (operation_id, summary) in methods.items():
            open_page = path in ("/console/login", "/console/static/{filename}")
            description = "" if open_page else (_FORM if method == "post" else _SIGNED)
            operations[method] = {
                "operationId": operation_id, "summary": summary, "tags": ["console"],
                "description": description,
                "responses": {"200": {"description": "An HTML page.", "content": _HTML},
                              "302": {"description": "Redirect (to the sign-in page, or "
                                                     "after a change)."}}}
        register_path(path, operations)


describe()
