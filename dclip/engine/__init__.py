"""The engine: the paper's method (DDIM, mixing, loading, losses, fine-tuning, editing, metrics).

It imports neither :mod:`dclip.baselines` nor :mod:`dclip.notebook` (``tests/test_layers.py``).
"""
