"""The ``adchain`` command: validate, plan, materialize, regenerate, takes, pick, approve, unapprove, status, export,
demo, doctor, models and draft.

The top layer: it may import any other. Exit codes: 0 done, 1 a generation or run failed, 2 bad input.
"""

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
