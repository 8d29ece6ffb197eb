"""One partition per campaign: the ``campaigns`` dynamic partitions, keyed by the brief file's stem."""

import dagster as dg

campaigns = dg.DynamicPartitionsDefinition(name="campaigns")
