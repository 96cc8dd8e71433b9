"""Idempotency keys on the provider endpoints: a retried request gets the first answer.

A tool that times out and sends the same request again with the same
``Idempotency-Key`` must not cause a second delivery, decision or held row.
The first request stores its answer in the transaction of its decisions and
outbox rows (``Answers.remember_in``), so the answer exists exactly when
they do. A later request with that key (per API key) and the same body is
answered from the store and decides nothing; with another body it is a 409
naming ``Idempotency-Key``. Two identical requests racing each other both
decide, but only one can store its answer: the other's transaction rolls back
(``AlreadyAnswered``) and it replays the winner's.

An answer that depends on the provider's reply (Twilio's message resource,
SendGrid's refusal) is stored as the guard would answer without a reply,
with the outbox row of its send, and completed once the reply is in
(``Answers.complete``). A replay while that send is under way waits for it,
up to ``wait`` seconds; a first request that died after its commit leaves
that stored answer, which is what its retry gets: the send itself belongs to
the outbox, which never sends a row twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from flask import Response, request
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from guard.errors import Conflict, InvalidField
from guard.proxy.outbox import Outbox
from guard.store.tables import idempotency_keys
from guard.store.util import utc_now

HEADER = "Idempotency-Key"
# As payment APIs take them: up to 255 printable ASCII characters.
MAX_LENGTH = 255
# Request headers that change what a provider request means, besides its body.
MEANINGFUL_HEADERS = ("Content-Type", "Content-Encoding", "X-Guard-Purpose", "X-Guard-Sender",
                      "X-Guard-Campaign", "X-Guard-Product")
# An outbox row in these states may still be getting its reply from the provider.
_UNDER_WAY = ("claimed", "sending")

_INSERT = {
    name: insert(idempotency_keys).on_conflict_do_nothing(
        index_elements=["key_id", "key_hash"]).returning(idempotency_keys.c.key_id)
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


class AlreadyAnswered(Exception):
    """Another request with the same key stored its answer first; roll this one back."""


@dataclass(frozen=True)
class Answer:
    """A response as the caller gets it, and as it is stored for a retry."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    content_type: str | None = "application/json"

    def to_dict(self) -> dict:
        return {"status": self.status, "headers": dict(self.headers), "body": self.body,
                "content_type": self.content_type}

    @classmethod
    def from_dict(cls, data: Mapping) -> Answer:
        return cls(int(data["status"]), dict(data.get("headers") or {}), data.get("body") or "",
                   data.get("content_type"))

    def response(self) -> Response:
        response = Response(self.body, status=self.status, headers=dict(self.headers))
        if self.content_type:
            response.content_type = self.content_type
        else:
            del response.headers["Content-Type"]
        return response


@dataclass(frozen=True)
class Claimed:
    """A request's Idempotency-Key, scoped to the API key that sent it."""

    key_id: str
    key_hash: str
    fingerprint: str
    header: str


def presented(key_id: str, body: bytes) -> Claimed | None:
    """Read the request's Idempotency-Key (None without one); raise InvalidField if malformed."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not value or len(value) > MAX_LENGTH or not value.isascii() or not value.isprintable():
        raise InvalidField(HEADER, f"must be 1 to {MAX_LENGTH} printable ASCII characters")
    digest = hashlib.sha256()
    for part in (request.method, request.path,
                 *(request.headers.get(h, "") for h in MEANINGFUL_HEADERS)):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(body)
    return Claimed(key_id, hashlib.sha256(value.encode()).hexdigest(), digest.hexdigest(),
                   value)


class Answers:
    """The stored answers of requests that carried an Idempotency-Key."""

    def __init__(self, engine: Engine, box: Outbox, *,
                 clock: Callable[[], datetime] | None = None, wait: float = 30.0,
                 poll: float = 0.05):
        self.engine = engine
        self.box = box
        self.clock = clock or utc_now
        self.wait = wait
        self.poll = poll

    def arrive(self, key_id: str) -> tuple[bytes, Claimed | None, Answer | None]:
        """Read the request's body and key; return them with the stored answer, if any."""
        raw = request.get_data()
        claimed = presented(key_id, raw)
        return raw, claimed, self.replay(claimed)

    def _read(self, conn: Connection, claimed: Claimed):
        return conn.execute(sa.select(idempotency_keys).where(
            idempotency_keys.c.key_id == claimed.key_id,
            idempotency_keys.c.key_hash == claimed.key_hash)).first()

    def replay(self, claimed: Claimed | None) -> Answer | None:
        """Return the stored answer to ``claimed``'s key, None if there is none.

        A key stored with another request is a Conflict naming the header; an
        answer still waiting for the provider's reply is waited for.
        """
        if claimed is None:
            return None
        deadline = time.monotonic() + self.wait
        while True:
            with self.engine.connect() as conn:
                row = self._read(conn, claimed)
                if row is None:
                    return None
                if row.fingerprint != claimed.fingerprint:
                    raise Conflict(
                        f"{HEADER}: {claimed.header!r} was used for a different request; "
                        "use a new key for a new request", field=HEADER)
                if row.outbox_id is None:
                    return Answer.from_dict(row.response)
            # Through the outbox, which first writes its process's pending settles.
            state = (self.box.get(row.outbox_id) or {}).get("status")
            if state not in _UNDER_WAY or time.monotonic() >= deadline:
                # The send is over (or its sender died): the answer is complete, as stored
                # now; read once more, since it is completed just before the row settles.
                with self.engine.connect() as conn:
                    return Answer.from_dict(self._read(conn, claimed).response)
            time.sleep(self.poll)

    def remember_in(self, conn: Connection, claimed: Claimed | None, answer: Answer, *,
                    decision_ids: Iterable[str], outbox_id: str | None = None) -> None:
        """Store ``answer`` in the caller's transaction; raise AlreadyAnswered if one is.

        ``outbox_id`` names the send whose reply may still change the answer.
        """
        if claimed is None:
            return
        stored = conn.execute(_INSERT[conn.dialect.name], {
            "key_id": claimed.key_id, "key_hash": claimed.key_hash,
            "fingerprint": claimed.fingerprint, "response": answer.to_dict(),
            "outbox_id": outbox_id, "decision_ids": " ".join(i for i in decision_ids if i),
            "created_at": self.clock(),
        }).scalar()
        if stored is None:
            raise AlreadyAnswered(claimed.header)

    def complete(self, claimed: Claimed | None, stored: Answer, final: Answer) -> None:
        """Record the answer the caller got, when the provider's reply changed it."""
        if claimed is None or final == stored:
            return
        with self.engine.begin() as conn:
            conn.execute(idempotency_keys.update().where(
                idempotency_keys.c.key_id == claimed.key_id,
                idempotency_keys.c.key_hash == claimed.key_hash,
            ).values(response=final.to_dict(), outbox_id=None))
