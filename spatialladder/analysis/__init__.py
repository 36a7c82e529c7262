"""Analysis tools that put a run next to the paper's figures.

``python -m spatialladder.analysis {entropy,attention,dynamics,ladder} ...``:

* :mod:`.entropy`: semantic entropy of sampled answers (K samples per question, clustered by meaning);
* :mod:`.attention`: share of the answer tokens' attention on visual tokens, and inside the target box;
* :mod:`.dynamics`: training curves from ``trainer_state.json`` and benchmark scores per checkpoint;
* :mod:`.ladder`: semantic entropy and visual-attention share for every stage of a run.
"""
