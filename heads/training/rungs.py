"""What a successive-halving rung leaves for its survivors: the training state after the rung's last epoch.

A rung run is its full run's schedule cut after e_k epochs (heads.search.halving). At that point the loop saves
`rung_state.pt` in the run directory: every number the next epoch depends on (the method's weights and
buffers, e.g. PIRL's memory bank, and the generators it holds, e.g. PIRL's for sampled negatives; the
optimiser's momentum; the step counter; the epoch stream's and the labelled stream's generators; torch's
global generator; the epochs recorded and the best one so far). A
survivor at the next rung CONTINUES from it instead of training epochs 1..e_k again: its history, weights and
selection are the same as a run trained from scratch to the longer budget (the same operations in the same
order; tests/heads/test_rungs.py), and halving costs sum_k survivors_k x (e_k - e_(k-1)) epochs.

Between rungs the state waits in `<sweep>/rungs/<run name>.pt` (`set_aside`, called where heads.search.halving clears
a shorter run): a run that finds its file there (`load_for`, checked against its options) resumes from it
and removes it once it is written; one killed meanwhile finds it again. States of stopped runs are deleted
(`discard`): they never train again.

The state itself: `head_state` (what one head of heads.training.train's loop leaves after an epoch, whichever stepper
trained it) and `resume_heads` (put back into a fresh loop), from the parts below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pipeline.errors import PipelineError

from heads.spec import RunSpec
from heads.training.data import LabelledStream
from heads.methods.method import Method
from heads.training.step import Best, Head

STATE_FILE = "rung_state.pt"  # in a rung run's directory
RUNGS_DIR = "rungs"  # <sweep>/rungs/<run name>.pt between rungs
FORMAT = 3  # 2: the method's own generators too; 3: the epoch rule's per-image validation losses
IGNORED = ("stop_after_epoch",)  # the options a continued run may change


def wants_state(spec: RunSpec) -> bool:
    """Whether a run leaves a rung state: a halving rung (a budget cut short), not a cross-validation run."""
    return spec.stop_after is not None and spec.stop_after < spec.options.epochs and spec.fold is None


def rung_file(run_dir: Path) -> Path:
    """Where a run's state waits between rungs: <sweep>/rungs/<run name>.pt."""
    run_dir = Path(run_dir)
    return run_dir.parent.parent / RUNGS_DIR / f"{run_dir.name}.pt"


def comparable(spec: RunSpec) -> dict[str, str]:
    """The options a state must share with the run that continues it (as strings, for the check): its record
    (config.json's options) but the rung's epoch."""
    return {k: repr(v) for k, v in sorted(spec.record().items()) if k not in IGNORED}


def save(path: Path, state: dict[str, Any], spec: RunSpec) -> None:
    """Write a state (with the options it belongs to) under a temporary name, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "options": comparable(spec), **state}, tmp)
    os.replace(tmp, path)


def set_aside(run_dir: Path) -> None:
    """Move a finished rung run's state to rung_file(run_dir) (before the shorter run is removed)."""
    source = Path(run_dir) / STATE_FILE
    if source.is_file():
        target = rung_file(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)


def load_for(run_dir: Path, spec: RunSpec) -> dict[str, Any] | None:
    """The state a run continues from, or None (none waiting, or one this run cannot continue: it then
    trains from scratch). A state from other options, or as long as the run, is never used."""
    path = rung_file(run_dir)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # written under a temporary name and renamed, so damaged by something else: say so
        raise PipelineError(f"{path}: unreadable rung state ({type(e).__name__}: {str(e)[:120]}); delete it and rerun "
                            "(that run then trains from scratch)") from None
    want = spec.stop_after or spec.options.epochs
    if state.get("format") != FORMAT or state.get("options") != comparable(spec) or state["epoch"] >= want:
        return None
    return state


def resumes_for(jobs: list[tuple[RunSpec, Path]]) -> list[dict[str, Any]] | None:
    """Every run's state from an earlier rung, when all have one from the same epoch; else None: the runs train
    from scratch (a bank of heads cannot share one batch stream from different epochs)."""
    states = [load_for(run_dir, spec) for spec, run_dir in jobs]
    if any(s is None for s in states) or len({int(s["epoch"]) for s in states}) != 1:
        return None
    return states


def discard(run_dir: Path) -> None:
    """Delete a run's state wherever it is (a stopped run, or one that continued)."""
    for path in (Path(run_dir) / STATE_FILE, rung_file(run_dir)):
        path.unlink(missing_ok=True)


