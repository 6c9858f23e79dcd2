"""Write-a-prompt, generation on the tiny model, multi-turn continuation, demonstrations."""

import pytest
from django.core.exceptions import ValidationError

from annotation import services
from annotation.models import Comparison, Demonstration, Dialogue, Strength, Turn
from margin.models import Job
from rlhf.pairs import generate_pair_run
from tests.factories import BatchFactory, DialogueFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_written_prompt_becomes_a_pair_generated_by_two_variants(tiny_policy):
    batch = BatchFactory()
    author = UserFactory()
    job = services.dialogue_start(annotator=author, project=batch.project, prompt="Name a colour.")
    generate_pair_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    comparison = Comparison.objects.get(pk=job.result["comparison_id"])
    assert comparison.batch == batch
    assert comparison.reserved_for == author and comparison.wanted == 1
    a, b = comparison.response_a, comparison.response_b
    assert a.policy_version == tiny_policy
    # Diversity: the two responses come from different temperatures (Llama 2 sec. 3.2.1).
    assert a.sampling["temperature"] != b.sampling["temperature"]
    assert comparison.dialogue.messages() == [{"role": "user", "content": "Name a colour."}]


def test_a_rerun_of_a_finished_generation_job_does_nothing(tiny_policy):
    batch = BatchFactory()
    job = services.dialogue_start(annotator=UserFactory(), project=batch.project, prompt="Hi")
    generate_pair_run(job_id=job.pk)
    assert generate_pair_run(job_id=job.pk) is None
    assert Comparison.objects.count() == 1


def test_continuing_makes_the_chosen_response_context_for_the_next_pair(tiny_policy):
    batch = BatchFactory()
    author = UserFactory()
    first_job = services.dialogue_start(annotator=author, project=batch.project, prompt="Hello")
    generate_pair_run(job_id=first_job.pk)
    first_job.refresh_from_db()
    comparison = Comparison.objects.get(pk=first_job.result["comparison_id"])
    assignment = services.assignment_take_reserved(annotator=author, comparison=comparison)
    judgment = services.judgment_submit(
        annotator=author, comparison_id=comparison.pk,
        chosen_side="left" if assignment.a_on_left else "right", strength=Strength.SLIGHTLY_BETTER,
    )
    assert judgment.choice == "a"

    next_job = services.dialogue_continue(
        annotator=author, comparison_id=comparison.pk, prompt="Tell me more."
    )
    generate_pair_run(job_id=next_job.pk)
    next_job.refresh_from_db()
    second = Comparison.objects.get(pk=next_job.result["comparison_id"])
    assert second.dialogue == comparison.dialogue and second.context_length == 3
    assert [t.role for t in comparison.dialogue.turns.all()] == ["user", "assistant", "user"]
    assert comparison.dialogue.turns.get(index=1).content == comparison.response_a.text

    with pytest.raises(services.AnnotationError, match="already been continued"):
        services.dialogue_continue(annotator=author, comparison_id=comparison.pk, prompt="Again")
    with pytest.raises(services.AnnotationError, match="Judge this comparison"):
        services.dialogue_continue(annotator=UserFactory(), comparison_id=comparison.pk, prompt="x")


@pytest.mark.parametrize(
    "prompt, message", [("   ", "cannot be empty"), ("a\x00b", "NUL"), ("x" * 20001, "under")]
)
def test_bad_prompt_is_refused_and_nothing_is_stored(prompt, message):
    batch = BatchFactory()
    with pytest.raises(ValidationError, match=message):
        services.dialogue_start(annotator=UserFactory(), project=batch.project, prompt=prompt)
    assert not Dialogue.objects.exists() and not Job.objects.exists()


def test_writing_a_prompt_needs_an_open_batch():
    batch = BatchFactory()
    services.batch_close(batch=batch)
    with pytest.raises(services.AnnotationError, match="no open batch"):
        services.dialogue_start(annotator=UserFactory(), project=batch.project, prompt="Hi")
    assert not Dialogue.objects.exists()


def test_failed_generation_is_recorded_on_the_job(db):
    batch = BatchFactory()
    job = services.dialogue_start(annotator=UserFactory(), project=batch.project, prompt="Hi")
    from rlhf.models import PolicyVersion

    PolicyVersion.objects.create(name="missing", checkpoint_path="/nonexistent/checkpoint")
    with pytest.raises(Exception):
        generate_pair_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and job.error


def test_demonstration_is_saved_once_per_annotator_and_prompt():
    dialogue = DialogueFactory()
    user = UserFactory()
    services.demonstration_submit(
        annotator=user, project=dialogue.project, dialogue_id=dialogue.pk, text="The ideal answer."
    )
    with pytest.raises(services.AnnotationError, match="already wrote"):
        services.demonstration_submit(
            annotator=user, project=dialogue.project, dialogue_id=dialogue.pk, text="Another."
        )
    demonstration = Demonstration.objects.get()
    assert demonstration.context_length == 1 and demonstration.text == "The ideal answer."


def test_demonstration_on_another_annotators_dialogue_is_refused():
    dialogue = DialogueFactory(author=UserFactory())
    with pytest.raises(services.AnnotationError, match="not open to you"):
        services.demonstration_submit(
            annotator=UserFactory(), project=dialogue.project, dialogue_id=dialogue.pk, text="x"
        )
    assert not Demonstration.objects.exists()
    assert Turn.objects.count() == 1


def test_demo_generated_pairs_go_to_the_shared_queue(tiny_policy):
    from margin.demo import generation_enqueue

    batch = BatchFactory()
    [job] = generation_enqueue(project=batch.project, prompts=["Explain tides."])
    generate_pair_run(job_id=job.pk)
    comparison = Comparison.objects.get()
    assert comparison.reserved_for is None
    assert comparison.wanted == batch.project.judgments_per_comparison
    assert services.assignment_next(annotator=UserFactory(), project=batch.project).comparison == comparison
