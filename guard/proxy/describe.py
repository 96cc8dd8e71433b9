"""The provider endpoints in the guard's OpenAPI document."""

from __future__ import annotations

from guard.http.openapi import register_path


def describe() -> None:
    """Add the provider endpoints to the guard's OpenAPI document."""
    sendgrid_error = {"description": "SendGrid's error shape.",
                      "content": {"application/json": {"schema": {
                          "$ref": "#/components/schemas/SendGridErrors"}}}}
    twilio_error = {"description": "Twilio's error shape; 21610 when the guard blocks.",
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/TwilioError"}}}}
    guard_headers = {
        "X-Guard-Decisions": {"description": "Decision ids, comma-separated.",
                              "schema": {"type": "string"}},
        "X-Guard-Blocked": {"description": "Recipients removed as blocked.",
                            "schema": {"type": "integer"}},
        "X-Guard-Deferred": {"description": "Recipients held in the outbox.",
                             "schema": {"type": "integer"}},
        "X-Guard-Rerouted": {"description": "Recipients removed as rerouted.",
                             "schema": {"type": "integer"}},
    }
    retry_key = {"name": "Idempotency-Key", "in": "header", "schema": {
        "type": "string", "minLength": 1, "maxLength": 255},
        "description": "A retry with the same key and body gets the first answer and sends "
                       "nothing again; the same key with another body is a 409. Kept "
                       "`GUARD_IDEMPOTENCY_HOURS` (24) per API key."}
    register_path("/v3/mail/send", {"post": {
        "operationId": "sendgridMailSend",
        "summary": "SendGrid v3 Mail Send, guarded.",
        "description": "Each recipient is checked; blocked and rerouted ones are removed, "
                       "deferred ones held, the rest forwarded to SendGrid. Purpose, sender, "
                       "campaign and product come from `custom_args` (`guard_purpose`, "
                       "`guard_sender`, `guard_campaign`, `guard_product`) or the key's "
                       "defaults. Scope: `send`.",
        "security": [{"bearer": []}],
        "parameters": [retry_key],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/SendGridMail"}}}},
        "responses": {
            "202": {"description": "Accepted (what was allowed is forwarded).",
                    "headers": guard_headers},
            "400": sendgrid_error, "401": sendgrid_error, "403": sendgrid_error,
            "409": sendgrid_error, "413": sendgrid_error,
        },
    }}, components={
        "SendGridErrors": {"type": "object", "properties": {"errors": {"type": "array", "items": {
            "type": "object", "properties": {"message": {"type": "string"},
                                             "field": {"type": "string", "nullable": True},
                                             "help": {"type": "object", "nullable": True}}}}}},
        "SendGridMail": {"type": "object", "required": ["personalizations", "from"],
                         "description": "SendGrid's Mail Send body (see SendGrid's v3 spec).",
                         "properties": {
                             "personalizations": {"type": "array", "minItems": 1, "items": {
                                 "type": "object", "required": ["to"], "properties": {
                                     "to": {"type": "array", "minItems": 1, "items": {
                                         "$ref": "#/components/schemas/SendGridAddress"}},
                                     "cc": {"type": "array", "items": {
                                         "$ref": "#/components/schemas/SendGridAddress"}},
                                     "bcc": {"type": "array", "items": {
                                         "$ref": "#/components/schemas/SendGridAddress"}},
                                     "custom_args": {"type": "object"}}}},
                             "from": {"$ref": "#/components/schemas/SendGridAddress"},
                             "subject": {"type": "string"},
                             "custom_args": {"type": "object"},
                             "template_id": {"type": "string"}}},
        "SendGridAddress": {"type": "object", "required": ["email"], "properties": {
            "email": {"type": "string", "format": "email"}, "name": {"type": "string"}}},
        "TwilioError": {"type": "object", "properties": {
            "code": {"type": "integer"}, "message": {"type": "string"},
            "more_info": {"type": "string"}, "status": {"type": "integer"}}},
        "TwilioResource": {"type": "object", "properties": {
            "sid": {"type": "string"}, "status": {"type": "string"},
            "to": {"type": "string", "nullable": True},
            "from": {"type": "string", "nullable": True}}},
    })
    for resource, what in (("Messages", "an SMS"), ("Calls", "a call")):
        register_path(f"/2010-04-01/Accounts/{{AccountSid}}/{resource}.json", {"post": {
            "operationId": f"twilioCreate{resource[:-1]}",
            "summary": f"Twilio: create {what}, guarded.",
            "description": "HTTP Basic with the guard API key as password. Purpose and sender "
                           "from `X-Guard-Purpose` / `X-Guard-Sender` or the key's defaults. "
                           "Allowed: Twilio's answer as is. Deferred: 201 with status "
                           "`scheduled` (messages) / `queued` (calls) and `X-Guard-Not-Before`. "
                           "Blocked or rerouted: 400, code 21610. Scope: `send`.",
            "security": [{"basic": []}],
            "parameters": [
                {"name": "AccountSid", "in": "path", "required": True,
                 "schema": {"type": "string"}},
                {"name": "X-Guard-Purpose", "in": "header", "schema": {"type": "string"}},
                {"name": "X-Guard-Sender", "in": "header", "schema": {"type": "string"}},
                retry_key,
            ],
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["To"],
                    "properties": {"To": {"type": "string"}, "From": {"type": "string"},
                                   "Body": {"type": "string"}, "Url": {"type": "string"},
                                   "SendAt": {"type": "string", "format": "date-time"}}}}}},
            "responses": {
                "201": {"description": "Created by Twilio, or held by the guard.",
                        "content": {"application/json": {"schema": {
                            "$ref": "#/components/schemas/TwilioResource"}}}},
                "400": twilio_error, "401": twilio_error, "403": twilio_error,
                "409": twilio_error, "415": twilio_error,
            },
        }})


