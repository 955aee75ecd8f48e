"""dclip: a reproducible companion to DiffusionCLIP (Kim, Kwon & Ye, CVPR 2022)."""
__version__ = "0.1.0"
