from celery.schedules import crontab

from leadgen.celery_app import app
from leadgen.config import load_settings
from leadgen.queues import Queue, beat_schedule, build_config, route_for


def test_config_is_json_only_and_resultless():
    config = build_config(load_settings(redis_url="redis://r:6379/0"))
    assert config["task_serializer"] == "json" and config["accept_content"] == ["json"]
    assert config["task_ignore_result"] is True and config["result_backend"] is None
    assert config["task_acks_late"] and config["worker_prefetch_multiplier"] == 1
    assert config["worker_send_task_events"] and config["task_send_sent_event"]
    assert config["task_always_eager"] is False
    assert {q.name for q in config["task_queues"]} == {q.value for q in Queue}


def test_without_broker_tasks_run_in_process():
    config = build_config(load_settings())
    assert config["task_always_eager"] and config["broker_url"] == "memory://"


def test_beat_uses_crontab_with_expiry():
    schedule = beat_schedule(load_settings(sheet_sync_enabled=True,
                                           sheet_sync_interval_minutes=90))
    assert "intake-sheet-sync" in schedule
    for name, entry in schedule.items():
        assert isinstance(entry["schedule"], crontab), name
        assert entry["options"]["expires"] > 0, name
    assert "intake-sheet-sync" not in beat_schedule(load_settings())


def test_routes():
    assert route_for("leadgen.search.submit_query") == "search"
    assert route_for("leadgen.serp.ingest_operation") == "search"
    assert route_for("leadgen.enrich.companies") == "crawl"
    assert route_for("leadgen.outreach.generate") == "llm"
    assert route_for("leadgen.outreach.deliver_due") == "mail"
    assert route_for("leadgen.outreach.dispatch_generation") == "maintenance"
    assert route_for("leadgen.maintenance.sweep_leases") == "maintenance"


def test_every_scheduled_and_chained_task_is_registered():
    app.loader.import_default_modules()
    for module in app.conf.include:
        __import__(module)
    registered = set(app.tasks)
    names = {entry["task"] for entry in beat_schedule(load_settings(sheet_sync_enabled=True)).values()}
    names |= {"leadgen.search.submit_query", "leadgen.search.poll_operation",
              "leadgen.serp.ingest_operation", "leadgen.serp.dedupe", "leadgen.enrich.fan_out",
              "leadgen.enrich.companies", "leadgen.outreach.generate"}
    assert names <= registered, names - registered
    for name in registered:
        if name.startswith("leadgen."):
            assert app.tasks[name].ignore_result, name
