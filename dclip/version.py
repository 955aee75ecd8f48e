"""dclip's version, on the ground floor so that every layer may record it (fine-tune sidecars, saved edits)."""
__version__ = "0.1.0"
