"""Hand-worked cases for the benchmark scorers (official quirks, aggregation, spatialladder scorer, CLI).

Every expected number below is worked out by hand from benchmarks.md and the official code it cites;
MRA values use the ten thresholds 0.50, 0.55, ..., 0.95 compared with ``<=`` (float64).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spatialladder.evaluation.scoring import (
    BENCHMARKS,
    QUESTION_TYPES,
    REQUIRED_FIELDS,
    SCORERS,
    ScoringInputError,
    aggregate,
    is_numeric_type,
    score_sample,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "eval" / "score.py"


def vsi(qtype: str, gt: str, pred: str, scorer: str = "official", bench: str = "VSI-Bench") -> float:
    return score_sample(bench, {"question_type": qtype, "ground_truth": gt, "options": []}, pred, scorer)


def cv(
    pred: str,
    answer: str = "(C)",
    dim: str = "2D",
    choices: list[str] | None = None,
    scorer: str = "official",
) -> float:
    source = "Omni3D" if dim == "3D" else "COCO"
    task = "Depth" if dim == "3D" else "Count"
    record = {
        "answer": answer,
        "source": source,
        "type": dim,
        "task": task,
        "choices": choices or ["a", "b", "c", "d"],
    }
    return score_sample("CV-Bench", record, pred, scorer)


def spar(task: str, answer: str, pred: str, scorer: str = "official") -> float:
    return score_sample("SPAR-Bench", {"task": task, "answer": answer}, pred, scorer)


CAM_DIR = "Camera perspective - Relative Direction"
CAM_ORI = "Camera perspective - Object View Orientation"
PER_ORI = "Person perspective - Object View Orientation"
PER_DIR = "Person perspective - Relative Direction"
PER_SIM = "Person perspective - Scene Simulation Relative Direction"


def vs(pred: str, answer: str = "A. left", qtype: str = CAM_DIR, scorer: str = "official") -> float:
    return score_sample("ViewSpatial-Bench", {"question_type": qtype, "answer": answer}, pred, scorer)


# ------------------------------------------------------------------------------------------------
# API surface
# ------------------------------------------------------------------------------------------------
def test_api_constants() -> None:
    assert BENCHMARKS == (
        "VSI-Bench",
        "SPBench-SI",
        "SPBench-MV",
        "CV-Bench",
        "SPAR-Bench",
        "ViewSpatial-Bench",
        "VSI-Bench-Debiased",
        "MMSI-Bench",
        "MindCube-Tiny",
    )
    assert SCORERS == ("official", "spatialladder")
    assert set(REQUIRED_FIELDS) == set(BENCHMARKS) == set(QUESTION_TYPES)
    assert REQUIRED_FIELDS["CV-Bench"] == ("answer", "source", "type", "task", "choices")
    assert REQUIRED_FIELDS["SPAR-Bench"] == ("task", "answer")
    assert len(QUESTION_TYPES["VSI-Bench"]) == 10
    assert len(QUESTION_TYPES["SPBench-SI"]) == 4 and len(QUESTION_TYPES["SPBench-MV"]) == 5
    assert len(QUESTION_TYPES["SPAR-Bench"]) == 20
    assert len(QUESTION_TYPES["ViewSpatial-Bench"]) == 5


def test_is_numeric_type() -> None:
    assert is_numeric_type("VSI-Bench", "object_counting")
    assert not is_numeric_type("VSI-Bench", "object_rel_direction_easy")
    assert not is_numeric_type("VSI-Bench", "object_rel_direction")  # the combined task
    assert is_numeric_type("SPBench-MV", "object_counting")
    assert is_numeric_type("SPAR-Bench", "distance_prediction_oc_mv")
    assert is_numeric_type("SPAR-Bench", "view_change_infer")  # MRA-scored
    assert not is_numeric_type("SPAR-Bench", "position_matching")
    assert not is_numeric_type("CV-Bench", "Omni3D") and not is_numeric_type("CV-Bench", "Depth")
    assert not is_numeric_type("ViewSpatial-Bench", PER_SIM)
    with pytest.raises(ScoringInputError):
        is_numeric_type("SPBench-SI", "object_counting")  # MV only


# ------------------------------------------------------------------------------------------------
# MRA edges and policy 1 (answer tags)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("gt", "pred", "expected"),
    [
        ("10", "12", 0.6),  # relative error 0.2 is NOT <= 1 - 0.8 in float64
        ("2.0", "2.4", 0.7),  # ... while 0.2 here is <= 1 - 0.8
        ("3.5", "3.5", 1.0),
        ("10", "100", 0.0),
        ("20", "25", 0.6),  # 0.25 <= 1 - theta for theta <= 0.75
        ("0", "0.3", 0.5),  # target 0: absolute error 0.3 (policy 3)
        ("0", "0", 1.0),
    ],
)
def test_mra_edges(gt: str, pred: str, expected: float) -> None:
    assert vsi("object_counting", gt, pred) == expected


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("<think>hmm</think><answer> B </answer>", 1.0),
        ("<answer>B", 0.0),  # unclosed: unparsable
        ("<think>B</think><answer>B", 0.0),
        ("<answer>A</answer> no wait <answer>B</answer>", 1.0),  # the last complete tag
        ("<answer>B</answer> then <answer>A</answer>", 0.0),
        ("B", 1.0),  # no tag: the reply as written
        (" B", 0.0),  # ... not stripped: the first space piece is ""
    ],
)
def test_answer_tag_policy(pred: str, expected: float) -> None:
    assert vsi("route_planning", "B", pred) == expected


def test_unclosed_tag_is_wrong_even_where_empty_is_right() -> None:
    assert spar("position_matching", "B", "") == 1.0  # SPAR quirk: "" is a substring of anything
    assert spar("position_matching", "B", "<answer>") == 0.0
    assert spar("position_matching", "B", "<answer></answer>") == 1.0  # empty content -> "" -> quirk


# ------------------------------------------------------------------------------------------------
# VSI-Bench and SPBench (official)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("qtype", "gt", "pred", "expected"),
    [
        ("object_rel_direction_easy", "A", "A", 1.0),
        ("object_rel_direction_medium", "C", "c.", 1.0),
        ("object_rel_direction_hard", "D", "B", 0.0),
        ("object_rel_distance", "B", "b", 1.0),  # case-insensitive
        ("route_planning", "B", "B. turn left", 1.0),  # first piece "B." -> "B"
        ("obj_appearance_order", "B", "B.", 1.0),
        ("obj_appearance_order", "B", "B.\n", 0.0),  # rstrip('.') runs before strip(): "B." stays
        ("obj_appearance_order", "B", "(B)", 0.0),
        ("object_counting", "2", "two", 0.0),  # float("two") fails
        ("object_counting", "4", "4 chairs", 1.0),
        ("object_abs_distance", "3.5", "3.5 meters", 1.0),
        ("object_abs_distance", "3.5", "3.5. ", 1.0),  # trailing period dropped
        ("object_size_estimation", "120", "120cm", 0.0),  # float("120cm") fails
        ("object_size_estimation", "120", "about 120", 0.0),  # first piece is "about"
        ("room_size_estimation", "20", "25", 0.6),
    ],
)
def test_vsi_official(qtype: str, gt: str, pred: str, expected: float) -> None:
    assert vsi(qtype, gt, pred) == expected


@pytest.mark.parametrize(
    ("bench", "qtype", "gt", "pred", "expected"),
    [
        ("SPBench-SI", "object_abs_distance", "2.0", "2.4", 0.7),
        ("SPBench-SI", "object_size_estimation", "10", "12", 0.6),
        ("SPBench-SI", "object_rel_distance", "A", "a", 1.0),
        ("SPBench-SI", "object_rel_direction", "C", "<answer>C</answer>", 1.0),
        ("SPBench-MV", "object_counting", "3", "3", 1.0),
        ("SPBench-MV", "object_abs_distance", "2.0", "2.4 m", 0.7),
        ("SPBench-MV", "object_size_estimation", "50", "50cm", 0.0),
        ("SPBench-MV", "object_rel_distance", "B", "A", 0.0),
        ("SPBench-MV", "object_rel_direction", "D", "D.", 1.0),
    ],
)
def test_spbench_official(bench: str, qtype: str, gt: str, pred: str, expected: float) -> None:
    assert vsi(qtype, gt, pred, bench=bench) == expected


def test_vsi_like_validation() -> None:
    with pytest.raises(ScoringInputError, match="question_type") as info:
        vsi("object_rel_direction", "A", "A")  # VSI splits it by difficulty
    assert info.value.field == "question_type" and isinstance(info.value, ValueError)
    with pytest.raises(ScoringInputError, match="question_type"):
        vsi("object_counting", "3", "3", bench="SPBench-SI")
    with pytest.raises(ScoringInputError, match="ground_truth: missing field"):
        score_sample("VSI-Bench", {"question_type": "object_counting"}, "3")
    with pytest.raises(ScoringInputError, match="ground_truth"):
        vsi("object_counting", "many", "3")
    with pytest.raises(ScoringInputError, match="prediction"):
        score_sample("VSI-Bench", {"question_type": "object_counting", "ground_truth": "3"}, None)  # type: ignore[arg-type]
    with pytest.raises(ScoringInputError, match="benchmark"):
        score_sample("VSI", {}, "3")
    with pytest.raises(ScoringInputError, match="scorer"):
        vsi("object_counting", "3", "3", scorer="lmms-eval")
    # options may be missing or None
    assert (
        score_sample(
            "VSI-Bench", {"question_type": "object_counting", "ground_truth": "3", "options": None}, "3"
        )
        == 1.0
    )


# ------------------------------------------------------------------------------------------------
# CV-Bench (official)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("The answer is (C).", 1.0),
        ("Answer: C", 1.0),
        ("C", 1.0),
        ("(c)", 1.0),
        ("C. three", 1.0),
        ("Cats", 1.0),  # more than one character left: keep the first ("c")
        ("Dogs", 0.0),
        ("the answer is: (c)", 0.0),  # keywords applied in turn: ": (c)" is left, first char ":"
        ("", 0.0),
    ],
)
def test_cvbench_2d(pred: str, expected: float) -> None:
    assert cv(pred) == expected


def test_cvbench_3d_option_text() -> None:
    # 3D also accepts the option text - compared with the ONE character the extraction keeps
    # (omni_test.py), so only a one-character option text can match this way.
    assert cv("y", answer="(B)", dim="3D", choices=["x", "y"]) == 1.0
    assert cv("y", answer="(B)", dim="2D", choices=["x", "y"]) == 0.0
    assert cv("sink", answer="(A)", dim="3D", choices=["sink", "bottle"]) == 0.0
    assert cv("The answer is B,", answer="(B)", dim="3D", choices=["sink", "bottle"]) == 1.0
    assert cv("(A):", answer="(A)", dim="3D", choices=["sink", "bottle"]) == 1.0


def test_cvbench_tasks_and_validation() -> None:
    for task, source, dim in (
        ("Count", "ADE20K", "2D"),
        ("Relation", "COCO", "2D"),
        ("Depth", "Omni3D", "3D"),
        ("Distance", "Omni3D", "3D"),
    ):
        record = {"answer": "(A)", "source": source, "type": dim, "task": task, "choices": ["p", "q"]}
        assert score_sample("CV-Bench", record, "A") == 1.0
        assert score_sample("CV-Bench", record, "B") == 0.0
    with pytest.raises(ScoringInputError, match="source"):
        score_sample(
            "CV-Bench",
            {"answer": "(A)", "source": "KITTI", "type": "3D", "task": "Depth", "choices": ["p"]},
            "A",
        )
    with pytest.raises(ScoringInputError, match="choices: missing field"):
        score_sample("CV-Bench", {"answer": "(A)", "source": "COCO", "type": "2D", "task": "Count"}, "A")
    with pytest.raises(ScoringInputError, match="answer"):
        cv("A", answer="A")
    with pytest.raises(ScoringInputError, match="choices"):
        cv("C", answer="(C)", dim="3D", choices=["p", "q"])


def test_cvbench_overall_is_source_weighted() -> None:
    scores = {"ADE20K": [1, 1], "COCO": [0], "Omni3D": [1, 0, 0]}
    records = [{"source": s, "score": float(x)} for s, xs in scores.items() for x in xs]
    out = aggregate("CV-Bench", records)
    assert out["n"] == 6
    assert out["per_type"] == {"ADE20K": 100.0, "COCO": 0.0, "Omni3D": pytest.approx(100 / 3)}
    assert out["groups"] == {"2D": 50.0, "3D": pytest.approx(100 / 3)}
    assert out["overall"] == pytest.approx((50 + 100 / 3) / 2)  # 41.67, while the sample mean is 50
    assert out["overall"] != pytest.approx(50.0)
    only_3d = aggregate("CV-Bench", [{"source": "Omni3D", "score": 1.0}])
    assert only_3d["groups"] == {"3D": 100.0} and only_3d["overall"] == 100.0


# ------------------------------------------------------------------------------------------------
# SPAR-Bench (official)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("B", 1.0),
        ("b", 1.0),
        ("", 1.0),  # empty reply: "" in "b" (official quirk)
        ("(B)", 0.0),  # first char "(" (official quirk)
        ("B. chair", 1.0),  # first character equals the target
        ("chair", 0.0),
        ("The answer is B", 0.0),
    ],
)
def test_spar_mcq_quirks(pred: str, expected: float) -> None:
    assert spar("obj_spatial_relation_oo", "B", pred) == expected


@pytest.mark.parametrize(
    ("task", "answer", "pred", "expected"),
    [
        ("depth_prediction_oc", "2.0", "about 1.5 or 2.0 m", 0.6),  # first number 1.5
        ("depth_prediction_oc_mv", "2.0", "about 1.5 or 2.0 m", 1.0),  # _mv: last number
        ("distance_prediction_oo", "2.0", "maybe 5, final 2.0", 0.0),
        ("distance_prediction_oo_mv", "2.0", "maybe 5, final 2.0", 1.0),
        ("depth_prediction_oo", "2", "-2", 1.0),  # no sign in the pattern
        ("depth_prediction_oo", "0", "0.3", 0.5),  # target 0: absolute error
        ("depth_prediction_oc", "0", "none", 0.0),  # no number: worst case 0 (NOT a prediction of 0)
        ("depth_prediction_oc_mv", "0", "none", 0.0),  # no number: -1, |-1 - 0| = 1 -> 0
        ("distance_prediction_oc", "10", "12", 0.6),
        ("distance_prediction_oc_mv", "2.0", "2.4", 0.7),
    ],
)
def test_spar_numeric(task: str, answer: str, pred: str, expected: float) -> None:
    assert spar(task, answer, pred) == expected


def test_spar_view_change_infer() -> None:
    gt = "move_right:0.5,rotate_left:30"
    assert spar("view_change_infer", gt, gt) == 1.0
    # components (right-left, up-down, fwd-back, rot r-l, rot u-d): gt (0.5, 0, 0, -30, 0),
    # pred (0.4, 0.1, 0, -30, 0). MRA(gt, pred) with the PREDICTION as denominator:
    # |0.5-0.4|/0.4 = 0.25 -> 0.6; |0-0.1|/0.1 = 1 -> 0 (unswapped: |0.1-0| abs error -> 0.9);
    # 0 vs 0 -> 1; -30 vs -30 -> 1; 0 vs 0 -> 1. Mean = 3.6 / 5 = 0.72.
    assert spar("view_change_infer", gt, "move_right:0.4,rotate_left:30,move_up:0.1") == pytest.approx(0.72)
    assert spar("view_change_infer", gt, "<answer>move_right:0.5,rotate_left:30</answer>") == 1.0
    assert spar("view_change_infer", gt, "move_right 0.5, rotate_left 30") == 0.0  # malformed item
    assert spar("view_change_infer", gt, "move_right:0.5,rotate_left:thirty") == 0.0
    assert spar("view_change_infer", gt, "move_right:0.5,rotate_left:30,") == 0.0  # empty item
    # nothing predicted for rotation: rot r-l pred 0 vs gt -30 -> |-30 - 0| abs error -> 0
    assert spar("view_change_infer", gt, "move_right:0.5") == pytest.approx(0.8)
    with pytest.raises(ScoringInputError, match="answer"):
        spar("view_change_infer", "turn around", gt)


@pytest.mark.parametrize("task", QUESTION_TYPES["SPAR-Bench"])
def test_spar_every_task(task: str) -> None:
    if task == "view_change_infer":
        answer, right, wrong = "move_forward:1.0", "move_forward:1.0", "move_forward 1.0"
    elif is_numeric_type("SPAR-Bench", task):
        answer, right, wrong = "1.5", "1.5", "9"
    else:
        answer, right, wrong = "C", "C", "A"
    assert spar(task, answer, right) == 1.0
    assert spar(task, answer, wrong) == 0.0


def _spar_records() -> list[dict[str, object]]:
    scores = {
        "depth_prediction_oc": [1.0, 0.0, 0.0, 0.0],  # 0.25, n=4   (Low)
        "distance_prediction_oo": [1.0],  # 1.0, n=1               (Low)
        "position_matching": [1.0],  # 1.0, n=1                    (Medium)
        "view_change_infer": [0.5, 0.5],  # 0.5, n=2               (official: no level)
        "obj_spatial_relation_oo": [0.0, 1.0],  # 0.5, n=2         (High)
    }
    return [{"task": t, "score": x} for t, xs in scores.items() for x in xs]


def test_spar_aggregation_official() -> None:
    out = aggregate("SPAR-Bench", _spar_records())
    assert out["n"] == 10
    assert out["per_type"]["view_change_infer"] == 50.0
    assert out["groups"] == {"Low": pytest.approx(62.5), "Medium": 100.0, "High": 50.0}
    # unweighted over the 5 tasks present, view_change_infer included: 3.25 / 5
    assert out["overall"] == pytest.approx(65.0)


# ------------------------------------------------------------------------------------------------
# ViewSpatial-Bench (official)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pred", "answer", "expected"),
    [
        ("A", "A. left", 1.0),
        ("b", "B. right", 1.0),  # case-insensitive
        ("Let me think.\nB is wrong.\nSo the answer is C", "C. back", 1.0),  # last line only
        ("C\nOn reflection, B", "C. back", 0.0),
        ("It is a chair on the left", "A. left", 1.0),  # the article "a" reads as A (kept)
        ("It is a chair on the left", "B. left", 0.0),
        ("Option (D).", "D. front", 1.0),
        ("none of them", "A. left", 0.0),
        ("<answer>D</answer>", "D. front", 1.0),
    ],
)
def test_viewspatial_official(pred: str, answer: str, expected: float) -> None:
    assert vs(pred, answer) == expected


@pytest.mark.parametrize("qtype", [CAM_DIR, CAM_ORI, PER_ORI, PER_DIR, PER_SIM])
def test_viewspatial_every_type(qtype: str) -> None:
    assert vs("B", "B. front", qtype) == 1.0
    assert vs("C", "B. front", qtype) == 0.0
    assert vs("B", "B. front", qtype.replace(" - ", " \u2013 ")) == 1.0  # en dash as in benchmarks.md


def test_viewspatial_aggregation() -> None:
    scores = {CAM_DIR: [1.0, 1.0, 0.0], CAM_ORI: [1.0], PER_DIR: [0.0]}
    records = [{"question_type": t, "score": x} for t, xs in scores.items() for x in xs]
    out = aggregate("ViewSpatial-Bench", records)
    assert out["overall"] == pytest.approx(60.0)  # 3 / 5 correct
    assert out["groups"] == {"camera": 75.0, "person": 0.0}
    assert out["per_type"][CAM_DIR] == pytest.approx(200 / 3)
    assert set(out["per_type"]) == {CAM_DIR, CAM_ORI, PER_DIR}
    with pytest.raises(ScoringInputError, match="question_type"):
        aggregate("ViewSpatial-Bench", [{"question_type": "Camera", "score": 1.0}])


# ------------------------------------------------------------------------------------------------
# VSI / SPBench aggregation
# ------------------------------------------------------------------------------------------------
def test_vsi_aggregation_rel_direction_and_missing_types() -> None:
    scores = {
        "object_rel_direction_easy": [1.0, 0.0],  # 0.5
        "object_rel_direction_medium": [1.0],  # 1.0
        "object_rel_direction_hard": [0.0],  # 0.0
        "route_planning": [1.0],
        "object_counting": [0.6],
        "object_abs_distance": [0.7, 0.3],  # 0.5
    }
    records = [{"question_type": t, "score": x} for t, xs in scores.items() for x in xs]
    out = aggregate("VSI-Bench", records)
    assert out["n"] == 8
    assert out["per_type"] == {
        "object_rel_direction_easy": 50.0,
        "object_rel_direction_medium": 100.0,
        "object_rel_direction_hard": 0.0,
        "route_planning": 100.0,
        "object_counting": pytest.approx(60.0),
        "object_abs_distance": 50.0,
        "object_rel_direction": 50.0,  # mean of the three difficulty means, not of the 4 samples
    }
    # 4 tasks present (rel_direction 0.5, route 1.0, counting 0.6, abs 0.5); missing ones skipped
    assert out["overall"] == pytest.approx(65.0)
    assert out["groups"] == {"NQ": pytest.approx(55.0), "MCQ": pytest.approx(75.0)}


def test_vsi_rel_direction_averages_present_difficulties_only() -> None:
    records = [
        {"question_type": "object_rel_direction_easy", "score": 1.0},
        {"question_type": "object_rel_direction_hard", "score": 0.0},
        {"question_type": "object_rel_direction_hard", "score": 0.0},
    ]
    out = aggregate("VSI-Bench", records)
    assert out["per_type"]["object_rel_direction"] == 50.0
    assert out["overall"] == 50.0 and out["groups"] == {"MCQ": 50.0}


def test_spbench_aggregation() -> None:
    scores = {
        "object_abs_distance": [0.5],
        "object_size_estimation": [0.7],
        "object_rel_distance": [1.0],
        "object_rel_direction": [0.0, 1.0],
    }
    records = [{"question_type": t, "score": x} for t, xs in scores.items() for x in xs]
    out = aggregate("SPBench-SI", records)
    assert out["groups"] == {"NQ": pytest.approx(60.0), "MCQ": 75.0}
    assert out["overall"] == pytest.approx(67.5)  # (0.5 + 0.7 + 1.0 + 0.5) / 4


def test_aggregate_edge_cases() -> None:
    empty = aggregate("VSI-Bench", [])
    assert empty == {
        "benchmark": "VSI-Bench",
        "scorer": "official",
        "n": 0,
        "overall": None,
        "per_type": {},
        "groups": {},
    }
    with pytest.raises(ScoringInputError, match="score"):
        aggregate("VSI-Bench", [{"question_type": "route_planning", "score": 1.5}])
    with pytest.raises(ScoringInputError, match="score: missing field"):
        aggregate("VSI-Bench", [{"question_type": "route_planning"}])
    with pytest.raises(ScoringInputError, match="task"):
        aggregate("SPAR-Bench", [{"task": "nope", "score": 1.0}])


# ------------------------------------------------------------------------------------------------
# spatialladder scorer (the release's rules)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("gt", "pred", "official", "spatialladder"),
    [
        ("1", "a chair", 0.0, 1.0),  # the article "a" -> 1
        ("1", "an apple", 0.0, 1.0),  # "an" -> 1
        ("3", "3 chairs and a table", 1.0, 0.0),  # a number word wins over digits: "a" -> 1
        ("2", "two", 0.0, 1.0),
        ("21", "twenty-one", 0.0, 0.0),  # "one" is tried before "twenty" -> 1
        ("3.5", "about 3.5 m", 0.0, 1.0),  # digits anywhere when no number word
        ("10", "12", 0.6, 0.6),  # same MRA
        ("0", "0.3", 0.5, 0.5),  # target 0: absolute error (the release would divide by zero)
        ("3", "<answer>3</answer><answer>9</answer>", 0.0, 1.0),  # release: FIRST complete tag
        ("3", "<answer>3", 0.0, 0.0),  # release: "None"
    ],
)
def test_spatialladder_numbers(gt: str, pred: str, official: float, spatialladder: float) -> None:
    assert vsi("object_counting", gt, pred) == official
    assert vsi("object_counting", gt, pred, scorer="spatialladder") == spatialladder


@pytest.mark.parametrize(
    ("pred", "official", "spatialladder"),
    [
        ("B", 1.0, 1.0),
        ("B. sofa", 1.0, 1.0),
        ("b", 1.0, 1.0),  # fallback: the whole reply "b" equals "B" case-insensitively
        ("b.", 1.0, 0.0),  # lower-case piece is no letter match -> whole reply "b." != "b"
        ("Answer: B", 0.0, 1.0),  # "Answer:" removed, first piece "" -> whole reply "B"
        ("B is right", 1.0, 1.0),
        ("  B", 0.0, 1.0),  # whole stripped reply
    ],
)
def test_spatialladder_mcq_whole_reply_fallback(pred: str, official: float, spatialladder: float) -> None:
    assert vsi("route_planning", "B", pred) == official
    assert vsi("route_planning", "B", pred, scorer="spatialladder") == spatialladder


def test_spatialladder_cvbench_and_viewspatial_first_token() -> None:
    assert cv("The answer is (C).", scorer="spatialladder") == 0.0  # whole reply != "C"
    assert cv("(c). three", scorer="spatialladder") == 1.0
    assert cv("[C]", scorer="spatialladder") == 1.0
    assert cv("Cats", scorer="spatialladder") == 0.0  # official: 1.0 (first character)
    assert vs("A. left", scorer="spatialladder") == 1.0
    assert vs("a", scorer="spatialladder") == 0.0  # upper-case only; official: 1.0
    assert vs("a", scorer="official") == 1.0
    assert vs("It is a chair", scorer="spatialladder") == 0.0


def test_spatialladder_spar() -> None:
    assert spar("position_matching", "B", "(B)", scorer="spatialladder") == 0.0  # same quirks
    assert spar("position_matching", "B", "", scorer="spatialladder") == 1.0
    assert (
        spar("position_matching", "B", "<answer>B</answer><answer>A</answer>", scorer="spatialladder") == 1.0
    )
    assert spar("position_matching", "B", "<answer>B", scorer="spatialladder") == 0.0  # "None"
    out = aggregate("SPAR-Bench", _spar_records(), scorer="spatialladder")
    assert out["scorer"] == "spatialladder"
    # sample-weighted levels; view_change_infer counts in Medium
    assert out["groups"]["Low"] == pytest.approx(40.0)  # (0.25*4 + 1*1) / 5
    assert out["groups"]["Medium"] == pytest.approx(200 / 3)  # (1*1 + 0.5*2) / 3
    assert out["groups"]["High"] == pytest.approx(50.0)
    assert out["overall"] == pytest.approx(50.0)  # sample-weighted: 5 / 10
    assert out["per_type"] == aggregate("SPAR-Bench", _spar_records())["per_type"]


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


VSI_ROWS = [
    {
        "id": 1,
        "question_type": "route_planning",
        "ground_truth": "B",
        "options": ["A. x", "B. y"],
        "prediction": "B",
    },
    {
        "id": 2,
        "question_type": "route_planning",
        "ground_truth": "A",
        "options": ["A. x", "B. y"],
        "prediction": "<answer>B</answer>",
    },
    {"id": 3, "question_type": "object_counting", "ground_truth": "2.0", "options": [], "prediction": "2.4"},
]


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def test_cli_prints_exact_json(tmp_path: Path) -> None:
    preds = _write_jsonl(tmp_path / "preds.jsonl", VSI_ROWS)
    per_sample = tmp_path / "out" / "per_sample.jsonl"
    proc = _run_cli("--benchmark", "VSI-Bench", "--predictions", str(preds), "--per-sample", str(per_sample))
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    assert json.loads(proc.stdout) == {
        "benchmark": "VSI-Bench",
        "scorer": "official",
        "n": 3,
        "overall": 60.0,
        "route_planning": 50.0,
        "object_counting": 70.0,
        "NQ": 70.0,
        "MCQ": 50.0,
        "per_type": {"route_planning": 50.0, "object_counting": 70.0},
        "groups": {"NQ": 70.0, "MCQ": 50.0},
    }
    written = [json.loads(line) for line in per_sample.read_text().splitlines()]
    assert written == [{**row, "score": score} for row, score in zip(VSI_ROWS, [1.0, 0.0, 0.7])]


def test_cli_spatialladder_scorer_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import score as score_cli  # eval/score.py
    finally:
        sys.path.remove(str(SCRIPT.parent))
    rows = [{"question_type": "object_counting", "ground_truth": "1", "prediction": "a chair"}]
    preds = _write_jsonl(tmp_path / "p.jsonl", [*rows, ""])  # trailing blank line is ignored
    assert (
        score_cli.main(["--benchmark", "VSI-Bench", "--predictions", str(preds), "--scorer", "spatialladder"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert (out["scorer"], out["n"], out["overall"], out["groups"]) == (
        "spatialladder",
        1,
        100.0,
        {"NQ": 100.0},
    )
    assert score_cli.main(["--benchmark", "VSI-Bench", "--predictions", str(preds)]) == 0
    assert json.loads(capsys.readouterr().out)["overall"] == 0.0


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([VSI_ROWS[0], "{not json"], ":2: json: "),
        (
            [VSI_ROWS[0], {"question_type": "route_planning", "prediction": "B"}],
            ":2: ground_truth: missing field",
        ),
        (
            [{"question_type": "counting", "ground_truth": "3", "prediction": "3"}],
            ":1: question_type: unknown",
        ),
        ([{"question_type": "route_planning", "ground_truth": "B"}], ":1: prediction: missing field"),
        ([[1, 2]], ":1: json: expected a JSON object"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path: Path, rows: list[object], expected: str) -> None:
    preds = _write_jsonl(tmp_path / "bad.jsonl", rows)
    per_sample = tmp_path / "per_sample.jsonl"
    proc = _run_cli("--benchmark", "VSI-Bench", "--predictions", str(preds), "--per-sample", str(per_sample))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"{preds}{expected}"), proc.stderr
    assert not per_sample.exists()
