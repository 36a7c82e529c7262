"""Hand-worked cases for the extended benchmarks' rules (VSI-Bench-Debiased, MMSI-Bench, MindCube-Tiny).

Every expected value is worked out by hand from docs/benchmarks.md and the authors' code it cites.
"""

from __future__ import annotations

from typing import Any

import pytest

from spatialladder.evaluation.extended_rules import (
    EXTENDED_BENCHMARKS,
    MINDCUBE,
    MINDCUBE_RAW_QA_INSTRUCTION,
    MMSI,
    MMSI_QUESTION_TYPES,
    REFERENCE_SCORES,
    VSI_DEBIASED,
    mindcube_aggregate,
    mindcube_clean,
    mindcube_extract,
    mindcube_official_prompt,
    mindcube_score,
    mindcube_setting,
    mmsi_aggregate,
    mmsi_extract,
    mmsi_official_prompt,
    mmsi_question_type,
    mmsi_score,
    vsi_debiased_aggregate,
    vsi_debiased_score,
)
from spatialladder.evaluation.scoring import ScoringInputError

CAM_OBJ = "Positional Relationship (Cam.\u2013Obj.)"  # en dash, as the authors' metric names


def mmsi(pred: str, answer: str = "B", qtype: str = CAM_OBJ) -> float:
    return mmsi_score({"id": 7, "question_type": qtype, "answer": answer}, pred)


def mc(pred: str, gt: str = "B", item_id: str = "among_group002_q0_1_1") -> float:
    return mindcube_score({"id": item_id, "gt_answer": gt}, pred)


def test_names_and_reference_scores() -> None:
    assert EXTENDED_BENCHMARKS == ("VSI-Bench-Debiased", "MMSI-Bench", "MindCube-Tiny")
    assert len(MMSI_QUESTION_TYPES) == 11
    refs = {(r.benchmark, r.model): r.overall for r in REFERENCE_SCORES}
    assert refs[(VSI_DEBIASED, "Qwen2.5-VL-3B-Instruct")] == 22.7
    assert refs[(VSI_DEBIASED, "Qwen2.5-VL-7B-Instruct")] == 29.6
    assert refs[(MMSI, "Qwen2.5-VL-3B-Instruct")] == 26.5
    assert refs[(MINDCUBE, "Qwen2.5-VL-3B-Instruct")] == 37.81
    assert all(r.source for r in REFERENCE_SCORES)


# ------------------------------------------------------------------------------------------------
# VSI-Bench-Debiased: VSI-Bench's scorer, a pruned row refused
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("qtype", "gt", "pred", "expected"),
    [
        ("route_planning", "B", "B. turn left", 1.0),  # first space piece "B." -> "B"
        ("obj_appearance_order", "B", "b", 1.0),  # case-insensitive
        ("obj_appearance_order", "B", "(B)", 0.0),
        ("object_counting", "10", "12", 0.6),  # MRA: 0.2 is not <= 1 - 0.8 in float64
        ("object_size_estimation", "120", "120cm", 0.0),  # float("120cm") fails
        ("room_size_estimation", "20", "<answer>25</answer>", 0.6),  # policy 1, then MRA
    ],
)
def test_vsi_debiased_scores_as_vsi_bench(qtype: str, gt: str, pred: str, expected: float) -> None:
    record = {"id": 3, "question_type": qtype, "ground_truth": gt, "options": [], "pruned": False}
    assert vsi_debiased_score(record, pred) == expected


def test_vsi_debiased_refuses_pruned_rows() -> None:
    record = {"question_type": "route_planning", "ground_truth": "B", "pruned": True}
    with pytest.raises(ScoringInputError, match="pruned") as info:
        vsi_debiased_score(record, "B")
    assert info.value.field == "pruned"
    with pytest.raises(ScoringInputError, match="pruned"):
        vsi_debiased_aggregate([{**record, "score": 1.0}])
    assert vsi_debiased_score({"question_type": "route_planning", "ground_truth": "B"}, "B") == 1.0


def test_vsi_debiased_aggregation() -> None:
    scores: dict[str, list[float]] = {
        "object_rel_direction_easy": [1.0, 0.0],  # 0.5
        "object_rel_direction_hard": [1.0],  # 1.0 -> object_rel_direction = 0.75 (medium absent)
        "route_planning": [0.0, 1.0, 1.0, 1.0],  # 0.75
        "object_counting": [0.6, 0.6],
    }
    records = [{"question_type": t, "score": s, "pruned": False} for t, v in scores.items() for s in v]
    out = vsi_debiased_aggregate(records)
    assert out["benchmark"] == VSI_DEBIASED and out["scorer"] == "official" and out["n"] == 9
    assert out["per_type"]["object_rel_direction"] == pytest.approx(75.0)
    assert out["groups"]["MCQ"] == pytest.approx(75.0)  # mean of 0.75 (rel_direction) and 0.75
    assert out["groups"]["NQ"] == pytest.approx(60.0)
    assert out["overall"] == pytest.approx(70.0)  # (0.75 + 0.75 + 0.6) / 3 tasks; the sample mean is 6.2 / 9


