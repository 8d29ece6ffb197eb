"""Video: one interface (``base``), one module per model, and the ad cut from their clips (``ad``)."""
