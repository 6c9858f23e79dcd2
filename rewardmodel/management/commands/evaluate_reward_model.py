import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from margin.cli import ProgressBar
from modelruntime.modelstore import ModelStoreError
from rewardmodel.data import NoTrainingData
from rewardmodel.evaluation import report, score_pairs
from rewardmodel.services import (
    evaluation_pairs,
    reward_model_evaluate,
    reward_model_resolve,
    reward_models_compare,
    reward_models_evaluate_all,
)


class Command(BaseCommand):
    help = (
        "Accuracy of a reward model on a project's held-out pairs: overall, per strength level, "
        "per safety bin, calibration. Registered models get the results stored per batch. "
        "With --against, two reward models are compared on the same pairs; with --all, every "
        "reward model of the project's objective is evaluated on every batch's held-out part. "
        "Every evaluation shows the longer-wins / shorter-wins baselines and accuracy on the "
        "length-balanced subsets. With --format rewardbench FILE, a local RewardBench file "
        "(prompt, chosen, rejected, subset; JSONL or a JSON array) is scored per subset and section."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="registered reward model name or checkpoint path")
        parser.add_argument("--all", action="store_true", help="evaluate every registered reward model")
        parser.add_argument("--project", help="project whose held-out pairs to score")
        parser.add_argument("--format", dest="data_format", choices=("heldout", "rewardbench"), default="heldout",
                            help="heldout: the project's held-out pairs; rewardbench: the rows of FILE")
        parser.add_argument("file", nargs="?", help="with --format rewardbench: the local RewardBench JSON/JSONL file")
        parser.add_argument("--against", help="a second reward model to compare on the same pairs")
        parser.add_argument("--json", dest="json_path", help="also write the results to this JSON file")

    def handle(self, *args, model, all, project, against, json_path, data_format, file, **options):
        if bool(model) == bool(all):
            raise CommandError("Give either --model NAME or --all.")
        if json_path and not Path(json_path).resolve().parent.is_dir():  # before the slow part
            raise CommandError(f"--json: the folder {Path(json_path).resolve().parent} does not exist.")
        if data_format == "rewardbench":
            return self._rewardbench(model, file, json_path)
        if file:
            raise CommandError(f"{file}: a file is read only with --format rewardbench.")
        if not project:
            raise CommandError("Give --project NAME (whose held-out pairs to score).")
        try:
            project_row = Project.objects.get(name=project)
        except Project.DoesNotExist:
            raise CommandError(f"Unknown project {project!r}.") from None
        bar = ProgressBar("scoring pairs", self.stderr._out)
        try:
            if all:
                result = reward_models_evaluate_all(project_row)
            elif against:
                result = reward_models_compare(model, against, project_row, on_progress=bar)
            else:
                result = self._evaluate(model, project_row, bar)
        except (ModelStoreError, NoTrainingData, ValueError) as problem:
            raise CommandError(str(problem)) from problem
        finally:
            bar.close()
        if all:
            for name, accuracy in result.items():
                self.stdout.write(f"{name:<30} held-out accuracy {accuracy:.3f}")
        elif against:
            self._table(f"{model}", result["a"])
            self._table(f"{against}", result["b"])
            self.stdout.write(
                f"only {model} right: {result['only_a_right']}, only {against} right: "
                f"{result['only_b_right']}, both right: {result['both_right']}, "
                f"both wrong: {result['both_wrong']}"
            )
        else:
            self._table(model, result)
        if json_path:
            with open(json_path, "w") as out:
                json.dump(result, out, indent=2)

    def _evaluate(self, model, project, bar):
        from rewardmodel.modeling import load_for_scoring

        record, path, config = reward_model_resolve(model)
        if record is not None:
            return reward_model_evaluate(record, project=project, on_progress=bar)
        pairs = evaluation_pairs(project, config)
        scorer, tokenizer = load_for_scoring(path)
        return report(pairs, score_pairs(scorer, tokenizer, pairs, config.max_length, on_progress=bar,
                                         truncation_side=config.truncation_side))

    def _rewardbench(self, model, file, json_path):
        from core.jsonio import RecordError
        from rewardmodel.modeling import load_for_scoring
        from rewardmodel.rewardbench import rewardbench_read, rewardbench_report

        if not model:
            raise CommandError("--format rewardbench scores one model: give --model NAME.")
        if not file:
            raise CommandError("--format rewardbench needs the file: evaluate_reward_model --format rewardbench FILE.")
        if not Path(file).is_file():
            raise CommandError(f"{file}: no such file.")
        try:
            pairs = rewardbench_read(file)
            _, path, config = reward_model_resolve(model)
        except (RecordError, ModelStoreError) as problem:
            raise CommandError(f"{file}: {problem}" if isinstance(problem, RecordError) else str(problem)) from problem
        bar = ProgressBar("scoring pairs", self.stderr._out)
        try:
            scorer, tokenizer = load_for_scoring(path)
            pair_scores = score_pairs(scorer, tokenizer, pairs, config.max_length, on_progress=bar,
                                      truncation_side=config.truncation_side)
        finally:
            bar.close()
        result = {"rewardbench": rewardbench_report(pairs, pair_scores), **report(pairs, pair_scores)}
        bench = result["rewardbench"]
        self.stdout.write(f"{model} on RewardBench rows of {file}: score {bench['score']:.2f} on {bench['pairs']} pairs")
        for section, row in bench["sections"].items():
            self.stdout.write(f"  {section:<26} {row['score']:6.2f}  ({row['pairs']} pairs)")
        for subset, row in bench["subsets"].items():
            self.stdout.write(f"    {subset:<24} {row['accuracy']:6.2f}  ({row['pairs']} pairs)")
        self._length_table(result["length"])
        if json_path:
            with open(json_path, "w") as out:
                json.dump(result, out, indent=2)

    def _length_table(self, length):
        if not length:
            return
        self.stdout.write(
            f"  baselines: longer wins {length['longer_wins']:.3f}, shorter wins {length['shorter_wins']:.3f}"
        )
        for name, label in (("chosen_longer", "chosen is the longer"), ("chosen_shorter", "chosen is the shorter")):
            row = length[name]
            accuracy = "—" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
            self.stdout.write(f"  model where {label:<22} {accuracy}  ({row['pairs']} pairs)")
        if length["unequal_pairs"]:
            self.stdout.write(
                f"  sides with the longer response: model {length['model_agrees_longer']:.3f}, "
                f"human labels {length['humans_agree_longer']:.3f}"
            )
        if length["bias"]:
            self.stdout.write(self.style.WARNING(
                f"  LENGTH BIAS: the model prefers the {length['bias']} response more often than the humans do "
                f"(by more than 5 points): it may have learned length, not preference."
            ))

    def _safety_table(self, safety):
        if not safety:
            return
        self.stdout.write(f"  unsafe responses: {safety['unsafe']} of {safety['responses']} labelled")
        self.stdout.write("  threshold  flagged  precision  recall")
        for row in safety["curve"]:
            precision = "—" if row["precision"] is None else f"{row['precision']:.3f}"
            recall = "—" if row["recall"] is None else f"{row['recall']:.3f}"
            self.stdout.write(f"  {row['threshold']:>9.2f}  {row['flagged']:>7}  {precision:>9}  {recall:>6}")

    def _table(self, title, result):
        self.stdout.write(f"{title}: accuracy {result['accuracy']:.3f} on {result['pairs']} pairs")
        for group in ("per_strength", "per_safety_bin", "per_source"):
            for name, row in result[group].items():
                self.stdout.write(f"  {name:<26} {row['accuracy']:.3f}  ({row['pairs']} pairs)")
        self.stdout.write("  score gap      pairs  humans agree  model's probability")
        for row in result["calibration"]:
            high = "inf" if row["high"] is None else f"{row['high']:g}"
            self.stdout.write(
                f"  [{row['low']:g}, {high})".ljust(17)
                + f"{row['pairs']:>5}  {row['agreement']:>12.3f}  {row['predicted']:>19.3f}"
            )
        self._length_table(result.get("length"))
        self._safety_table(result.get("safety"))
