import json
import logging

from leadgen.logs import JsonFormatter


def test_json_lines_carry_the_task_fields():
    record = logging.LogRecord("leadgen.tasks", logging.INFO, __file__, 1, "task %s done",
                               ("x",), None)
    record.task_name, record.task_id, record.duration_ms, record.outcome = (
        "leadgen.serp.dedupe", "abc-123", 42, "SUCCESS")
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "task x done" and line["level"] == "INFO"
    assert (line["task_name"], line["task_id"], line["duration_ms"], line["outcome"]) == (
        "leadgen.serp.dedupe", "abc-123", 42, "SUCCESS")
