"""The brief: the strict model of a campaign's YAML file (every problem as file, field and reason) and the
specificity lint. Imports nothing of the project."""
