from margin.models import Job
from rlhf import jobs, work
from rlhf.config import RejectionSamplingConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = "Rejection sampling fine-tuning: K samples per prompt, the best by reward kept, fine-tuned on; a new policy version."
    config_class = RejectionSamplingConfig
    kind = Job.Kind.REJECTION_SAMPLE
    params = staticmethod(jobs.rejection_sample_params)
    start = staticmethod(jobs.rejection_sample_start)
    run = staticmethod(work.rejection_sample_run)
