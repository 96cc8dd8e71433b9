"""Purging a month of the ledger on PostgreSQL: batched deletes vs dropping a monthly partition.

Run as ``python -m bench.drill_partitions`` (``GUARD_TEST_POSTGRES_URL``, default the local
test database; it works in a schema of its own and drops it). The README's retention note
quotes its figures: they are why the ledger is purged by batched deletes.
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa

URL = os.environ.get("GUARD_TEST_POSTGRES_URL",
                     "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROWS_PER_MONTH, MONTHS, BATCH = 50_000, 6, 1000
COLUMNS = ("id varchar(40) not null, person_id varchar(40), at timestamptz not null, "
           "channel varchar(16), purpose varchar(64), verdict varchar(16), "
           "committed boolean not null, attempt json, decision json, "
           "created_at timestamptz not null")


def build(conn: sa.Connection) -> None:
    """Make the same ledger twice, one table plain and one partitioned by month."""
    conn.execute(sa.text(f"create table plain ({COLUMNS}, primary key (id))"))
    conn.execute(sa.text("create index on plain (person_id, committed, at)"))
    conn.execute(sa.text("create index plain_committed_at on plain (at) where committed"))
    conn.execute(sa.text(f"create table parted ({COLUMNS}, primary key (id, at)) "
                         "partition by range (at)"))
    conn.execute(sa.text("create index on parted (person_id, committed, at)"))
    for month in range(MONTHS):
        start = datetime(2026, month + 1, 1, tzinfo=UTC)
        end = datetime(2026, month + 2, 1, tzinfo=UTC)
        conn.execute(sa.text(f"create table parted_{month} partition of parted for values "
                             f"from ('{start.isoformat()}') to ('{end.isoformat()}')"))
    rows = MONTHS * ROWS_PER_MONTH
    step = MONTHS * 30 * 86400 // rows
    for table in ("plain", "parted"):
        conn.execute(sa.text(
            f"insert into {table} select 'dec_' || g, 'per_' || (g % 20000), "
            f"timestamptz '2026-01-01' + g * interval '{step} seconds', 'email', 'newsletter', "
            "'allow', true, '{\"to\": \"x@example.com\"}', '{\"verdict\": \"allow\"}', now() "
            f"from generate_series(1, {rows}) g"))
    conn.execute(sa.text("analyze plain"))
    conn.execute(sa.text("analyze parted"))


def main() -> None:
    """Print the time to purge January both ways, and a decision's read by id both ways."""
    engine = sa.create_engine(URL)
    schema = "bench_" + secrets.token_hex(4)
    path = f"set local search_path = {schema}"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"create schema {schema}"))
            conn.execute(sa.text(path))
            build(conn)
        started, deleted = time.perf_counter(), 0
        while True:
            with engine.begin() as conn:
                conn.execute(sa.text(path))
                count = conn.execute(sa.text(
                    "delete from plain where id in (select id from plain where at < "
                    f"'2026-02-01' and committed limit {BATCH} for update skip locked)")).rowcount
            deleted += count
            if count < BATCH:
                break
        batched = time.perf_counter() - started
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text(path))
            conn.execute(sa.text("alter table parted detach partition parted_0"))
            conn.execute(sa.text("drop table parted_0"))
        dropped = time.perf_counter() - started
        reads = {table: read_by_id(engine, path, table) for table in ("plain", "parted")}
        print(f"January ({deleted} entries): batched deletes of {BATCH} {batched:.2f} s, "
              f"partition detached and dropped {dropped * 1000:.0f} ms")
        print(f"a decision by id: plain {reads['plain']:.0f} µs, "
              f"partitioned ({MONTHS - 1} months) {reads['parted']:.0f} µs")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
        engine.dispose()


def read_by_id(engine: sa.Engine, path: str, table: str, reads: int = 2000) -> float:
    """Return the mean microseconds of reading one decision by its id."""
    with engine.begin() as conn:
        conn.execute(sa.text(path))
        started = time.perf_counter()
        for i in range(reads):
            conn.execute(sa.text(f"select decision from {table} where id = :id"),
                         {"id": f"dec_{100000 + i * 7}"}).all()
        return (time.perf_counter() - started) / reads * 1e6


if __name__ == "__main__":
    main()
