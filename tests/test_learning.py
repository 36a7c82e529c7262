"""The ladder learns what is in the pixels, and only what is in the pixels.

A fast variant of ``run_scripts/demo_learning.sh``: the tiny model's "learner" preset is trained by the real SFT
entry point (``python -m spatialladder.training.sft``, the demo's stage-2 and cold-start recipes) on the
pixel-grounded tasks of :mod:`spatialladder.synthetic.learnable`, then scored by the real eval runner on held-out
questions, sighted and ``--blind``. The counterpart trains the cold start (the rung that writes the scored
answer) on the same questions with every image grey: it must then fail the sighted margin, which shows
the margin is earned from pixels.
One trained model per variant is shared by the assertions (module fixtures).

Seeds: ``SPATIALLADDER_LEARNING_SEED`` (default 0) moves the model init, the data and the trainer seed
together, so the spread over seeds can be measured without editing the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spatialladder.evaluation.learning import binomial_sd, learning_checks, modality_figures
from spatialladder.synthetic.learnable import MODALITIES, write_learnable_benchmarks, write_learnable_dataset
from spatialladder.tiny_model import PRESETS, build_tiny_qwen25vl

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "configs/recipes/demo/learn"
SEED = int(os.environ.get("SPATIALLADDER_LEARNING_SEED", "0"))
N_HELDOUT = 60  # per modality: chance 0.5 + 3 sd = 0.694
COLDSTART_ROWS = 192  # per modality, as run_scripts/demo_learning.sh writes them



# ------------------------------------------------------------------------------------------------
# Fast: the task family and the --blind control
# ------------------------------------------------------------------------------------------------
def _colour_pixels(img: Any, colour: str) -> int:
    import numpy as np

    from spatialladder.synthetic.learnable import COLOURS

    a = np.asarray(img).astype(int)
    return int((np.abs(a - np.array(COLOURS[colour])).max(axis=-1) <= 40).sum())


def test_answers_are_balanced_and_read_from_the_pixels() -> None:
    from spatialladder.synthetic.learnable import make_samples

    for modality in MODALITIES:
        samples = make_samples(modality, 40, seed=3)
        assert sum(s.answer == "A" for s in samples) == 20  # always answering one letter scores 0.5
        assert all(s.options == ["A. red", "B. blue"] for s in samples)
        for s in samples:
            other = "blue" if s.answer_colour == "red" else "red"
            if modality == "video":  # the answer's colour fills the first frame, the other the last
                first, last = s.frames[0], s.frames[-1]
                assert _colour_pixels(first, s.answer_colour) > 0 and _colour_pixels(first, other) == 0
                assert _colour_pixels(last, other) > 0 and _colour_pixels(last, s.answer_colour) == 0
            else:  # the nearer object is the larger one, in the only frame that shows both
                shown = [f for f in s.frames if _colour_pixels(f, "red") + _colour_pixels(f, "blue")]
                assert len(shown) == 1
                assert _colour_pixels(shown[0], s.answer_colour) > 2 * _colour_pixels(shown[0], other)


def test_dataset_validates_and_heldout_scenes_are_new(tmp_path: Path) -> None:
    import hashlib

    from spatialladder.data.validate import main as validate
    from spatialladder.evaluation.benchmarks import get_benchmark

    data = write_learnable_dataset(tmp_path / "d", per_modality=4, coldstart_per_modality=2, grounding=2)
    assert validate([str(data[k]) for k in ("grounding", "spatial", "coldstart")]
                    + ["--media-root", str(data["media"]), "--no-progress"]) in (0, None)  # fmt: skip
    bench = write_learnable_benchmarks(tmp_path / "b", per_modality=4)
    docs = {m: get_benchmark(b.name).load_docs(tmp_path / "b") for m, b in bench.items()}
    assert {m: len(d) for m, d in docs.items()} == dict.fromkeys(MODALITIES, 4)
    assert all(d["ground_truth"] in "AB" and d["options"] == ["A. red", "B. blue"] for v in docs.values() for d in v)

    def digests(folder: Path) -> set[str]:
        return {hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.rglob("*.png")}

    assert not digests(data["media"]) & digests(tmp_path / "b")  # no held-out image was trained on
    grey = write_learnable_dataset(tmp_path / "g", per_modality=2, coldstart_per_modality=0, grounding=0,
                                   blind_media=True)  # fmt: skip
    from PIL import Image

    assert all(_colour_pixels(Image.open(p), c) == 0 for p in grey["media"].rglob("*.png") for c in ("red", "blue"))


def test_blind_replaces_every_image_and_frame_by_grey_of_the_same_size() -> None:
    from PIL import Image

    from spatialladder.evaluation.runner import BLIND_GREY, EvalConfig, blind_image, parse_args

    img = Image.new("RGB", (56, 112), (220, 30, 30))
    grey = blind_image(img)
    assert grey.size == (56, 112) and set(grey.getdata()) == {BLIND_GREY}
    sighted = parse_args(["--model", "m", "--data-root", "x", "--output-dir", "o"])
    blind = parse_args(["--model", "m", "--data-root", "x", "--output-dir", "o", "--blind"])
    assert isinstance(blind, EvalConfig) and blind.blind and not sighted.blind
    assert blind.run_signature("VSI-Bench", "m") == {**sighted.run_signature("VSI-Bench", "m"), "blind": True}


def _train(tmp: Path, model: Path, data: dict[str, Path], name: str,
           stages: tuple[str, ...] = ("stage2_spatial", "coldstart")) -> Path:
    """Stage 2 (direct answers) then cold start (thinking format), the demo's recipes and entry point."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    previous = model
    data_files = {"stage2_spatial": data["spatial"], "coldstart": data["coldstart"]}
    for stage, data_file in ((stage, data_files[stage]) for stage in stages):
        out = tmp / f"{name}-{stage}"
        cmd = [
            sys.executable, "-m", "spatialladder.training.sft", "--config", str(RECIPES / f"{stage}.yaml"),
            "--model_name_or_path", str(previous), "--output_dir", str(out), "--data_files", str(data_file),
            "--media_root", str(data["media"]), "--save_strategy", "no", "--seed", str(SEED),
        ]  # fmt: skip
        result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, result.stderr[-4000:]
        previous = out
    return previous


