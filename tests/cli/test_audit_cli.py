import json

from tests.cli.helpers import ok


def test_audit_lists_provisioning_with_actor_action_and_outcome(invoke, my_first_app):
    ok(invoke("syncstores my_first_app --database example_db"))
    result = ok(invoke("audit --action store.sync --json"))
    (event,) = json.loads(result.stdout)
    assert event["target"] == "my_first_app/example_db"
    assert event["outcome"] == "ok"
    assert event["actor"].startswith("os:")


def test_audit_filters_by_target_prefix_and_limits(invoke, my_first_app):
    events = json.loads(ok(invoke("audit --target my_first_app/ --json")).stdout)
    assert events and all(e["target"].startswith("my_first_app/") for e in events)
    assert {e["action"] for e in events} == {"setting.assign"}
    assert len(json.loads(ok(invoke("audit --limit 2 --json")).stdout)) == 2


def test_audit_table_shows_the_service_creation(invoke, service):
    result = ok(invoke("audit"))
    assert "service.create" in result.stdout
    assert "local" in result.stdout