# ------------------------------------------------------------------------------------------------
# MMSI-Bench
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", "B"),
        ("``C``", "C"),
        ("`D`", "D"),
        ("The answer is `A`.", "A"),
        ("{B}", "B"),  # README / lmms-eval step (the repo's VLMEvalKit copy lacks it)
        ("\\boxed{C}", "C"),
        ("The answer is (B).", "B"),
        ("A. chair", "A"),
        ("D, because", "D"),
        ("Answer: C", "C"),  # the A of "Answer" is not a word
        ("A chair", None),  # letter + whitespace + letter is skipped
        ("B is correct", None),
        ("I pick A\nbecause", None),  # \s includes the newline
        ("b", None),  # upper case only
        ("AB", None),
        ("chair", None),
        ("`code` then C", None),  # the backtick content replaces the reply
        ("{x} so B", None),  # ... and so does the braces content
        ("`` B", None),  # "``" is an empty backtick pair: the text becomes ""
        ("", None),
    ],
)
def test_mmsi_extract(reply: str, expected: str | None) -> None:
    assert mmsi_extract(reply) == expected


@pytest.mark.parametrize(
    ("pred", "answer", "expected"),
    [
        ("`B`", "B", 1.0),
        ("B", "b", 1.0),  # the ground truth is lower-cased, the extraction is not
        ("b", "B", 0.0),
        ("<think>`A` looks wrong</think><answer>`B`</answer>", "B", 1.0),  # policy 1 first
        ("<answer>B", "B", 0.0),  # unclosed tag: unparsable
        ("`A`", "B", 0.0),
        ("B", " B\n", 1.0),  # answer.lower().replace("\n", " ").strip()
    ],
)
def test_mmsi_score(pred: str, answer: str, expected: float) -> None:
    assert mmsi(pred, answer) == expected


def test_mmsi_validation_and_question_type_dash() -> None:
    hyphen = "Positional Relationship (Cam.-Obj.)"
    assert mmsi_question_type({"question_type": hyphen}) == CAM_OBJ
    assert mmsi("B", qtype=hyphen) == 1.0
    with pytest.raises(ScoringInputError, match="question_type"):
        mmsi("B", qtype="Positional Relationship")
    with pytest.raises(ScoringInputError, match="answer") as info:
        mmsi("B", answer="E")
    assert info.value.field == "answer"
    with pytest.raises(ScoringInputError, match="answer: missing field"):
        mmsi_score({"question_type": CAM_OBJ}, "B")
    with pytest.raises(ScoringInputError, match="prediction"):
        mmsi(None)  # type: ignore[arg-type]


def test_mmsi_prompt() -> None:
    question = "Which object is closer?\nOptions: A: sofa, B: lamp, C: desk, D: door\n"
    assert mmsi_official_prompt(question) == (
        "Which object is closer?\nOptions: A: sofa, B: lamp, C: desk, D: door\n"
        "Answer with the option's letter from the given choices directly. Enclose the option's letter within ``."
    )


def test_mmsi_aggregation_is_micro() -> None:
    records: list[dict[str, Any]] = [
        *({"question_type": CAM_OBJ, "score": s} for s in (1.0, 1.0, 1.0, 0.0)),  # 3/4
        {"question_type": "Positional Relationship (Cam.-Obj.)", "score": 0.0},  # hyphen: same bucket
        {"question_type": "MSR", "score": 1.0},  # 1/1
    ]
    out = mmsi_aggregate(records)
    assert out["benchmark"] == MMSI and out["n"] == 6
    assert out["per_type"] == {CAM_OBJ: pytest.approx(60.0), "MSR": pytest.approx(100.0)}
    assert out["overall"] == pytest.approx(400 / 6)  # 4 of 6 correct; the type mean would be 80
    assert out["groups"] == {}
    assert mmsi_aggregate([])["overall"] is None