def _evaluate(model: Path, bench: Path, eval_dir: Path, name: str, *, blind: bool = False) -> dict[str, Any]:
    from spatialladder.evaluation.runner import main as run_eval

    args = ["--model", f"{name}={model}", "--benchmarks", "SPBench-SI SPBench-MV VSI-Bench", "--data-root",
            str(bench), "--output-dir", str(eval_dir), "--prompt-kind", "thinking", "--num-frames", "8",
            "--min-pixels", "3136", "--max-pixels", "12544", "--max-new-tokens", "40", "--batch-size", "12",
            "--no-report"]  # fmt: skip
    run_eval(args + (["--blind"] if blind else []))
    return modality_figures(eval_dir, name)


# Issue 9 is open: the learning margins are not yet reliable (seed 0 passes; seed 1 gives video
# 0.633 < 0.694 after the cold start) and the trained fixture takes ~10 min on a loaded 2-core
# machine. These tests stay here, skipped, until the learning demo meets its margins in CPU-minutes.
ISSUE_9_OPEN = pytest.mark.skip(
    reason="issue 9 open: learning margins not yet reliable across seeds; see README 'The learning demo (work in progress, issue 9)'"
)


@pytest.fixture(scope="module")
def learning_setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("learning")
    model = build_tiny_qwen25vl(tmp / "tiny", seed=SEED, **PRESETS["learner"])
    bench = tmp / "heldout"
    write_learnable_benchmarks(bench, seed=SEED, per_modality=N_HELDOUT)
    return {"tmp": tmp, "model": model, "bench": bench}