# --- the state of one head of the loop (heads.training.train), and its parts ---------------------------------------
def head_state(stepper: Any, h: Head, step: int, generator: torch.Generator, stream: LabelledStream | None,
               epoch: int) -> dict[str, Any]:
    """What head h's next rung continues from after `epoch`: streams, weights, momentum, history, best epoch."""
    scaler = getattr(stepper, "grad_scaler", None)
    return {**stream_state(step, generator, stream), "epoch": epoch, "history": [dict(r) for r in h.history],
            "best": best_state(h.best, epoch), "method": method_state(h.method), "momentum": stepper.momentum_buffers(h),
            "grad_scaler": scaler.state_dict() if scaler is not None else None}


def resume_heads(stepper: Any, resumes: list[dict[str, Any]], generator: torch.Generator,
                 stream: LabelledStream | None) -> tuple[int, int]:
    """Each head's momentum, history and best epoch from its state (its weights were restored before the stepper
    was built), the shared streams from the first; (the step counter, the first epoch to train)."""
    scaler = getattr(stepper, "grad_scaler", None)
    for h, state in zip(stepper.heads, resumes):
        stepper.set_momentum_buffers(h, state["momentum"])
        h.history, h.best = [dict(r) for r in state["history"]], restore_best(state["best"], h.method)
        if scaler is not None and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
    return restore_streams(resumes[0], generator, stream), int(resumes[0]["epoch"]) + 1


def momentum_of(method: Method, optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
    """SGD's momentum buffers of `method`'s parameters, by parameter name (those with a buffer yet)."""
    out = {}
    for name, p in method.named_parameters():
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            out[name] = buf.detach().cpu().clone()
    return out


def set_momentum(method: Method, optimizer: torch.optim.Optimizer, momentum: dict[str, Tensor]) -> None:
    """Put saved momentum buffers (momentum_of's) back into `optimizer` for `method`'s parameters."""
    params = dict(method.named_parameters())
    for name, buf in momentum.items():
        optimizer.state[params[name]]["momentum_buffer"] = buf.to(params[name].device).clone()


def stream_state(step: int, generator: torch.Generator, stream: LabelledStream | None) -> dict[str, Any]:
    """What the batches after `step` depend on: the step counter, the epoch stream's generator, the labelled
    stream's generator and position, torch's global generator (methods may draw from it)."""
    state: dict[str, Any] = {"step": step, "generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if stream is not None:
        state["stream"] = {"generator": stream.generator.get_state(), "order": stream.order.cpu(), "pos": stream.pos}
    return state


def restore_streams(state: dict[str, Any], generator: torch.Generator, stream: LabelledStream | None) -> int:
    """stream_state's numbers put back; the step counter."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if stream is not None:
        stream.generator.set_state(state["stream"]["generator"])
        stream.order, stream.pos = state["stream"]["order"].to(stream.rows.device), state["stream"]["pos"]
    return int(state["step"])


def method_generators(method: Method) -> dict[str, torch.Generator]:
    """Generators a method holds itself (e.g. PIRL's for sampled negatives), by module path and attribute."""
    return {f"{path}.{name}" if path else name: value for path, module in method.named_modules()
            for name, value in vars(module).items() if isinstance(value, torch.Generator)}


def method_state(method: Method) -> dict[str, Any]:
    """A method's weights and buffers (CPU copies) and its own generators' states."""
    return {"weights": {k: v.detach().cpu().clone() for k, v in method.state_dict().items()},
            "generators": {k: g.get_state() for k, g in method_generators(method).items()}}


def restore_method(method: Method, saved: dict[str, Any]) -> None:
    """method_state's numbers put back into a freshly built method."""
    method.load_state_dict(saved["weights"])
    generators = method_generators(method)
    for name, state in saved["generators"].items():
        generators[name].set_state(state)


def best_state(best: Best, epoch: int) -> dict[str, Any]:
    """The best epoch so far; its weights only when it is not `epoch` (the current weights are saved anyway)."""
    return {"epoch": best.epoch, "state": best.state if best.epoch != epoch else None, "val": best.val,
            "losses": [np.asarray(x) for x in best.losses]}


def restore_best(saved: dict[str, Any], method: Method) -> Best:
    """best_state's Best, its weights copied from `method` (already restored) when they were the current ones."""
    state = saved["state"]
    if state is None:
        state = {k: v.detach().clone() for k, v in method.state_dict().items()}
    return Best(saved["epoch"], state, saved["val"], [np.asarray(x) for x in saved["losses"]])
