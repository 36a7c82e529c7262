"""Visual-attention share: where the answer tokens look.

For each sample the model first answers (greedy, the eval runner's generation; or the reference
answer with ``answer_source="reference"``); then one forward pass over prompt + answer with eager
attention (``output_attentions=True``) gives, per layer, the attention of every answer token (the
reply and its ``<|im_end|>``) over all earlier keys. Per layer, averaged over heads and answer tokens:

* ``visual_share``: attention mass on the visual tokens (``<|image_pad|>`` / ``<|video_pad|>``);
* ``text_share``: the mass on every other key (system, prompt text, the answer so far); the two add up
  to the whole mass, 1 (softmax rows);
* ``box_share`` (grounding samples): of the visual mass on the first image, the share that falls inside
  the target boxes. Visual token n of an image is merged-patch cell (n // W, n % W) of its resized
  frame (the Qwen2.5-VL ``smart_resize`` grid, :mod:`spatialladder.geometry`; each cell 28 px), and a
  cell counts by the fraction of its area inside the union of the boxes. ``box_chance`` is that share
  under uniform attention over the cells (the boxes' area fraction): above it = object-centric.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

MERGED_CELL = 28  # px: 14 px patches merged 2x2 into one visual token


# ------------------------------------------------------------------------------ pure functions
def token_shares(
    attn: torch.Tensor, query_positions: Sequence[int], key_mask: torch.Tensor
) -> dict[str, list[float]]:
    """Per-layer mass of the queries' attention on the keys in ``key_mask`` and on the others.

    ``attn``: ``(layers, heads, L, L)`` attention probabilities; ``key_mask``: ``(L,)`` bool. Returns
    ``{"visual_share", "text_share", "total"}`` lists (one value per layer, mean over heads and queries).
    """
    rows = attn[:, :, list(query_positions), :].double()  # (layers, heads, Q, L)
    inside = rows[..., key_mask.bool()].sum(-1).mean(dim=(1, 2))
    outside = rows[..., ~key_mask.bool()].sum(-1).mean(dim=(1, 2))
    return {
        "visual_share": inside.tolist(),
        "text_share": outside.tolist(),
        "total": (inside + outside).tolist(),
    }


def box_coverage(
    grid_hw: tuple[int, int], boxes: Sequence[Sequence[float]], cell: int = MERGED_CELL
) -> torch.Tensor:
    """``(H*W,)``: the area fraction of each merged cell (row-major) inside the union of ``boxes``
    (``[x1, y1, x2, y2]`` in resized-frame pixels, clipped to the frame)."""
    h, w = grid_hw
    mask = torch.zeros(h * cell, w * cell, dtype=torch.float64)
    for x1, y1, x2, y2 in boxes:
        xa, xb = max(0, round(float(x1))), min(w * cell, round(float(x2)))
        ya, yb = max(0, round(float(y1))), min(h * cell, round(float(y2)))
        if xb > xa and yb > ya:
            mask[ya:yb, xa:xb] = 1.0
    return mask.view(h, cell, w, cell).mean(dim=(1, 3)).reshape(-1)


def box_share(visual_attn: torch.Tensor, coverage: torch.Tensor) -> float:
    """Share of the attention mass over the visual cells (``visual_attn``, ``(H*W,)``) inside the boxes."""
    total = float(visual_attn.double().sum())
    if total <= 0:
        raise ValueError("no attention mass on the visual tokens")
    return float((visual_attn.double() * coverage.double()).sum()) / total


# ------------------------------------------------------------------------------ samples
def grounding_samples(
    path: str | Path, media_root: str | Path | None, rule: Any, limit: int | None, seed: int
) -> list[dict]:
    """Grounding rows as samples: ``id``, ``prompt``, ``reference`` (the boxes as a fenced json reply),
    ``images``, ``boxes`` (in resized-frame pixels)."""
    from spatialladder.analysis.questions import default_media_root
    from spatialladder.data import load_records
    from spatialladder.evaluation.benchmarks.base import seeded_subset
    from spatialladder.media_inputs import load_rgb
    from spatialladder.training.conversations import ConversationSettings, grounding_boxes, record_to_sample

    path = Path(path)
    records = load_records(path, media_root or default_media_root(path), kind="grounding", check_media=True)
    records = seeded_subset(records, limit, seed)
    settings = ConversationSettings(prompt_kind="grounding", resize_rule=rule)
    out = []
    for rec in records:
        sample = record_to_sample(rec, settings)
        out.append({"id": str(rec.question_id), "question_type": "grounding", "prompt": sample["prompt"],
                    "reference": sample["target"], "images": [load_rgb(p) for p in sample["images"]], "video": None,
                    "boxes": [b["bbox_2d"] for b in grounding_boxes(rec, rule)], "source": rec.source})  # fmt: skip
    return out


def question_samples(
    bench: Any, docs: list[dict], prompt_kind: str, num_frames: int, media: Any
) -> list[dict]:
    """Benchmark or spatial-jsonl docs (no boxes) as samples."""
    from spatialladder.analysis.questions import question_type

    out = []
    for doc in docs:
        messages = bench.build_request(doc, prompt_kind=prompt_kind, num_frames=num_frames, media=media)
        content = messages[-1]["content"]
        images = [p["image"] for p in content if p.get("type") == "image"]
        video = next((p["video"] for p in content if p.get("type") == "video"), None)
        text = next(p["text"] for p in content if p.get("type") == "text")
        reference = doc.get("answer", doc.get("ground_truth"))
        out.append({"id": str(doc["doc_id"]), "question_type": question_type(bench, doc), "prompt": text,
                    "reference": None if reference is None else str(reference), "images": images, "video": video,
                    "boxes": None, "source": str(doc["doc_id"])})  # fmt: skip
    return out


# ------------------------------------------------------------------------------ model
def _encode(
    processor: Any, messages: list[dict], cfg: Any, *, generation_prompt: bool
) -> dict[str, torch.Tensor]:
    """One conversation as a batch of one, encoded as the eval runner encodes it."""
    from spatialladder.evaluation.runner import eval_media_config
    from spatialladder.media_inputs import collate_encoded, encode_messages, pad_token_id

    encoded = encode_messages(
        processor, messages, config=eval_media_config(cfg), add_generation_prompt=generation_prompt
    )
    return collate_encoded([encoded], pad_token_id=pad_token_id(processor), padding_side="left")


def analyse_sample(
    model: Any, processor: Any, sample: dict, cfg: Any, *, answer_source: str
) -> dict[str, Any]:
    """Shares for one sample, plus the head/layer/answer-averaged attention on the first image's cells."""
    from spatialladder.evaluation.runner import _generation_config, generate_batch
    from spatialladder.geometry import ResizeRule
    from spatialladder.prompts import build_messages

    prompt_messages = build_messages(sample["prompt"], sample["images"], video=sample["video"])
    if answer_source == "generated":
        answer = generate_batch(model, processor, [prompt_messages], _generation_config(model, cfg), cfg)[0]
    elif sample["reference"] is None:
        raise ValueError(f"{sample['source']}: no reference answer (use answer_source='generated')")
    else:
        answer = sample["reference"]
    prompt_len = _encode(processor, prompt_messages, cfg, generation_prompt=True)["input_ids"].shape[1]
    full_messages = build_messages(sample["prompt"], sample["images"], video=sample["video"], answer=answer)
    inputs = {
        k: v.to(model.device)
        for k, v in _encode(processor, full_messages, cfg, generation_prompt=False).items()
    }
    ids = inputs["input_ids"][0]
    end_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = (ids == end_id).nonzero().flatten().tolist()
    last = ends[-1] if ends and ends[-1] >= prompt_len else len(ids) - 1
    queries = list(range(prompt_len, last + 1))  # the reply and its <|im_end|>
    visual_ids = [i for i in (model.config.image_token_id, model.config.video_token_id) if i is not None]
    visual = torch.isin(ids, torch.tensor(visual_ids, device=ids.device))
    with torch.inference_mode():
        out = model(**inputs, output_attentions=True)
    if not out.attentions or out.attentions[0] is None:
        raise RuntimeError("the model returned no attentions: load it with attn_implementation='eager'")
    attn = torch.stack([a[0] for a in out.attentions]).float().cpu()  # (layers, heads, L, L)
    shares = token_shares(attn, queries, visual.cpu())
    row = {"id": sample["id"], "question_type": sample["question_type"], "answer": answer,
           "n_answer_tokens": len(queries), "n_visual_tokens": int(visual.sum()), **shares}  # fmt: skip
    heat = None
    if sample["images"]:
        t, hp, wp = (int(v) for v in inputs["image_grid_thw"][0])
        merge = int(getattr(processor.image_processor, "merge_size", 2))
        grid = (hp // merge, wp // merge)
        width, height = sample["images"][0].size
        resized = ResizeRule(
            factor=MERGED_CELL, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels
        ).resized_size(width, height)
        if resized != (grid[1] * MERGED_CELL, grid[0] * MERGED_CELL):
            raise RuntimeError(
                f"{sample['source']}: resize rule gives {resized}, the processor's grid {grid}"
            )
        first = visual.nonzero().flatten()[: t * grid[0] * grid[1]].cpu()
        cells = attn[:, :, queries][..., first].double().mean(dim=(1, 2))  # (layers, cells)
        heat = cells.mean(0).view(t, *grid)[0]
        if sample["boxes"]:
            cover = box_coverage(grid, sample["boxes"])
            row["box_share"] = [box_share(c.view(t, -1)[0], cover) for c in cells]
            row["box_chance"] = float(cover.mean())
            row["boxes"] = sample["boxes"]
        row["resized"] = list(resized)
    return {**row, "_heat": heat}


def overlay(sample: dict, row: dict, heat: torch.Tensor, path: Path) -> Path:
    """The first image (resized as the model saw it) with the answer's mean attention per cell and the boxes."""
    from spatialladder.analysis.common import pyplot

    plt = pyplot()
    w, h = row["resized"]
    image = sample["images"][0].resize((w, h))
    fig, ax = plt.subplots(figsize=(4.2, 4.2 * h / w + 0.6))
    ax.imshow(image)
    ax.imshow(heat.numpy(), extent=(0, w, h, 0), cmap="jet", alpha=0.45, interpolation="nearest")
    for x1, y1, x2, y2 in row.get("boxes") or []:
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="white", linewidth=2))
    title = f"{row['id']}: visual {sum(row['visual_share']) / len(row['visual_share']):.2f}"
    if "box_share" in row:
        title += (
            f", in box {sum(row['box_share']) / len(row['box_share']):.2f} (chance {row['box_chance']:.2f})"
        )
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-layer means over samples and their layer means."""
    n_layers = len(rows[0]["visual_share"]) if rows else 0
    boxed = [r for r in rows if "box_share" in r]
    per_layer = [_mean([r["visual_share"][i] for r in rows]) for i in range(n_layers)]
    out: dict[str, Any] = {
        "n_samples": len(rows),
        "visual_share_per_layer": per_layer,
        "visual_share": _mean(per_layer),
    }
    if boxed:
        box_layers = [_mean([r["box_share"][i] for r in boxed]) for i in range(n_layers)]
        out.update({"n_box_samples": len(boxed), "box_share_per_layer": box_layers, "box_share": _mean(box_layers),
                    "box_chance": _mean([r["box_chance"] for r in boxed])})  # fmt: skip
    return out


def attention_analysis(
    model_path: str,
    samples: list[dict],
    output_dir: Path,
    *,
    model_name: str | None = None,
    overlays: int = 4,
    answer_source: str = "generated",
    **settings: Any,
) -> dict[str, Any]:
    """Analyse ``samples`` with one checkpoint; writes ``attention.json``, ``attention.png`` and overlays."""
    from tqdm.auto import tqdm

    from spatialladder.analysis.common import write_json
    from spatialladder.evaluation.runner import EvalConfig, load_model, model_name_from_path

    if answer_source not in ("generated", "reference"):
        raise ValueError(f"answer_source must be 'generated' or 'reference', got {answer_source!r}")
    if not samples:
        raise SystemExit("attention: no samples")
    cfg = EvalConfig(output_dir=Path(output_dir), **settings)
    model_name = model_name or model_name_from_path(model_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, processor = load_model(model_path, device, "eager")  # eager: the only kernel that returns weights
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, sample in enumerate(tqdm(samples, desc=f"{model_name} | attention", dynamic_ncols=True)):
        row = analyse_sample(model, processor, sample, cfg, answer_source=answer_source)
        heat = row.pop("_heat")
        if i < overlays and heat is not None:
            row["overlay"] = str(
                overlay(sample, row, heat, output_dir / f"overlay_{i:02d}_{sample['id']}.png")
            )
        rows.append(row)
    result = {"model": model_name, "model_path": str(model_path), "answer_source": answer_source,
              **summarize(rows), "samples": rows}  # fmt: skip
    write_json(output_dir / "attention.json", result)
    plot(result, output_dir / "attention.png")
    return result


def plot(result: dict[str, Any], path: Path) -> Path:
    from spatialladder.analysis.common import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    layers = range(len(result["visual_share_per_layer"]))
    ax.plot(layers, result["visual_share_per_layer"], marker="o", label="visual share")
    if "box_share_per_layer" in result:
        ax.plot(layers, result["box_share_per_layer"], marker="s", label="in-box share of visual")
        ax.axhline(result["box_chance"], color="gray", linestyle=":", label="in-box chance")
    ax.set(
        xlabel="layer",
        ylabel="share of attention",
        ylim=(0, 1),
        title=f"{result['model']} ({result['n_samples']} samples)",
    )
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args: Any) -> int:
    from spatialladder.analysis.questions import load_questions
    from spatialladder.evaluation.media import FrameCache
    from spatialladder.geometry import ResizeRule

    opts = dict(args.eval_options)
    rule = ResizeRule(factor=MERGED_CELL, min_pixels=opts["min_pixels"], max_pixels=opts["max_pixels"])
    if args.grounding:
        samples = grounding_samples(args.grounding, args.media_root, rule, args.limit, args.seed)
    else:
        bench, docs, _ = load_questions(benchmark=args.benchmark, data_root=args.data_root, questions=args.questions,
                                        media_root=args.media_root, limit=args.limit, seed=args.seed)  # fmt: skip
        media = FrameCache(None, resize=rule)
        samples = question_samples(bench, docs, opts["prompt_kind"], opts["num_frames"], media)
    result = attention_analysis(args.model, samples, Path(args.output_dir), overlays=args.overlays,
                                answer_source=args.answer_source, **opts)  # fmt: skip
    line = f"visual share {result['visual_share']:.4f} (per layer {[round(v, 4) for v in result['visual_share_per_layer']]})"
    if "box_share" in result:
        line += f"; in-box share {result['box_share']:.4f} (chance {result['box_chance']:.4f})"
    print(line)
    print(f"wrote {Path(args.output_dir) / 'attention.json'}")
    return 0
