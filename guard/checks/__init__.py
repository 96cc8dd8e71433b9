"""Checks: an attempt in, a decision out, recorded in the ledger.

    service.py     the Guard: check, check_many, screen (one path: a check is a batch of one)
    attempts.py    read an attempt from a request
    facts.py       read what deciding a batch needs: profiles, ledgers, strangers, campaigns
    batching.py    group commit: concurrent checks share a transaction
    tasks.py       owner tasks a decision asks for
    lookups.py     read back a decision, a person, changed flags
    screening.py   list screening across processes
    simulation.py  replay the ledger under another policy
    flags.py       the status and flags a sales rep sees
"""
