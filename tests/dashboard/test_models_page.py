"""The models page: reward-model accuracy per batch and per strength, calibration, rejection
sampling reward vs K, PPO curves and win rates, each drawn from our static Chart.js and tabled."""

import json
import re

from django.urls import reverse

from rewardmodel.models import RewardModel, RewardModelEvaluation
from rlhf.models import PolicyVersion
from tests.factories import BatchFactory, ProjectFactory


def _chart(html, chart_id):
    return json.loads(re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>',
                                html, re.S).group(1))


def test_models_page_plots_and_tables(staff_client, db):
    project = ProjectFactory(name="Helpful")
    batches = [BatchFactory(project=project, number=n) for n in (1, 2)]
    rm1 = RewardModel.objects.create(name="rm-v1", objective="helpfulness", project=project,
                                     base_model="tiny", metrics={"heldout": {"accuracy": 0.61}})
    rm2 = RewardModel.objects.create(name="rm-v2", objective="helpfulness", project=project,
                                     base_model="tiny", parent=rm1)
    per_strength = {"significantly_better": {"pairs": 10, "accuracy": 0.9},
                    "negligibly_better": {"pairs": 30, "accuracy": 0.5}}
    for rm, accuracies in ((rm1, (0.6, 0.55)), (rm2, (0.7, 0.65))):
        for batch, accuracy in zip(batches, accuracies):
            RewardModelEvaluation.objects.create(
                reward_model=rm, batch=batch, label=f"batch {batch.number} held out", pairs=40,
                accuracy=accuracy, per_strength=per_strength,
                calibration=[{"low": 0.0, "high": 0.5, "pairs": 20, "agreement": 0.55, "predicted": 0.56},
                             {"low": 0.5, "high": None, "pairs": 20, "agreement": 0.8, "predicted": 0.75}],
            )
    PolicyVersion.objects.create(
        name="RLHF-V1", kind="rejection_sampling", checkpoint_path="/p/1",
        metrics={"reward_vs_k": [{"temperature": 1.0, "k": 1, "max": 0.1, "median": 0.1},
                                 {"temperature": 1.0, "k": 4, "max": 0.9, "median": 0.2}],
                 "win_rate": {"against": "SFT", "win_rate": 0.625, "prompts": 32}})
    PolicyVersion.objects.create(
        name="RLHF-V2", kind="ppo", checkpoint_path="/p/2",
        metrics={"ppo_iterations": [
            {"iteration": 1, "reward/score": 0.1, "kl/reference_k1": 0.0, "loss/value": 1.0, "ppo/entropy": 2.0,
             "ppo/response_length": 40},
            {"iteration": 2, "reward/score": 0.3, "kl/reference_k1": 0.02, "loss/value": 0.8, "ppo/entropy": 1.9,
             "ppo/response_length": 42}]})
    html = staff_client.get(reverse("dashboard:models")).content.decode()

    accuracy = _chart(html, "rm-accuracy")
    assert accuracy["labels"] == ["Helpful · batch 1", "Helpful · batch 2"]
    assert accuracy["datasets"] == [{"label": "rm-v1", "data": [0.6, 0.55]},
                                    {"label": "rm-v2", "data": [0.7, 0.65]}]
    assert "<td>rm-v2</td><td>0.700</td><td>0.650</td>" in html
    strength = _chart(html, "rm-strength")
    assert strength["datasets"][0]["data"][:4] == [0.9, None, None, 0.5]
    assert "0.900 <small>(20)</small>" in html  # two evaluations x 10 pairs
    assert _chart(html, "rm-calibration")["datasets"][0]["data"] == [0.55, 0.8]
    rs = re.search(r'<script id="rs-\d+" type="application/json">(.*?)</script>', html, re.S)
    rs = json.loads(rs.group(1))
    assert rs["labels"] == [1, 4] and rs["datasets"][0] == {"label": "max reward, T=1.0", "data": [0.1, 0.9]}
    assert "<td>1.0</td><td>4</td><td>0.900</td><td>0.200</td>" in html
    ppo = json.loads(re.search(r'<script id="ppo-\d+" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert ppo["datasets"][1] == {"label": "KL", "data": [0.0, 0.02]}
    assert "<td>2</td><td>0.300</td><td>0.0200</td><td>0.800</td><td>1.900</td><td>42.0</td>" in html
    version = PolicyVersion.objects.get(name="RLHF-V1")
    assert (f'<td><a href="/dashboard/policies/{version.pk}/backend/" title="generation backend: Local engine (in-process)">'
            "RLHF-V1</a></td><td>Rejection sampling fine-tune</td><td>—</td>\n      <td>0.625</td><td>SFT</td><td>32</td>") in html
    assert html.count("<canvas data-chart=") == 5


def test_models_page_without_models_says_so(staff_client, db):
    html = staff_client.get(reverse("dashboard:models")).content.decode()
    assert "No reward models yet." in html and "No PPO runs yet." in html
