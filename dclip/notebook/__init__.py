"""The notebook layer: contexts, experiments, widgets, profiles, plots, tables and the figures runner."""
