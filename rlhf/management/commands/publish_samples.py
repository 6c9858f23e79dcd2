from margin.models import Job
from rlhf import jobs, work
from rlhf.config import PublishSamplesConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = "Two versions / temperatures answer a project's prompts; the pairs become comparisons in its open batch."
    config_class = PublishSamplesConfig
    kind = Job.Kind.PUBLISH_SAMPLES
    params = staticmethod(jobs.samples_publish_params)
    start = staticmethod(jobs.samples_publish_start)
    run = staticmethod(work.samples_publish_run)
