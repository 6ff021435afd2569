"""Webhooks, end to end: the edge at $EDGE_HOOKS writes through the origin and delivers its
events to the receiver at $WEBHOOK_RECEIVER (tests/support/webhook-receiver.py, which records
what it is sent and fails when told), through its queue, retrying after 1 s, doubling.

A skopeo push delivers a signed ACR `push` payload whose fields are what was pushed; a delete
delivers `delete`; a Helm chart pushed with oras delivers `chart_push`; a scope filter and a
disabled webhook deliver nothing; a refused push delivers nothing; a receiver that fails three
times gets the event a fourth time and the log shows all four; one that always fails ends in the
dead-letter queue.
"""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import edge_registry, env, Registry, skopeo_push, wait_for as wait_within

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from registry_push import push_blob, push_manifest  # noqa: E402

HOOKS_TIMEOUT = 60


@pytest.fixture(scope="module")
def edge() -> Registry:
    return edge_registry("edge-hooks", "EDGE_HOOKS", tls=False)


def receiver(path: str):
    r = requests.get(f"http://{env('WEBHOOK_RECEIVER')}/_control/{path}", timeout=10)
    r.raise_for_status()
    return r.json()


@pytest.fixture
def hook(edge):
    """A webhook named for the test (created by the test), the receiver reset; deleted after."""
    receiver("reset")
    made = []

    def create(name: str, **body) -> dict:
        body.setdefault("serviceUri", f"http://{env('WEBHOOK_RECEIVER')}/{name}")
        r = edge.request("PUT", f"/api/v1/webhooks/{name}", json=body)
        assert r.status_code == 201, r.text
        made.append(name)
        return r.json()

    yield create
    for name in made:
        edge.request("DELETE", f"/api/v1/webhooks/{name}")
    receiver("reset")


def deliveries(path: str) -> list[dict]:
    return [d for d in receiver("log") if d["path"] == f"/{path}"]


def wait_for(what: str, check, seconds: float = HOOKS_TIMEOUT):
    return wait_within(what, check, seconds)


def verify(delivery: dict, secret: str) -> dict:
    """The payload of a delivery whose signature checks out, as a receiver checks it."""
    header = delivery["headers"]["x-registry-signature"]
    fields = dict(part.split("=", 1) for part in header.split(","))
    t, body = fields["t"], delivery["body"].encode()
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["sha256"], expected), header
    assert abs(time.time() - int(t)) < 300, "an old timestamp is a replay"
    return json.loads(body)


