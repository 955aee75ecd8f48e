"""The GAN baselines of notebook 02 (StyleGAN2, e4e and W+ projection, StyleCLIP, StyleGAN-NADA).

They import only the engine (``tests/test_layers.py``).
"""
