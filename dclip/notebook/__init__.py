"""The notebook layer: the context a notebook's cells call (context, worlds, profiles, memo, outputs, costs, GAN
side). The live editor of notebook 06 is beside it, in :mod:`dclip.editor`."""
