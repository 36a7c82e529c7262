"""Training: the ladder's stages, the SFT entry point (stages 1, 2 and cold start) and stage-3 GRPO.

* :mod:`.ladder`: the stages in order (declared once) and each stage's plan before launch.
* :mod:`.config`: ``SpatialLadderArguments`` (project arguments), ``SFTConfig``, recipe parsing.
* :mod:`.entry`: what the SFT and GRPO entry points share (logging, errors, start, records, DONE).
* :mod:`.modeling`: processor/model loading, the start decision (skip / refuse), resume and ``DONE``.
* :mod:`.conversations`: SpatialLadder-26k records -> chat samples (prompts, targets, media).
* :mod:`.collator`: per-batch rendering, vision processing and assistant-only labels.
* :mod:`.sft`: ``python -m spatialladder.training.sft --config configs/recipes/X.yaml``.
* :mod:`.grpo`: ``python -m spatialladder.training.grpo --config configs/recipes/stage3_grpo.yaml``.

Submodules are imported on use: ``ladder`` and ``modeling`` stay importable without torch for the
stage scripts' pre-launch plan.
"""
