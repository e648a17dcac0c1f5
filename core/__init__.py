"""Speech to Face core: speech -> FLAME-topology facial animation, with no Blender dependency.

Implements "Learning Landmarks Motion from Speech for Speaker-Agnostic 3D Talking Heads
Generation" (Nocentini, Ferrari, Berretti, ICIAP 2023): S2L predicts 68 landmark
displacements from speech, S2D expands them to all 5023 FLAME vertices.
"""

__version__ = "0.2.0"
