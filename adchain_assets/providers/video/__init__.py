"""Video models: :class:`base.VideoGenerator` and its backends (``preview``, ``veo``)."""
