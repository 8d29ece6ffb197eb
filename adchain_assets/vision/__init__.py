"""Is it the same person, the same product? Face and product features (computed once per image and stored by
its sha256) and the identity and product scores the checks report (a placement frame's against its master
frame).

Imports the layers below it (``brief`` to ``store``); never Dagster.
"""
