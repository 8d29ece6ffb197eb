"""What is kept, on a local folder or any fsspec URL: each output's bytes and provenance (written atomically),
the generation cache, the ledger of paid calls, and the brief snapshots runs pin.

Imports ``brief``, ``plan``, ``media`` and ``providers``; never Dagster.
"""
