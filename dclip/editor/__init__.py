"""The live editor of notebook 06, an application beside the notebook context: its state and actions
(``editor``, ``editor_images``, ``history``), the ipywidgets and the drawing pad wired to them (``widgets``,
``pad_ui``, ``drawing``), the mix it renders (``mix_edit``, eq. 14) and a saved edit's file (``saved_edit``)."""