# ------------------------------------------------------------------------------------------------
# Slow: train through the real SFT entry point, evaluate with the real runner
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sighted(learning_setup: dict[str, Any]) -> dict[str, Any]:
    tmp = learning_setup["tmp"]
    data = write_learnable_dataset(tmp / "data", seed=SEED, grounding=0, coldstart_per_modality=COLDSTART_ROWS)
    trained = _train(tmp, learning_setup["model"], data, "trained")
    eval_dir = tmp / "eval"
    figures = {
        "base": _evaluate(learning_setup["model"], learning_setup["bench"], eval_dir, "base"),
        "trained": _evaluate(trained, learning_setup["bench"], eval_dir, "trained"),
        "trained-blind": _evaluate(trained, learning_setup["bench"], eval_dir, "trained-blind", blind=True),
    }
    (tmp / "figures.json").write_text(json.dumps(figures, indent=1))
    print(f"learning figures (seed {SEED}): {json.dumps(figures)}")
    return {"figures": figures, "eval_dir": eval_dir, "checks": learning_checks(figures, "trained", "trained-blind", "base")}


@pytest.fixture(scope="module")
def withheld(learning_setup: dict[str, Any]) -> dict[str, Any]:
    tmp = learning_setup["tmp"]
    data = write_learnable_dataset(tmp / "grey", seed=SEED, grounding=0, coldstart_per_modality=COLDSTART_ROWS,
                                   blind_media=True)  # fmt: skip
    # The cold start alone (stage 2 skipped, to keep CI short): it is the rung that writes the scored answer;
    # from grey media it learns the format and the balanced letter prior, nothing to look at. (A third of its
    # steps was too few: the video replies had not learned the format yet, so they scored 0, not chance.)
    trained = _train(tmp, learning_setup["model"], data, "trained-on-grey", stages=("coldstart",))
    figures = {"trained-on-grey": _evaluate(trained, learning_setup["bench"], tmp / "eval", "trained-on-grey")}
    print(f"withheld-media figures (seed {SEED}): {json.dumps(figures)}")
    return {"figures": figures, "checks": learning_checks(figures, "trained-on-grey", None, None)}


@ISSUE_9_OPEN
@pytest.mark.slow
def test_trained_model_beats_chance_by_3sd_in_every_modality(sighted: dict[str, Any]) -> None:
    for modality in MODALITIES:
        fig = sighted["figures"]["trained"][modality]
        assert fig["n"] == N_HELDOUT and fig["chance"] == 0.5
        assert fig["accuracy"] >= fig["chance"] + 3 * binomial_sd(fig["chance"], fig["n"]), (modality, fig)
        assert sighted["checks"][modality]["final_above_chance_3sd"]


@ISSUE_9_OPEN
@pytest.mark.slow
def test_trained_model_answers_in_the_thinking_format(sighted: dict[str, Any]) -> None:
    for modality in MODALITIES:
        assert sighted["figures"]["trained"][modality]["format_rate"] >= 0.9, modality


@ISSUE_9_OPEN
@pytest.mark.slow
def test_blind_eval_of_the_trained_model_stays_at_chance(sighted: dict[str, Any]) -> None:
    for modality in MODALITIES:
        fig = sighted["figures"]["trained-blind"][modality]
        assert abs(fig["accuracy"] - fig["chance"]) <= 2 * binomial_sd(fig["chance"], fig["n"]), (modality, fig)
    # the blind run is recorded as such, so it can never resume into or mix with a sighted one
    run_config = json.loads((sighted["eval_dir"] / "trained-blind" / "VSI-Bench" / "run_config.json").read_text())
    assert run_config["blind"] is True
    assert "blind" not in json.loads((sighted["eval_dir"] / "trained" / "VSI-Bench" / "run_config.json").read_text())


@ISSUE_9_OPEN
@pytest.mark.slow
def test_base_model_is_not_above_chance(sighted: dict[str, Any]) -> None:
    for modality in MODALITIES:
        assert sighted["checks"][modality]["base_at_most_chance_plus_2sd"], sighted["figures"]["base"][modality]


@ISSUE_9_OPEN
@pytest.mark.slow
def test_training_on_grey_media_does_not_pass_the_sighted_margin(withheld: dict[str, Any]) -> None:
    """The same questions, answers and training, with the pixels withheld: the learning assertion
    above must fail in every modality (the model can only learn the balanced answer prior)."""
    for modality in MODALITIES:
        fig = withheld["figures"]["trained-on-grey"][modality]
        assert not withheld["checks"][modality]["final_above_chance_3sd"], (modality, fig)
        assert abs(fig["accuracy"] - fig["chance"]) <= 3 * binomial_sd(fig["chance"], fig["n"]), (modality, fig)
