"""Image models: :class:`base.ImageGenerator` and its backends (``preview``, ``gemini``)."""
