"""Shared fixtures: one tiny Qwen2.5-VL checkpoint and one synthetic dataset per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two xdist workers on a 2-core machine: more intra-op threads per worker only thrash
    # (a matmul measured 6x slower with 2 threads each). Launched subprocesses are unaffected.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spatialladder.demo.tiny_model import build_tiny_qwen25vl

    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny") / "tiny-qwen25vl")


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spatialladder.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("synthetic") / "spatialladder-synth"
    generate_dataset(out, seed=0)
    return out


@pytest.fixture(scope="session")
def eval_fixtures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Miniatures of every registered benchmark (seed 0, two questions per type); read-only for tests."""
    from spatialladder.demo.benchmark_fixtures import make_fixtures

    root = tmp_path_factory.mktemp("eval-fixtures")
    make_fixtures(root, seed=0, per_type=2)
    return root


@pytest.fixture
def one_torch_thread():
    """Tiny-model CPU steps run fastest on one thread (pytest -n 2 already uses both cores)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _assert_nested_equal(a, b, where: str) -> None:
    import numpy as np
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_nested_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_nested_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _check_resumed_equals_uninterrupted(
    uninterrupted: Path, resumed: Path, initial: Path, final_step: int
) -> dict[str, float]:
    """A resumed run's end state equals an uninterrupted run's bit for bit, and the weights moved.

    Compares every tensor of the final ``model.safetensors`` (exactly: fp32 CPU training is
    deterministic), then the final checkpoint's optimizer, scheduler and every rank's RNG state.
    Returns the figures for the test's printout.
    """
    import torch
    from safetensors.torch import load_file

    ref, res, init = (load_file(d / "model.safetensors") for d in (uninterrupted, resumed, initial))
    assert ref.keys() == res.keys() == init.keys()
    diff, worst = max(((ref[k].double() - res[k].double()).abs().max().item(), k) for k in ref)
    moved = [k for k in ref if not torch.equal(ref[k], init[k].to(ref[k].dtype))]
    largest_move = max((ref[k].double() - init[k].double()).abs().max().item() for k in ref)
    assert diff == 0.0, f"resumed run differs from the uninterrupted one by {diff:.3g} in {worst}"
    assert len(moved) >= 0.9 * len(ref) and largest_move > 1e-4, (len(moved), len(ref), largest_move)
    ck_ref, ck_res = uninterrupted / f"checkpoint-{final_step}", resumed / f"checkpoint-{final_step}"
    names = sorted(p.name for p in ck_ref.glob("rng_state*.pth")) + ["optimizer.pt", "scheduler.pt"]
    assert sorted(p.name for p in ck_res.glob("rng_state*.pth")) == names[:-2] and names[:-2]
    for name in names:
        _assert_nested_equal(
            torch.load(ck_ref / name, weights_only=False), torch.load(ck_res / name, weights_only=False), name
        )
    return {"tensors": len(ref), "moved": len(moved), "max_abs_diff": diff, "largest_move": largest_move}


@pytest.fixture(scope="session")
def check_resumed_equals_uninterrupted():
    """:func:`_check_resumed_equals_uninterrupted` for the SFT and GRPO resume tests."""
    return _check_resumed_equals_uninterrupted
