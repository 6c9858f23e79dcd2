"""A stand-in for `python -m openrlhf.cli.train_ppo_ray` on the test's Ray head: it takes the hand-off's
real arguments through OpenRLHF's own parser and checks, reads the prompts through OpenRLHF's reader,
and saves a Hugging Face checkpoint (the policy's own weights, as a run of zero steps would) where
the real run saves its model, --ckpt.output_dir. No GPU, no training."""

import shutil
import sys

from transformers import AutoTokenizer

from tests.ray.openrlhf_source import ppo_ray_args, prompt_dataset


def main(argv):
    args = ppo_ray_args(argv)
    tokenizer = AutoTokenizer.from_pretrained(args.actor.model_name_or_path)
    prompts = prompt_dataset(args, tokenizer)
    print(f"stand-in: {len(prompts)} prompts, first label {prompts[0][2]!r}, reward from {args.reward.remote_url}",
          flush=True)
    shutil.copytree(args.actor.model_name_or_path, args.ckpt.output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("margin.json"))  # OpenRLHF writes no Margin marker
    print(f"stand-in: saved {args.ckpt.output_dir}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
