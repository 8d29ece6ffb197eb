"""Is it the same person, the same product? Face and product features (computed once per image and stored by
its sha256) and the identity and product scores the checks report.

Imports the layers below it (``brief`` to ``store``); never Dagster.
"""
