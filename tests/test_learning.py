"""The ladder learns what is in the pixels, and only what is in the pixels.

A fast variant of the demo (``run_scripts/demo.sh``): the tiny model's "learner" preset is trained by the
real SFT entry point (``python -m spatialladder.training.sft``, the demo's stage-2 recipe, one epoch of 256
rows per modality) on the pixel-grounded tasks of :mod:`spatialladder.demo.learnable`, then scored by the
real eval runner on held-out questions with the direct prompt, sighted and ``--blind``. The counterpart trains
on the same rows with every image grey: it must then fail the sighted margin, which shows the margin is
earned from pixels. The thinking format, the cold start and GRPO are measured by the demo itself
(``WORK_DIR/eval/learning.json``); the stage-2 rung is the one cheap enough for every CI run.
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

from spatialladder.demo.learnable import MODALITIES, write_learnable_benchmarks, write_learnable_dataset
from spatialladder.demo.learning import binomial_sd, learning_checks, modality_figures
from spatialladder.demo.tiny_model import PRESETS, build_tiny_qwen25vl

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "configs/recipes/demo/learn"
SEED = int(os.environ.get("SPATIALLADDER_LEARNING_SEED", "0"))
N_HELDOUT = 60  # per modality: chance 0.5 + 3 sd = 0.694
TRAIN_ROWS = 256  # stage-2 rows per modality: one epoch, 96 steps of 8



# ------------------------------------------------------------------------------------------------
# Fast: the task family and the --blind control
# ------------------------------------------------------------------------------------------------
def _colour_pixels(img: Any, colour: str) -> int:
    import numpy as np

    from spatialladder.demo.learnable import COLOURS

    a = np.asarray(img).astype(int)
    return int((np.abs(a - np.array(COLOURS[colour])).max(axis=-1) <= 40).sum())


def test_answers_are_balanced_and_read_from_the_pixels() -> None:
    from spatialladder.demo.learnable import make_samples

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


def _grpo_state(folder: Path, rewards: list[float], grad: float = 0.5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    history = [{"step": i + 1, "reward": r, "grad_norm": grad, "kl": 0.0} for i, r in enumerate(rewards)]
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history + [{"train_loss": 0.1}]}))
    return folder


def test_grpo_reward_trend_counts_a_rise_only_above_two_standard_errors(tmp_path: Path) -> None:
    from spatialladder.demo.learning import grpo_reward_trend

    # windows of 3: means 1.1 -> 1.7; each window's sd 0.1, so each standard error 0.1/sqrt(3) = 0.0577
    clear = grpo_reward_trend(_grpo_state(tmp_path / "a", [1.0, 1.2, 1.1, 0.0, 0.0, 0.0, 1.6, 1.8, 1.7]))
    assert clear is not None and clear["window"] == 3 and clear["steps"] == 9
    assert clear["first_mean_reward"] == pytest.approx(1.1) and clear["last_mean_reward"] == pytest.approx(1.7)
    assert clear["rise_se"] == pytest.approx((2 * 0.01 / 3) ** 0.5) and clear["rose"]
    # rise 0.1 inside the noise (sd 0.2 per window: 2 standard errors = 0.327)
    noisy = grpo_reward_trend(_grpo_state(tmp_path / "b", [1.0, 1.4, 1.2, 9.0, 9.0, 9.0, 1.1, 1.5, 1.3]))
    assert noisy is not None and noisy["rise"] == pytest.approx(0.1) and not noisy["rose"]
    assert grpo_reward_trend(_grpo_state(tmp_path / "c", [1.0, 2.0], grad=0.0))["nonzero_grad_norm_steps"] == 0
    assert grpo_reward_trend(tmp_path / "missing") is None


def test_learning_checks_hand_worked() -> None:
    def fig(acc: float, fmt: float = 1.0) -> dict[str, Any]:
        return {"accuracy": acc, "chance": 0.5, "n": 100, "format_rate": fmt}  # sd 0.05

    models = {"base": {"video": fig(0.6, 0.0)}, "final": {"video": fig(0.66, 0.85)}, "blind": {"video": fig(0.6)}}
    row = learning_checks(models, "final", "blind", "base")["video"]
    assert row == {"sd": pytest.approx(0.05), "final_above_chance_3sd": True,
                   "final_format_rate_at_least_0.9": False, "blind_within_2sd_of_chance": True,
                   "base_at_most_chance_plus_2sd": True}  # fmt: skip
    models["final"]["video"] = fig(0.64)  # 0.64 < 0.5 + 3 * 0.05
    checks = learning_checks(models, "final", None, None, require_format=False)
    assert checks["video"] == {"sd": pytest.approx(0.05), "final_above_chance_3sd": False}
    assert checks["all_passed"] is False
    # the GRPO row joins the margins: every modality met, a reward inside the noise fails the whole
    models["final"]["video"] = fig(0.7)
    flat = {"rose": False, "nonzero_grad_norm_steps": 16}
    checks = learning_checks(models, "final", None, None, require_format=False, grpo=flat)
    assert checks["grpo"] == {"reward_rose_2se": False, "some_gradients_nonzero": True}
    assert checks["all_passed"] is False
    rose = {"rose": True, "nonzero_grad_norm_steps": 16}
    assert learning_checks(models, "final", None, None, require_format=False, grpo=rose)["all_passed"] is True


def _train_stage2(tmp: Path, model: Path, data: dict[str, Path], name: str) -> Path:
    """Stage 2 (direct answers, one epoch) through the real SFT entry point and the demo's recipe."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp / name
    cmd = [
        sys.executable, "-m", "spatialladder.training.sft", "--config", str(RECIPES / "stage2_spatial.yaml"),
        "--model_name_or_path", str(model), "--output_dir", str(out), "--data_files", str(data["spatial"]),
        "--media_root", str(data["media"]), "--save_strategy", "no", "--seed", str(SEED),
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def _evaluate(model: Path, bench: Path, eval_dir: Path, name: str, *, blind: bool = False) -> dict[str, Any]:
    """The real eval runner on the held-out miniatures, direct prompt (the rung trained here)."""
    from spatialladder.evaluation.runner import main as run_eval

    args = ["--model", f"{name}={model}", "--benchmarks", "SPBench-SI SPBench-MV VSI-Bench", "--data-root",
            str(bench), "--output-dir", str(eval_dir), "--prompt-kind", "direct", "--num-frames", "8",
            "--min-pixels", "3136", "--max-pixels", "12544", "--max-new-tokens", "4", "--batch-size", "20",
            "--no-report"]  # fmt: skip
    run_eval(args + (["--blind"] if blind else []))
    return modality_figures(eval_dir, name)


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
def _checks(figures: dict[str, Any], final: str, blind: str | None, base: str | None) -> dict[str, Any]:
    return learning_checks(figures, final, blind, base, require_format=False)


@pytest.fixture(scope="module")
def sighted(learning_setup: dict[str, Any]) -> dict[str, Any]:
    tmp = learning_setup["tmp"]
    data = write_learnable_dataset(tmp / "data", seed=SEED, per_modality=TRAIN_ROWS, grounding=0,
                                   coldstart_per_modality=0)  # fmt: skip
    trained = _train_stage2(tmp, learning_setup["model"], data, "trained")
    eval_dir = tmp / "eval"
    figures = {
        "base": _evaluate(learning_setup["model"], learning_setup["bench"], eval_dir, "base"),
        "trained": _evaluate(trained, learning_setup["bench"], eval_dir, "trained"),
        "trained-blind": _evaluate(trained, learning_setup["bench"], eval_dir, "trained-blind", blind=True),
    }
    (tmp / "figures.json").write_text(json.dumps(figures, indent=1))
    print(f"learning figures (seed {SEED}): {json.dumps(figures)}")
    return {"figures": figures, "eval_dir": eval_dir, "checks": _checks(figures, "trained", "trained-blind", "base")}


@pytest.fixture(scope="module")
def withheld(learning_setup: dict[str, Any]) -> dict[str, Any]:
    """The same rows, answers, recipe and seed with every image grey: what is learned is the answer prior."""
    tmp = learning_setup["tmp"]
    data = write_learnable_dataset(tmp / "grey", seed=SEED, per_modality=TRAIN_ROWS, grounding=0,
                                   coldstart_per_modality=0, blind_media=True)  # fmt: skip
    trained = _train_stage2(tmp, learning_setup["model"], data, "trained-on-grey")
    figures = {"trained-on-grey": _evaluate(trained, learning_setup["bench"], tmp / "eval", "trained-on-grey")}
    print(f"withheld-media figures (seed {SEED}): {json.dumps(figures)}")
    return {"figures": figures, "checks": _checks(figures, "trained-on-grey", None, None)}


@pytest.mark.slow
def test_trained_model_beats_chance_by_3sd_in_every_modality(sighted: dict[str, Any]) -> None:
    for modality in MODALITIES:
        fig = sighted["figures"]["trained"][modality]
        assert fig["n"] == N_HELDOUT and fig["chance"] == 0.5
        assert fig["accuracy"] >= fig["chance"] + 3 * binomial_sd(fig["chance"], fig["n"]), (modality, fig)
        assert sighted["checks"][modality]["final_above_chance_3sd"]


@pytest.mark.slow
def test_blind_eval_of_the_trained_model_stays_at_chance(sighted: dict[str, Any]) -> None:
    for modality in MODALITIES:
        fig = sighted["figures"]["trained-blind"][modality]
        assert abs(fig["accuracy"] - fig["chance"]) <= 2 * binomial_sd(fig["chance"], fig["n"]), (modality, fig)
        assert sighted["checks"][modality]["blind_within_2sd_of_chance"]
    # the blind run is recorded as such, so it can never resume into or mix with a sighted one
    run_config = json.loads((sighted["eval_dir"] / "trained-blind" / "VSI-Bench" / "run_config.json").read_text())
    assert run_config["blind"] is True
    assert "blind" not in json.loads((sighted["eval_dir"] / "trained" / "VSI-Bench" / "run_config.json").read_text())


@pytest.mark.slow
def test_base_model_is_not_above_chance(sighted: dict[str, Any]) -> None:
    for modality in MODALITIES:
        assert sighted["checks"][modality]["base_at_most_chance_plus_2sd"], sighted["figures"]["base"][modality]


@pytest.mark.slow
def test_training_on_grey_media_does_not_pass_the_sighted_margin(withheld: dict[str, Any]) -> None:
    """The same questions, answers and training, with the pixels withheld: the learning assertion
    above must fail in every modality (the model can only learn the balanced answer prior)."""
    for modality in MODALITIES:
        fig = withheld["figures"]["trained-on-grey"][modality]
        assert not withheld["checks"][modality]["final_above_chance_3sd"], (modality, fig)
        assert abs(fig["accuracy"] - fig["chance"]) <= 3 * binomial_sd(fig["chance"], fig["n"]), (modality, fig)
