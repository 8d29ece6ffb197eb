"""What each output is asked for, and what is out of date: prompts, the references each image is shown, the
request of every output (its fingerprint is the generation cache's key), the placements' outputs, the model
catalogue, the ledger's records, and the plan computed from what is stored.

Pure: imports ``brief`` only, never Dagster, a model SDK or storage; the store reads what the plan needs.
"""
