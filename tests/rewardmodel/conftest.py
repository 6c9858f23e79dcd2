import pytest

from annotation.models import Judgment
from tests.factories import BatchFactory, ComparisonFactory, ProjectFactory
from tests.rewardmodel.synthetic import separable_pairs


def judged_project(count, name="Helpful RM data", batches=2):
    """A project whose comparisons carry one external judgment each: the separable pairs."""
    project = ProjectFactory(name=name)
    batch_rows = [BatchFactory(project=project) for _ in range(batches)]
    for i, pair in enumerate(separable_pairs(count)):
        comparison = ComparisonFactory(
            batch=batch_rows[i % batches],
            dialogue__turn__content=pair.context[0]["content"],
            # A on the left half the time, so position cannot be learnt.
            response_a__text=pair.chosen if i % 2 else pair.rejected,
            response_b__text=pair.rejected if i % 2 else pair.chosen,
        )
        Judgment.objects.create(
            comparison=comparison, external_annotator="synthetic", choice="a" if i % 2 else "b",
            strength=pair.strength,
        )
    return project


@pytest.fixture
def rm_project(db):
    return judged_project(64)


def tiny_config(base, *extra):
    return ["--set", f"base_model={base}", "--set", "learning_rate=0.0003", "--set", "max_length=64",
            "--set", "batch_size=4", "--set", "gradient_accumulation_steps=2",
            "--set", "heldout_fraction=0.25", "--set", "epochs=2", *extra]