def test_a_push_delivers_a_signed_push_event_and_a_delete_a_delete(edge, hook):
    created = hook("pushes", actions=["push", "delete"], customHeaders={"Authorization": "Bearer t0k"})
    secret = created["secret"]
    digest = skopeo_push(edge, "hooked/app:v1")
    [delivery] = wait_for("the push event", lambda: [d for d in deliveries("pushes")
                                                      if '"action":"push"' in d["body"]
                                                      and '"repository":"hooked/app"' in d["body"]
                                                      and '"tag":"v1"' in d["body"]])
    payload = verify(delivery, secret)
    assert delivery["headers"]["authorization"] == "Bearer t0k"
    assert delivery["headers"]["content-type"] == "application/json"
    manifest = edge.request("GET", f"/v2/hooked/app/manifests/{digest}",
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert manifest.status_code == 200
    target = payload["target"]
    assert target["repository"] == "hooked/app" and target["tag"] == "v1"
    assert target["digest"] == digest
    assert target["size"] == target["length"] == len(manifest.content)
    assert target["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert payload["request"]["method"] == "PUT"
    assert payload["request"]["useragent"], payload["request"]
    assert payload["actor"]["name"] == "admin:admin"
    assert payload["id"] and payload["timestamp"].endswith("Z")

    r = edge.request("DELETE", f"/v2/hooked/app/manifests/{digest}")
    assert r.status_code == 202, r.text
    deleted = wait_for("the delete event", lambda: [d for d in deliveries("pushes")
                                                     if '"action":"delete"' in d["body"]])
    payload = verify(deleted[0], secret)
    assert payload["target"] == {"digest": digest, "repository": "hooked/app"}
    # The delivery log says what happened.
    log = edge.request("GET", "/api/v1/webhooks/pushes/events").json()
    assert {e["action"] for e in log} >= {"push", "delete"}
    assert all(e["status"] == 200 and e["attempt"] == 1 for e in log), log


def test_a_helm_chart_pushed_with_oras_is_a_chart_push(edge, hook):
    import oras.client
    created = hook("charts", actions=["chart_push"])
    user, password = edge.auth
    client = oras.client.OrasClient(hostname=edge.addr, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(user, password)
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp, "mychart-0.1.0.tgz")
        chart.write_bytes(b"not really a tarball, but the registry does not care")
        config = Path(tmp, "config.json")
        config.write_text(json.dumps({"name": "mychart", "version": "0.1.0", "apiVersion": "v2"}))
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            client.push(target=f"{edge.addr}/helm/mychart:0.1.0",
                        files=[f"{chart.name}:application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
                        manifest_config=f"{config.name}:application/vnd.cncf.helm.config.v1+json")
        finally:
            os.chdir(cwd)
    [delivery] = wait_for("the chart_push event", lambda: deliveries("charts"))
    payload = verify(delivery, created["secret"])
    assert payload["action"] == "chart_push"
    assert payload["target"]["repository"] == "helm/mychart"
    assert payload["target"]["name"] == "mychart" and payload["target"]["version"] == "0.1.0"


def test_scopes_status_and_refused_pushes_deliver_nothing(edge, hook):
    hook("scoped", actions=["push"], scope="team-a/*:*")
    hook("paused", actions=["push"], status="disabled")
    hook("every1", actions=["push"])
    # A lock refuses this push before the origin sees it.
    r = edge.request("PATCH", "/api/v1/repositories/locked/app", json={"writeEnabled": False})
    assert r.status_code == 200, r.text
    try:
        user, password = edge.auth
        images = Path(env("STACK_DIR"), "images")
        r = subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                            "--dest-creds", f"{user}:{password}", f"oci:{images / 'busybox'}:1",
                            f"docker://{edge.addr}/locked/app:1"], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode != 0
    finally:
        edge.request("DELETE", "/api/v1/repositories/locked/app")
    skopeo_push(edge, "team-b/app:1")
    skopeo_push(edge, "team-a/app:1")
    wait_for("the team-a push at the scoped webhook", lambda: deliveries("scoped"))
    wait_for("both pushes at the unscoped webhook", lambda: len(deliveries("every1")) >= 2)
    time.sleep(2)
    assert [json.loads(d["body"])["target"]["repository"] for d in deliveries("scoped")] == ["team-a/app"]
    assert deliveries("paused") == []
    assert not any("locked/app" in d["body"] for d in receiver("log"))


def test_a_failing_receiver_gets_the_event_again_and_the_log_shows_every_attempt(edge, hook):
    created = hook("flaky", actions=["push"])
    receiver("fail?times=3&status=503")
    skopeo_push(edge, "retried/app:1")
    found = wait_for("four attempts", lambda: (lambda d: d if len(d) >= 4 else None)(deliveries("flaky")))
    assert [d["answered"] for d in found] == [503, 503, 503, 200]
    ids = {verify(d, created["secret"])["id"] for d in found}
    assert len(ids) == 1, "one event, delivered four times (at least once; the id de-duplicates)"
    [event_id] = ids

    def logged():
        log = edge.request("GET", "/api/v1/webhooks/flaky/events").json()
        return log if len(log) >= 4 else None
    log = wait_for("four log entries", logged, 20)
    assert [(e["attempt"], e["status"]) for e in log] == [(4, 200), (3, 503), (2, 503), (1, 503)]
    assert {e["eventId"] for e in log} == {event_id}


def test_a_receiver_that_always_fails_ends_in_the_dead_letter_queue(edge, hook):
    hook("broken", actions=["push"])
    receiver("fail?times=-1&status=500")
    skopeo_push(edge, "deadletter/app:1")

    def given_up():
        log = edge.request("GET", "/api/v1/webhooks/broken/events").json()
        return log if log and log[0].get("gaveUp") else None
    # Six attempts, 1 + 2 + 4 + 8 + 16 s apart.
    log = wait_for("the last attempt, given up", given_up, 90)
    assert [e["attempt"] for e in log] == [6, 5, 4, 3, 2, 1]
    assert all(e["status"] == 500 for e in log)
    assert len(deliveries("broken")) == 6
    # The queue took it: the worker says so once the dead-letter queue's send resolved.
    worker_log = Path(env("STACK_DIR"), "edge-hooks.log")
    wait_for("the dead-letter send", lambda: any(
        "sent to the dead-letter queue REGISTRY_DLQ" in line and '"broken"' in line
        for line in worker_log.read_text(errors="replace").splitlines()), 10)


def test_ping_and_get_config(edge, hook):
    created = hook("pinged", actions=["push"], customHeaders={"X-Token": "v4lue"})
    r = edge.request("POST", "/api/v1/webhooks/pinged/ping", json={})
    assert r.status_code == 202, r.text
    [delivery] = wait_for("the ping", lambda: deliveries("pinged"))
    assert verify(delivery, created["secret"])["action"] == "ping"
    config = edge.request("GET", "/api/v1/webhooks/pinged/config").json()
    assert config == {"serviceUri": f"http://{env('WEBHOOK_RECEIVER')}/pinged", "customHeaders": ["X-Token"]}
    shown = edge.request("GET", "/api/v1/webhooks/pinged").text
    assert "v4lue" not in shown and created["secret"] not in shown


def test_opt_in_pull_events_arrive_batched(edge, hook):
    hook("pulls", actions=["pull"], scope="pulled/app:*")
    hook("nopulls", actions=["push"])
    digest = skopeo_push(edge, "pulled/app:1")
    for _ in range(10):
        r = edge.request("GET", "/v2/pulled/app/manifests/1",
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status_code == 200
    # HEADs are no pulls.
    edge.request("HEAD", "/v2/pulled/app/manifests/1",
                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    found = wait_for("two batches of five", lambda: (lambda d: d if len(d) >= 2 else None)(deliveries("pulls")))
    time.sleep(1)
    events = [json.loads(d["body"]) for d in deliveries("pulls")]
    assert [e["action"] for e in events] == ["pull", "pull"]
    assert [e["target"]["count"] for e in events] == [5, 5]
    assert all(e["target"]["digest"] == digest and e["target"]["repository"] == "pulled/app"
               for e in events)
    assert not any('"action":"pull"' in d["body"] for d in deliveries("nopulls"))
