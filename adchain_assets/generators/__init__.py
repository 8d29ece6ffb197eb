"""Image generators: one interface (``base``), one module per model."""
