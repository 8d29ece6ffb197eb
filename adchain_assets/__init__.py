"""adchain: from an ad campaign brief to a consistent set of images, clips and the ad, as Dagster assets.

The packages are layers, in the order a brief flows through them; a module imports only from its own layer and
the ones before it (``adchain_assets_tests/test_layers.py`` checks it):

1. ``brief``      the brief file: its strict model and the specificity lint. Pure.
2. ``plan``       prompts, references, the request of every output (its fingerprint is the cache key), the model
                  catalogue, and the plan: what is out of date and why. Pure: no Dagster, no model SDK.
3. ``media``      Pillow and ffmpeg with no model: text on pictures, MP4s, the ad's cut, the storyboard, the report.
4. ``providers``  the image, video and text models behind one interface each (preview offline; Gemini, Veo).
5. ``store``      what is kept: output files and provenance, the generation cache, the ledger, brief snapshots.
6. ``vision``     face and product features (stored once per image) and the consistency scores.
7. ``defs``       the Dagster definitions: partitions, resources, IO manager, asset factories, checks, sensor, job.
8. ``cli``        the ``adchain`` command.

``settings`` (the environment, read once) sits beside ``defs`` and ``cli``, the two that read it;
``definitions`` is the code location's entry point.
"""