# ------------------------------------------------------------------------------------------------
# MindCube-Tiny
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C", "C"),
        ("I think the TABLE. So A", "E"),  # stage 1: "E." inside "TABLE."
        ("A. Left B. Right C. Front", "C"),  # stage 1 returns the LAST "X."
        ("A\n<Answer> B", "B"),  # stage 2: after <Answer>; stage 3 alone would read A
        ("<Answer> my answer is C", "C"),
        ("A chair is on the left", "A"),  # stage 3: a letter starting the reply
        ("Answer: B", "B"),
        ("*C*", "C"),
        ('"B"', "B"),
        ("My answer is C and the answer is D", "C"),  # "my answer is" comes before "answer is"
        ("So it is B\nC is wrong", "C"),  # stage 3: C starts a line
        ("The answer is (B).", "B"),  # stage 4: first standalone letter of the last line with one
        ("D) Front", "D"),
        ("Option B fits\nmaybe", "B"),  # the last line has no letter: the line above
        ("b", None),
        ("Behind", None),
        ("", None),
    ],
)
def test_mindcube_extract(text: str, expected: str | None) -> None:
    assert mindcube_extract(text) == expected


def test_mindcube_cleaning_changes_the_reading() -> None:
    reply = "So it is B\nC is wrong"
    assert mindcube_clean(reply) == "So it is B C is wrong"
    assert mindcube_extract(mindcube_clean(reply)) == "B"  # one line now: no line starts with C
    assert mc(reply, gt="B") == 1.0 and mc(reply, gt="C") == 0.0
    assert mindcube_clean("  A.\n\n\tLeft  ") == "A. Left"


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ("<answer>A. Above</answer>", "A", 1.0),  # the authors' requested format
        ("<answer>A. Above", "A", 0.0),  # unclosed tag: unparsable (project policy 1)
        ("<Answer>C</Answer>", "C", 1.0),  # the tag match is case-insensitive
        ("B", "B", 1.0),
        ("b", "B", 0.0),
        ("The TABLE. B", "B", 0.0),  # reads E
    ],
)
def test_mindcube_score(pred: str, gt: str, expected: float) -> None:
    assert mc(pred, gt) == expected


def test_mindcube_validation() -> None:
    for bad in ("", "b", "AB", "F"):
        with pytest.raises(ScoringInputError, match="gt_answer"):
            mc("A", gt=bad)
    with pytest.raises(ScoringInputError, match="id: missing field"):
        mindcube_score({"gt_answer": "A"}, "A")


@pytest.mark.parametrize(
    ("item_id", "setting"),
    [
        ("among_group002_q0_1_1", "among"),
        ("around_group010_q1_2", "around"),
        ("aroundnew_test_q1_001", "around"),
        ("rotation_group000_q1_1", "rotation"),
        ("translation_group1_q0", "translation"),
        ("AMONG_x", "among"),  # lower-cased first
        ("among_rotation_x", "rotation"),  # rotation is tested before among
        ("x_around_rotation", "around"),  # around is tested first
        ("", "other"),
        ("scene12", "other"),
    ],
)
def test_mindcube_setting(item_id: str, setting: str) -> None:
    assert mindcube_setting(item_id) == setting


def test_mindcube_prompt() -> None:
    prompt = mindcube_official_prompt("Q? A. Left B. Right")
    assert prompt == MINDCUBE_RAW_QA_INSTRUCTION + "\n[Question]\nQ? A. Left B. Right"
    assert prompt.startswith("[Task]\nYour task is to analyze the spatial arrangement")
    assert "your response should **only** be '<answer>A. Above</answer>'.\n\n[Question]\n" in prompt


def test_mindcube_aggregation_excludes_translation() -> None:
    scores = {
        "among_g1_q0": 1.0,
        "among_g2_q0": 0.0,
        "aroundnew_g1_q0": 1.0,
        "rotation_g1_q0": 0.0,
        "translation_g1_q0": 1.0,
        "translation_g2_q0": 1.0,
    }
    out = mindcube_aggregate([{"id": i, "score": s} for i, s in scores.items()])
    assert out["benchmark"] == MINDCUBE and out["n"] == 6
    assert out["overall"] == pytest.approx(50.0)  # 2 of the 4 non-translation rows; with it, 4/6
    assert out["per_type"] == {
        "around": pytest.approx(100.0),
        "rotation": pytest.approx(0.0),
        "translation": pytest.approx(100.0),
        "among": pytest.approx(50.0),
    }
    assert list(out["per_type"]) == ["around", "rotation", "translation", "among"]  # the authors' order
    assert mindcube_aggregate([{"id": "translation_x", "score": 1.0}])["overall"] is None
    with pytest.raises(ScoringInputError, match="score"):
        mindcube_aggregate([{"id": "among_x", "score": 2.0}])
