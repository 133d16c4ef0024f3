"""The gossip round task and the cluster-secret command."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from cluster import tasks
from cluster.models import Member
from cluster.node import local_node

pytestmark = pytest.mark.django_db


def test_the_gossip_task_runs_a_round(settings):
    settings.KVS_SEEDS = []
    assert tasks.gossip_round.apply().get() == 0
    me = Member.objects.get(node_id=local_node().node_id)
    assert (me.status, me.heartbeat) == ("alive", 1)
    tasks.gossip_round.apply()
    assert Member.objects.get(pk=me.pk).heartbeat == 2


def test_the_gossip_task_is_skipped_while_two_rounds_are_running():
    with tasks._rounds, tasks._rounds:
        assert tasks.gossip_round.apply().get() == 0
    assert not Member.objects.exists()


def test_the_gossip_round_is_scheduled_with_an_expiry(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["gossip-round"]
    assert entry["task"] == "cluster.tasks.gossip_round"
    assert entry["schedule"] == settings.KVS_GOSSIP_INTERVAL
    assert entry["options"]["expires"] <= settings.KVS_GOSSIP_INTERVAL


def test_kvs_cluster_secret_prints_the_secret_for_a_new_node(settings):
    settings.KVS_CLUSTER_SECRET = "s3cret-value"
    out = StringIO()
    call_command("kvs_cluster_secret", stdout=out)
    assert out.getvalue().strip() == "s3cret-value"
    out = StringIO()
    call_command("kvs_cluster_secret", "--env", stdout=out)
    assert out.getvalue().strip() == "KVS_CLUSTER_SECRET=s3cret-value"


def beat_schedule(tmp_path, **env) -> set[str]:
    """The beat entries of a node started with `env` (settings are read once per process)."""
    script = (
        "import json, django; from django.conf import settings; django.setup();"
        " print(json.dumps(sorted(settings.CELERY_BEAT_SCHEDULE)))"
    )
    child_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "kvsite.settings"}
    child_env.update(KVS_DATA_DIR=str(tmp_path), **env)
    done = subprocess.run(
        [sys.executable, "-c", script], env=child_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def test_the_push_sweep_is_scheduled_unless_its_interval_is_zero(tmp_path):
    assert "replicate-push" in beat_schedule(tmp_path, KVS_PUSH_INTERVAL="1")
    without = beat_schedule(tmp_path, KVS_PUSH_INTERVAL="0")
    assert "replicate-push" not in without and "anti-entropy" in without
