"""Semantic entropy: how spread a checkpoint's sampled answers are, by meaning.

K replies per question are sampled (temperature 1.0 by default) through the eval runner's shard loop
(sharded over ranks, resumable, media decoded once; ``num_return_sequences=K``). Each reply's answer
is extracted with the shared parser (:mod:`spatialladder.answers`: the last ``<answer>`` tag, else the
whole reply) and the replies are clustered by meaning:

* multiple choice: the same option letter;
* numeric: numbers within a relative tolerance (default 5 %, the error under which MRA's strictest
  threshold, θ = 0.95, still counts a number as equal) of the cluster's smallest member are one
  answer: sorted ascending, a number joins the current cluster when
  ``|x - anchor| <= rel_tol * max(|x|, |anchor|)`` (or both are 0), else it starts a new one;
* replies with no parsable answer form ONE cluster of their own (``<unparsable>``), so a model that
  never answers has entropy 0; the unparsable share is reported beside every entropy.

The semantic entropy of a question is ``-sum_c p_c ln p_c`` over the cluster frequencies ``p_c``
(natural log: 0 when all K agree, ln K when all differ); per question type and overall it is the mean
over questions.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spatialladder.answers import parse_choice_letter, parse_number

DEFAULT_REL_TOL = 0.05
UNPARSABLE = "<unparsable>"
UNPARSABLE_POLICY = "replies without a parsable answer form one cluster of their own ('<unparsable>')"


def cluster_answers(
    replies: Sequence[str],
    *,
    multiple_choice: bool,
    letters: str = "ABCDEFGH",
    rel_tol: float = DEFAULT_REL_TOL,
) -> dict[str, int]:
    """``{cluster label: number of replies}``; labels are option letters, numbers or ``<unparsable>``."""
    if rel_tol < 0:
        raise ValueError(f"rel_tol must be >= 0, got {rel_tol}")
    counts: Counter[str] = Counter()
    numbers = []
    for reply in replies:
        if multiple_choice:
            letter = parse_choice_letter(reply, letters)
            counts[letter if letter is not None else UNPARSABLE] += 1
        else:
            value = parse_number(reply)
            if value is None:
                counts[UNPARSABLE] += 1
            else:
                numbers.append(value)
    anchor: float | None = None
    for value in sorted(numbers):
        if anchor is None or not math.isclose(value, anchor, rel_tol=rel_tol, abs_tol=0.0):
            anchor = value
        counts[f"{anchor:g}"] += 1
    return dict(counts)


def entropy(counts: Sequence[int] | dict[str, int]) -> float:
    """Entropy (natural log) of the frequencies ``counts``; 0 for one cluster."""
    values = [c for c in (counts.values() if isinstance(counts, dict) else counts) if c > 0]
    total = sum(values)
    if total == 0:
        raise ValueError("entropy of an empty set of answers")
    return max(0.0, -sum(c / total * math.log(c / total) for c in values))


def question_entropy(
    replies: Sequence[str],
    *,
    multiple_choice: bool,
    letters: str = "ABCDEFGH",
    rel_tol: float = DEFAULT_REL_TOL,
) -> dict[str, Any]:
    clusters = cluster_answers(replies, multiple_choice=multiple_choice, letters=letters, rel_tol=rel_tol)
    return {
        "answer_kind": "mcq" if multiple_choice else "numeric",
        "k": len(replies),
        "clusters": dict(sorted(clusters.items(), key=lambda kv: (-kv[1], kv[0]))),
        "n_unparsable": clusters.get(UNPARSABLE, 0),
        "entropy": entropy(clusters),
    }


def summarize(per_question: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean entropy and unparsable share overall and per question type."""

    def stats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        replies = sum(r["k"] for r in rows)
        return {
            "n_questions": len(rows),
            "mean_entropy": sum(r["entropy"] for r in rows) / len(rows) if rows else None,
            "unparsable_share": sum(r["n_unparsable"] for r in rows) / replies if replies else None,
        }

    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in per_question:
        by_type.setdefault(row["question_type"], []).append(row)
    return {
        "overall": stats(per_question),
        "by_type": {t: stats(rows) for t, rows in sorted(by_type.items())},
    }


def sample_replies(
    model_path: str,
    model_name: str,
    bench: Any,
    docs: list[dict[str, Any]],
    output_dir: Path,
    **settings: Any,
) -> list[dict[str, Any]]:
    """K sampled replies per doc through the eval runner's shard loop; the merged prediction lines
    (each with ``samples``) on rank 0, [] on the others. ``settings`` are :class:`EvalConfig` fields."""
    import torch

    from spatialladder.evaluation.media import FrameCache
    from spatialladder.evaluation.ranks import rank_state
    from spatialladder.evaluation.runner import (
        EvalConfig,
        _check_run_config,
        _needs_generation,
        _run_shard,
        eval_media_config,
        find_missing_media,
        load_model,
        locked_output,
        merge_rank_files,
    )

    cfg = EvalConfig(output_dir=Path(output_dir), **settings).for_model(model_path)
    missing = find_missing_media(docs)
    if missing:
        listing = "\n".join(f"  doc {d}: {f}" for d, f in missing)
        raise SystemExit(f"{len(missing)} media file(s) missing:\n{listing}")
    state = rank_state()
    with locked_output(cfg.output_dir, state):
        bench_dir = cfg.output_dir / model_name / bench.NAME
        bench_dir.mkdir(parents=True, exist_ok=True)
        _check_run_config(bench_dir, cfg.run_signature(bench.NAME, model_path))
        if _needs_generation(docs, set(), bench_dir, state):
            torch.manual_seed(cfg.seed + state.process_index)
            model, processor = load_model(model_path, state.device, cfg.attn_implementation)
            media = FrameCache(None, resize=eval_media_config(cfg).resize_rule(processor))
            _run_shard(cfg, state, bench, docs, set(), bench_dir, model_name, model, processor, media)
            media.close()
            del model, processor
        state.wait_for_everyone()
        return merge_rank_files(bench_dir, [str(d["doc_id"]) for d in docs]) if state.is_main_process else []


