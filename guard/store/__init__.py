"""The store: engines, every table, the ledger, the JSON codec and the migrations.

    engine.py     make_engine (SQLite tuned for queued writers, or PostgreSQL), read_only
    tables.py     every table
    codec.py      how JSON columns are written and read
    ledger.py     decisions and reported touches: rows in, entries out
    migrate.py    upgrade, downgrade, the revisions; migrations/ holds them
    retention.py  what is kept only for a while, and the batched purge of it
    compiled.py   statements compiled once per dialect, run straight through the driver
    util.py       the time now, lists in chunks
"""
