"""Speech to Face - Blender extension layer.

Panel, operators and the bake writer; every computation lives in ``core`` (vendored as
``speech_to_face.core`` in the extension zip). Metadata is in blender_manifest.toml.

Attribution: the FLAME head model and topology (and data derived from them, including the
trained weights) are by the Max Planck Institute for Intelligent Systems, CC-BY-4.0 (Li,
Bolkart, Black, Li, Romero, SIGGRAPH Asia 2017); see core/assets/LICENSES.md.
"""

from . import any_head_ui, operators, panel, properties

_modules = (properties, operators, panel, any_head_ui)


def register():
    for m in _modules:
        m.register()


def unregister():
    for m in reversed(_modules):
        m.unregister()
