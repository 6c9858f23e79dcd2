"""OpenRLHF's own argument parser and prompt-dataset reader, for checking the hand-off without a GPU.

`openrlhf.cli.train_ppo_ray` cannot be imported here: it imports vLLM and DeepSpeed at the top, and
builds its parser under `if __name__ == "__main__":`. So the parser is rebuilt from the installed
source file with `ast`: the statements of that block up to `parser.parse_args()` (every
`add_argument` call as written) run as they are, then its own checks after parsing (the asserts
and adjustments before `train(args)`). `openrlhf.utils` and `openrlhf.datasets` import optional
packages too (pylatexenc, ...), so `hierarchize`, `blending_datasets` and `PromptDataset` come from
their files. The package is installed with --no-deps (scripts/test).
"""

import argparse
import ast
import importlib.util
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import openrlhf

OPENRLHF = Path(openrlhf.__file__).parent
TRAIN_PPO_RAY = OPENRLHF / "cli" / "train_ppo_ray.py"


def module_from_file(relative: str):
    path = OPENRLHF / relative
    spec = importlib.util.spec_from_file_location(f"openrlhf_file_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main_block() -> list[ast.stmt]:
    tree = ast.parse(TRAIN_PPO_RAY.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return node.body
    raise AssertionError(f"{TRAIN_PPO_RAY} has no __main__ block")


def _is_parse_args(node) -> bool:
    return isinstance(node, ast.Assign) and "parser.parse_args()" in ast.unparse(node.value)


def _run(statements, namespace):
    exec(compile(ast.Module(body=statements, type_ignores=[]), str(TRAIN_PPO_RAY), "exec"), namespace)


def ppo_ray_parser() -> argparse.ArgumentParser:
    body = _main_block()
    end = next(i for i, node in enumerate(body) if _is_parse_args(node))
    namespace = {"argparse": argparse, "datetime": datetime}
    _run(body[:end], namespace)
    return namespace["parser"]


def ppo_ray_args(argv: list[str]) -> SimpleNamespace:
    """argv (after `-m openrlhf.cli.train_ppo_ray`) parsed and checked as OpenRLHF does before training.
    A bad flag exits (SystemExit 2) and a failed check raises AssertionError, as in OpenRLHF."""
    body = _main_block()
    start = next(i for i, node in enumerate(body) if _is_parse_args(node))
    checks = [node for node in body[start + 1:]
              if not isinstance(node, ast.ImportFrom)                        # hierarchize: given below
              and "hierarchize" not in ast.unparse(node)
              and "use_ms" not in ast.unparse(node)                          # ModelScope's hub patch
              and ast.unparse(node) != "train(args)"]
    namespace = {"args": module_from_file("utils/config.py").hierarchize(ppo_ray_parser().parse_args(argv))}
    _run(checks, namespace)
    return namespace["args"]


def prompt_dataset(args: SimpleNamespace, tokenizer):
    """The prompts OpenRLHF's PPO trainer would read: its blending_datasets then PromptDataset."""
    strategy = SimpleNamespace(args=args, print=lambda *a, **k: None, is_rank_0=lambda: True)
    data = module_from_file("datasets/utils.py").blending_datasets(
        args.data.prompt_dataset, args.data.prompt_probs, strategy, args.train.seed,
        max_count=args.data.max_samples, dataset_split=args.data.prompt_split)
    reader = module_from_file("datasets/prompts_dataset.py").PromptDataset
    return reader(data, tokenizer, strategy, input_template=args.data.input_template)
