"""The models: images (``images``: the offline preview renderer, Gemini), clips (``video``: the offline
dissolve, Veo on the Gemini API or Vertex AI) and text (``text``: ``adchain draft``'s model), each behind one
small interface. A provider meters each billed reply through the meter it is handed.

Imports ``brief``, ``plan`` and ``media``; never Dagster or storage.
"""
