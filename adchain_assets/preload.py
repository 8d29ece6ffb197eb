"""What the multiprocess executor's forkserver loads once, so that no step process forked from it does it again.

Imported (through ``preload_modules``, see :func:`adchain_assets.defs.jobs.build_executor`) by the
forkserver a run starts: the project's definitions and the campaign job, google-genai and the Gemini backend,
numpy, OpenCV and dlib *with the face models loaded* (~0.7 s of CPU that every step used to spend again), and
the storage classes of the run's Dagster instance (a step builds the instance from its reference; importing
the sqlite storage alone costs a step process ~0.6 s of CPU), and the Gemini client (~70 ms of CPU each, for
its TLS contexts). Measured by ``benchmarks/throughput.py``.

Importing this module anywhere else works too (it only loads things), but is slow: ~2-3 s. A failure here
never stops a run: the forkserver skips a preload module that raises, and the steps then load what they need
themselves (slower, same results).
"""

from __future__ import annotations

import os

import cv2  # noqa: F401
import dagster as dg
import dlib  # noqa: F401
import numpy  # noqa: F401

import adchain_assets.providers.images.gemini  # noqa: F401  (google-genai)
from adchain_assets.definitions import defs
from adchain_assets.defs.jobs import CAMPAIGN_JOB
from adchain_assets.vision.features import load_models


def _instance_storage() -> None:
    """Build (and drop) the instance of ``DAGSTER_HOME`` once, which imports its storage classes."""
    if not os.environ.get("DAGSTER_HOME"):
        return
    try:
        instance = dg.DagsterInstance.get()
    except Exception:  # noqa: BLE001 - an instance that cannot be built here is the steps' business, not ours
        return
    instance.dispose()


def _gemini_client() -> None:
    """Build the Gemini client the steps will use (the definitions' own ``image_model`` resource, its key
    resolved as Dagster resolves it), so that every step process forked from here finds it built (see
    ``GeminiGenerator.client``)."""
    image_model = defs.resources["image_model"]
    if image_model.backend != "gemini" or not image_model.api_key:
        return
    try:
        with dg.build_resources({"image_model": image_model}) as resources:
            resources.image_model.generator().client  # noqa: B018 - built for the forked steps
    except Exception:  # noqa: BLE001 - bad settings are the steps' to report, with their own message
        return


defs.resolve_job_def(CAMPAIGN_JOB)
load_models()
_instance_storage()
_gemini_client()
