"""Procedural synthetic scene engine: lumbar endoscopy frames with exact tissue labels."""
from models.synth.clip import SyntheticClip

__all__ = ["SyntheticClip"]
