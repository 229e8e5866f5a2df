"""Presets (pydantic-validated YAML) and dataset profiles."""
