"""Demo and test tooling, kept out of the core: what runs the embedded default on a machine without
weights or datasets.

* :mod:`.tiny_model`: a tiny random Qwen2.5-VL checkpoint (real classes, real processor) built offline;
* :mod:`.learnable`: pixel-grounded tasks that the tiny model learns in CPU-minutes (the demo's data,
  in the SpatialLadder-26k formats, with held-out benchmark miniatures);
* :mod:`.learning`: the demo's learning figures (``learning.json``, table, ``training.png``);
* :mod:`.benchmark_fixtures`: miniatures of every registered benchmark in its real file layout.

The procedural scenes of :mod:`spatialladder.synthetic` stay beside the core: their scene model and
question templates are shared with :mod:`spatialladder.construction`.
"""
