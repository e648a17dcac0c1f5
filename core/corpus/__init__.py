"""Synthetic 4D speech corpus engine (training only; not shipped in the add-on zip).

  engines/       offline TTS with exact phone timings: espeak-ng (C API), flite, festival, Kokoro
  texts.py       sentences from Debian fortune packages (8 languages), sentence ids and splits
  phonemes.py    engine alphabets -> IPA -> viseme classes
  articulation.py  the teacher: phones -> articulatory parameters (dominance coarticulation,
                 second-order dynamics, bilabial contact) -> deformer coefficients
  deformers.py   coefficients -> dense FLAME displacements (linear bases per identity), identities
  augment.py     audio augmentation that keeps timing (tempo changes scale the timings)
  dataset.py     shard format, manifest, and the reader used by training (Corpus)
  generate.py    voice catalogue, deterministic shard plan, shard making, Markdown statistics
  vocaset.py     VOCASET release -> the same format
  raster.py      tiny numpy rasteriser for preview PNGs
"""
