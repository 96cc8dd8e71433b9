"""Ingest: events from every system in, one person per human out.

    events.py      the events of SPEC §6, parsed and validated one at a time
    writer.py      store a batch of events
    batch.py       the rows a batch names, read up front and written together
    people.py      find, resolve and merge people
    identity.py    normalised emails, E.164 phones, CRM references
    profiles.py    a person's merged profile, rebuilt from their records
    erasure.py     the right to erasure and its key
    files.py       event files: CSV (one type per file) and JSON lines
"""
