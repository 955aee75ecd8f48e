"""Converters from the original checkpoint layouts to diffusers UNet2DModel."""