def semantic_entropy(
    model_path: str,
    bench: Any,
    docs: list[dict[str, Any]],
    output_dir: Path,
    *,
    model_name: str | None = None,
    num_samples: int = 8,
    temperature: float = 1.0,
    rel_tol: float = DEFAULT_REL_TOL,
    **settings: Any,
) -> dict[str, Any] | None:
    """Sample, cluster and write ``OUTPUT/entropy.json`` (+ ``entropy.png``); the result on rank 0."""
    from spatialladder.analysis.questions import answer_kind, question_type
    from spatialladder.evaluation.runner import model_name_from_path

    if num_samples < 2:
        raise SystemExit(f"entropy: --num-samples must be >= 2 (got {num_samples}): one sample has no spread")
    if not temperature > 0:
        raise SystemExit(f"entropy: --temperature must be > 0 to sample (got {temperature})")
    if rel_tol < 0:
        raise SystemExit(f"entropy: --rel-tol must be >= 0 (got {rel_tol})")
    if not docs:
        raise SystemExit("entropy: no questions")
    model_name = model_name or model_name_from_path(model_path)
    records = sample_replies(model_path, model_name, bench, docs, output_dir, num_samples=num_samples,
                             temperature=temperature, **settings)  # fmt: skip
    if not records:
        return None  # not rank 0
    by_id = {str(d["doc_id"]): d for d in docs}
    per_question = []
    for rec in records:
        doc = by_id[str(rec["doc_id"])]
        mcq, letters = answer_kind(bench, doc)
        row = question_entropy(rec["samples"], multiple_choice=mcq, letters=letters, rel_tol=rel_tol)
        per_question.append({"doc_id": rec["doc_id"], "question_type": question_type(bench, doc), **row})
    result = {
        "model": model_name,
        "model_path": str(model_path),
        "questions": bench.NAME,
        "num_samples": num_samples,
        "temperature": temperature,
        "rel_tol": rel_tol,
        "unparsable_policy": UNPARSABLE_POLICY,
        "log": "natural",
        **summarize(per_question),
        "per_question": per_question,
    }
    from spatialladder.analysis.common import write_json

    write_json(Path(output_dir) / "entropy.json", result)
    plot(result, Path(output_dir) / "entropy.png")
    return result


def plot(result: dict[str, Any], path: Path) -> Path:
    """Mean semantic entropy per question type (bars) with ln K marked."""
    from spatialladder.analysis.common import pyplot

    plt = pyplot()
    types = list(result["by_type"])
    values = [result["by_type"][t]["mean_entropy"] for t in types]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(types) + 1.5), 3.4))
    ax.bar(range(len(types)), values, color="tab:purple")
    for i, t in enumerate(types):  # the unparsable share beside each bar: entropy 0 may mean "never answers"
        ax.text(
            i,
            values[i],
            f"{result['by_type'][t]['unparsable_share']:.0%} unp.",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.axhline(
        math.log(result["num_samples"]),
        color="gray",
        linestyle=":",
        label=f"ln K (K={result['num_samples']})",
    )
    ax.set_xticks(range(len(types)), types, rotation=30, ha="right", fontsize=8)
    overall = result["overall"]
    ax.set(ylabel="semantic entropy (nats)",
           title=f"{result['model']}: overall {overall['mean_entropy']:.3f}, "
                 f"unparsable {overall['unparsable_share']:.0%}")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args: Any) -> int:
    from spatialladder.analysis.questions import load_questions

    bench, docs, _ = load_questions(benchmark=args.benchmark, data_root=args.data_root, questions=args.questions,
                                    media_root=args.media_root, limit=args.limit, seed=args.seed)  # fmt: skip
    result = semantic_entropy(
        args.model,
        bench,
        docs,
        Path(args.output_dir),
        num_samples=args.num_samples,
        temperature=args.temperature,
        rel_tol=DEFAULT_REL_TOL if args.rel_tol is None else args.rel_tol,
        seed=args.seed,
        **args.eval_options,
    )
    if result is not None:
        o = result["overall"]
        print(f"semantic entropy {o['mean_entropy']:.4f} nats over {o['n_questions']} questions "
              f"(K={result['num_samples']}, unparsable {o['unparsable_share']:.1%})")  # fmt: skip
        for t, s in result["by_type"].items():
            print(f"  {t}: {s['mean_entropy']:.4f} (n={s['n_questions']})")
        print(f"wrote {Path(args.output_dir) / 'entropy.json'}")
    return 0
