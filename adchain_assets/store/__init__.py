"""What is kept, on a local folder or any fsspec URL: each output's bytes and provenance (written atomically),
the generation cache, the ledger of paid calls, the brief snapshots runs pin, and the deliverables folder.

Imports ``brief``, ``plan``, ``media`` and ``providers``; never Dagster.
"""
