"""The Dagster definitions: the ``campaigns`` partitions, the resources and IO manager, the asset factories
(images, clips and the ad, the review outputs, the placements), their checks, the sensor and the campaign and
placements jobs with their executor.

Imports every layer below it and ``settings``; ``adchain_assets.definitions`` assembles them.
"""
