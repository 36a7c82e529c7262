"""Analysis tools on hand-worked inputs: entropy clustering, attention shares, training-log curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from spatialladder.analysis import dynamics
from spatialladder.analysis.entropy import UNPARSABLE, cluster_answers, entropy, question_entropy, summarize

# ------------------------------------------------------------------------------ semantic entropy


def test_entropy_split_four_four_is_ln2() -> None:
    replies = ["<answer>A</answer>"] * 4 + ["<answer>B</answer>"] * 4
    row = question_entropy(replies, multiple_choice=True, letters="ABCD")
    assert row["clusters"] == {"A": 4, "B": 4}
    assert row["entropy"] == pytest.approx(math.log(2), abs=1e-12)


def test_entropy_all_equal_is_zero_and_all_distinct_is_lnk() -> None:
    same = ["<answer>C</answer>", "C", "The answer is C.", "(C)"] * 2  # one meaning, four spellings
    assert question_entropy(same, multiple_choice=True, letters="ABCD")["entropy"] == 0.0
    distinct = [f"<answer>{v}</answer>" for v in (1, 2, 3, 4, 5, 6, 7, 8)]
    row = question_entropy(distinct, multiple_choice=False)
    assert len(row["clusters"]) == 8
    assert row["entropy"] == pytest.approx(math.log(8), abs=1e-12)


def test_numbers_within_tolerance_merge() -> None:
    # 3.0, 3.1 and 3.14 are within 5 % of the cluster's anchor 3.0; 3.2 is 6.3 % away and starts a new one;
    # "three" is a number word (3.0); "2,000" -> 2000.
    replies = ["<answer>3.1</answer>", "3.0 m", "three", "3.14", "<answer>3.2</answer>", "2,000", "2050", "0"]
    clusters = cluster_answers(replies, multiple_choice=False, rel_tol=0.05)
    assert clusters == {"0": 1, "3": 4, "3.2": 1, "2000": 2}
    assert cluster_answers(replies, multiple_choice=False, rel_tol=0.0) == {
        "0": 1, "3": 2, "3.1": 1, "3.14": 1, "3.2": 1, "2000": 1, "2050": 1,
    }  # fmt: skip
    assert entropy([1, 4, 1, 2]) == pytest.approx(
        -(2 * 0.125 * math.log(0.125) + 0.5 * math.log(0.5) + 0.25 * math.log(0.25))
    )


def test_unparsable_replies_are_one_cluster() -> None:
    replies = [
        "no idea",
        "<answer></answer>",
        "a chair",
        "<answer>2</answer>",
        "<answer>2.05</answer>",
        "x",
        "?",
        "2",
    ]
    row = question_entropy(replies, multiple_choice=False)
    assert row["clusters"] == {UNPARSABLE: 5, "2": 3}
    assert row["n_unparsable"] == 5
    assert row["entropy"] == pytest.approx(-(5 / 8 * math.log(5 / 8) + 3 / 8 * math.log(3 / 8)))
    # An option letter outside the question's options is unparsable too ("E" with options A-D).
    assert cluster_answers(["E", "B", "b"], multiple_choice=True, letters="ABCD") == {UNPARSABLE: 1, "B": 2}


def test_summary_means_per_type() -> None:
    rows = [
        {"question_type": "t1", "k": 8, "n_unparsable": 0, "entropy": 0.0},
        {"question_type": "t1", "k": 8, "n_unparsable": 4, "entropy": 1.0},
        {"question_type": "t2", "k": 8, "n_unparsable": 0, "entropy": 2.0},
    ]
    s = summarize(rows)
    assert s["overall"] == {"n_questions": 3, "mean_entropy": 1.0, "unparsable_share": 4 / 24}
    assert s["by_type"]["t1"]["mean_entropy"] == 0.5 and s["by_type"]["t2"]["mean_entropy"] == 2.0


# ------------------------------------------------------------------------------ training dynamics

SFT_LOG = [{"loss": 3.0 - 0.1 * i, "learning_rate": 1e-3, "grad_norm": 1.0, "step": i} for i in range(1, 6)]
GRPO_LOG = [
    {"step": i, "loss": 0.0, "reward": 0.3 + 0.1 * i, "reward_std": 0.5, "rewards/format/mean": 0.1 * i,
     "rewards/accuracy/mean": 0.2 * i, "reward_std_within_group": 0.4 / i, "completions/mean_length": 40.0 - i,
     "kl": 0.001 * i}
    for i in range(1, 5)
] + [{"step": 4, "train_runtime": 12.0, "train_loss": 0.0}]  # fmt: skip


def _fake_run(root: Path) -> Path:
    for stage, log in (("stage1_grounding", SFT_LOG), ("coldstart", SFT_LOG[:3]), ("stage3_grpo", GRPO_LOG)):
        (root / stage).mkdir(parents=True)
        (root / stage / "trainer_state.json").write_text(
            json.dumps({"global_step": log[-1]["step"], "log_history": log})
        )
    # an unfinished stage: only a checkpoint's trainer state
    (root / "stage2_spatial" / "checkpoint-2").mkdir(parents=True)
    (root / "stage2_spatial" / "checkpoint-2" / "trainer_state.json").write_text(
        json.dumps({"global_step": 2, "log_history": SFT_LOG[:2]})
    )
    for name, overall in (("step-2", 30.0), ("final", 40.0)):
        d = root / "stage3_grpo" / dynamics.CHECKPOINT_EVAL_DIR / name / "VSI-Bench"
        d.mkdir(parents=True)
        (d / "scores.json").write_text(json.dumps({"overall": overall, "n": 5, "limit": 5}))
    return root


def test_dynamics_reads_every_stage_in_ladder_order(tmp_path: Path) -> None:
    data = dynamics.collect(_fake_run(tmp_path / "run"))
    assert list(data["stages"]) == ["stage1_grounding", "stage2_spatial", "coldstart", "stage3_grpo"]
    assert [s["kind"] for s in data["stages"].values()] == ["sft", "sft", "sft", "grpo"]
    assert data["stages"]["stage1_grounding"]["series"]["loss"]["values"] == [e["loss"] for e in SFT_LOG]
    assert data["stages"]["stage2_spatial"]["series"]["loss"]["steps"] == [1, 2]  # from checkpoint-2
    grpo = data["stages"]["stage3_grpo"]["series"]
    assert grpo["rewards/accuracy/mean"] == {"steps": [1, 2, 3, 4], "values": [0.2 * i for i in range(1, 5)]}
    assert grpo["reward_std_within_group"]["values"] == [0.4, 0.2, pytest.approx(0.4 / 3), 0.1]
    for key in ("rewards/format/mean", "completions/mean_length", "kl", "reward_std", "reward"):
        assert len(grpo[key]["steps"]) == 4, key
    scores = data["stages"]["stage3_grpo"]["checkpoint_scores"]
    assert [(r["step"], r["overall"]) for r in scores] == [(2, 30.0), (4, 40.0)]  # final = global step 4


def test_dynamics_command_writes_json_and_pngs(tmp_path: Path) -> None:
    from PIL import Image

    from spatialladder.analysis.__main__ import main

    run = _fake_run(tmp_path / "run")
    assert main(["dynamics", str(run)]) == 0
    out = run / "analysis" / "dynamics"
    saved = json.loads((out / "dynamics.json").read_text())
    assert set(saved["stages"]) == {"stage1_grounding", "stage2_spatial", "coldstart", "stage3_grpo"}
    for name in ("sft_loss.png", "grpo_dynamics.png", "checkpoint_scores.png"):
        with Image.open(out / name) as img:
            assert img.width > 300 and img.height > 200
    # one stage directly
    assert main(["dynamics", str(run / "stage3_grpo"), "--out", str(tmp_path / "one")]) == 0
    assert list(json.loads((tmp_path / "one" / "dynamics.json").read_text())["stages"]) == ["stage3_grpo"]


def test_dynamics_names_a_broken_log(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "trainer_state.json").write_text('{"log_history": [\n{"loss": 1,}]}')
    with pytest.raises(ValueError, match=r"trainer_state.json:2: not valid JSON"):
        dynamics.collect(tmp_path / "s")
    with pytest.raises(FileNotFoundError, match="no stage with a trainer_state.json"):
        dynamics.collect(tmp_path / "nothing")


# ------------------------------------------------------------------------------ attention share


def test_token_shares_on_a_hand_built_pattern() -> None:
    from spatialladder.analysis.attention import token_shares

    # 1 layer, 2 heads, 4 keys; keys 1 and 2 are visual; queries 2 and 3.
    attn = torch.zeros(1, 2, 4, 4)
    attn[0, 0, 2] = torch.tensor([0.5, 0.25, 0.25, 0.0])
    attn[0, 0, 3] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    attn[0, 1, 2] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    attn[0, 1, 3] = torch.tensor([0.25, 0.25, 0.25, 0.25])
    shares = token_shares(attn, [2, 3], torch.tensor([False, True, True, False]))
    assert shares["visual_share"] == [pytest.approx((0.5 + 0.5 + 1.0 + 0.5) / 4)]
    assert shares["text_share"] == [pytest.approx((0.5 + 0.5 + 0.0 + 0.5) / 4)]
    assert shares["total"] == [pytest.approx(1.0)]


def test_box_share_against_a_hand_built_pattern() -> None:
    from spatialladder.analysis.attention import box_coverage, box_share

    # 2 x 3 merged cells of 28 px; the box covers cell (0, 1) whole and the left half of cell (1, 2).
    cover = box_coverage((2, 3), [[28, 0, 56, 28], [56, 28, 70, 56]])
    assert cover.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 0.5]
    attn = torch.tensor([0.1, 0.4, 0.1, 0.1, 0.1, 0.2]) * 0.3  # 30 % of the mass is visual
    assert box_share(attn, cover) == pytest.approx((0.4 + 0.5 * 0.2) / 1.0)
    # overlapping boxes count once (a union), boxes are clipped to the frame
    assert box_coverage((1, 2), [[0, 0, 28, 28], [0, 0, 28, 28], [-10, -10, 14, 100]]).tolist() == [1.0, 0.0]
    assert box_share(torch.ones(4), box_coverage((2, 2), [[0, 0, 56, 28]])) == pytest.approx(0.5)


def test_attention_shares_on_the_tiny_model(
    tiny_model_dir: Path, synthetic_data_dir: Path, tmp_path: Path
) -> None:
    from spatialladder.analysis.attention import MERGED_CELL, attention_analysis, grounding_samples
    from spatialladder.geometry import ResizeRule

    settings = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28, "max_new_tokens": 4}
    rule = ResizeRule(
        factor=MERGED_CELL, min_pixels=settings["min_pixels"], max_pixels=settings["max_pixels"]
    )
    samples = grounding_samples(synthetic_data_dir / "spld_grounding_data.jsonl", None, rule, 2, 0)
    result = attention_analysis(str(tiny_model_dir), samples, tmp_path, overlays=1, answer_source="reference",
                                **settings)  # fmt: skip
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for sample, row in zip(samples, result["samples"]):
        w, h = rule.resized_size(*sample["images"][0].size)
        assert row["n_visual_tokens"] == (w // MERGED_CELL) * (h // MERGED_CELL)  # one image, its merged grid
        assert row["n_answer_tokens"] == len(tokenizer(sample["reference"])["input_ids"]) + 1  # + <|im_end|>
        n_layers = len(row["visual_share"])
        assert n_layers == 2
        for v, t, total in zip(row["visual_share"], row["text_share"], row["total"]):
            assert 0 < v < 1 and total == pytest.approx(1.0, abs=1e-5) and v + t == pytest.approx(total)
        assert all(0 <= b <= 1 for b in row["box_share"]) and 0 < row["box_chance"] < 1
    assert result["visual_share"] == pytest.approx(
        sum(sum(r["visual_share"]) / 2 for r in result["samples"]) / len(samples)
    )
    assert (tmp_path / "attention.json").is_file() and (tmp_path / "attention.png").is_file()
    assert len(list(tmp_path.glob("overlay_*.png"))) == 1


# ------------------------------------------------------------------------------ entropy on the tiny model

SMALL = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28, "max_new_tokens": 6, "num_frames": 4,
         "prompt_kind": "direct", "batch_size": 2}  # fmt: skip


def test_entropy_samples_k_replies_through_the_runner_and_resumes(
    tiny_model_dir: Path, synthetic_data_dir: Path, tmp_path: Path
) -> None:
    from spatialladder.analysis.entropy import semantic_entropy
    from spatialladder.analysis.questions import SpatialJsonl

    bench = SpatialJsonl(synthetic_data_dir / "spld_spatial_data.jsonl")
    docs = bench.load_docs(limit=3, seed=0)
    result = semantic_entropy(
        str(tiny_model_dir), bench, docs, tmp_path, model_name="tiny", num_samples=4, **SMALL
    )
    pred = tmp_path / "tiny" / bench.NAME / "predictions.rank0.jsonl"
    lines = [json.loads(x) for x in pred.read_text().splitlines()]
    assert len(lines) == 3 and all(
        len(x["samples"]) == 4 and x["prediction"] == x["samples"][0] for x in lines
    )
    assert any(len(set(x["samples"])) > 1 for x in lines)  # sampled (temperature 1), not 4 greedy copies
    assert lines[0]["generation"]["num_return_sequences"] == 4 and lines[0]["generation"]["do_sample"]
    # the saved entropy is the hand formula applied to the saved replies
    for line, row in zip(
        sorted(lines, key=lambda x: x["doc_id"]), sorted(result["per_question"], key=lambda r: r["doc_id"])
    ):
        doc = next(d for d in docs if d["doc_id"] == line["doc_id"])
        mcq = doc["options"] is not None
        assert row["entropy"] == pytest.approx(
            question_entropy(
                line["samples"],
                multiple_choice=mcq,
                letters="ABCDEFGH"[: len(doc["options"] or [])] or "ABCDEFGH",
            )["entropy"]
        )
    assert result["overall"]["n_questions"] == 3 and "one cluster" in result["unparsable_policy"]
    assert (tmp_path / "entropy.json").is_file() and (tmp_path / "entropy.png").is_file()

    # resume: a rerun generates nothing new and gives the same entropies
    before = pred.read_bytes()
    again = semantic_entropy(
        str(tiny_model_dir), bench, docs, tmp_path, model_name="tiny", num_samples=4, **SMALL
    )
    assert pred.read_bytes() == before and again["per_question"] == result["per_question"]
    # other settings in the same folder are refused, not mixed
    with pytest.raises(SystemExit, match="other settings"):
        semantic_entropy(
            str(tiny_model_dir), bench, docs, tmp_path, model_name="tiny", num_samples=5, **SMALL
        )


def test_entropy_rejects_bad_settings_before_loading(tmp_path: Path) -> None:
    from spatialladder.analysis.entropy import semantic_entropy

    with pytest.raises(SystemExit, match="num-samples must be >= 2"):
        semantic_entropy("/nonexistent", None, [{"doc_id": "1"}], tmp_path, num_samples=1)
    with pytest.raises(SystemExit, match="temperature must be > 0"):
        semantic_entropy("/nonexistent", None, [{"doc_id": "1"}], tmp_path, temperature=0.0)


def test_entropy_command_on_a_benchmark(tiny_model_dir: Path, tmp_path: Path) -> None:
    from spatialladder.analysis.__main__ import main
    from spatialladder.demo.benchmark_fixtures import make_fixtures

    make_fixtures(tmp_path / "bench", seed=1, per_type=1)
    argv = ["entropy", "--model", str(tiny_model_dir), "--benchmark", "CV-Bench", "--data-root", str(tmp_path / "bench"),
            "--limit", "2", "-k", "3", "--output-dir", str(tmp_path / "out")]  # fmt: skip
    for key, value in SMALL.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "out" / "entropy.json").read_text())
    assert saved["questions"] == "CV-Bench" and saved["overall"]["n_questions"] == 2
    assert all(r["answer_kind"] == "mcq" and r["k"] == 3 for r in saved["per_question"])
    assert set(saved["by_type"]) <= {"ADE20K", "COCO", "Omni3D"}  # CV-Bench's per-type field is `source`


def test_commands_name_bad_input_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spatialladder.analysis.__main__ import main

    with pytest.raises(SystemExit, match="no such directory"):
        main(["ladder", str(tmp_path / "absent")])
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit, match=r"spld_spatial_data.jsonl not found \(give --questions\)"):
        main(["ladder", str(tmp_path / "run")])
    bad = tmp_path / "spatial.jsonl"
    bad.write_text(json.dumps({"question_id": 1, "question": "q", "options": None, "answer": "2",
                               "image": ["x.jpg"], "question_type": "object count"}) + "\n")  # fmt: skip
    assert main(["entropy", "--model", "unused", "--questions", str(bad), "--media-root", str(tmp_path),
                 "--output-dir", str(tmp_path / "o")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"{bad}:1" in err and "data_type" in err  # file:line: field from the project's validator
    with pytest.raises(SystemExit, match="exactly one of --benchmark"):
        main(["entropy", "--model", "unused", "--output-dir", str(tmp_path / "o")])
