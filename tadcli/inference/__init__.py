"""Whole-video inference: frames -> windows -> model -> detections in seconds, and loading a trained detector."""
