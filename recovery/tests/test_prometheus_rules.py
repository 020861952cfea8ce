"""deploy/prometheus: the shipped alert rules pass `promtool check rules` and their unit tests,
and every metric and label value they use is one the command writes (a rename breaks this).

promtool comes with Debian's `prometheus` package, in .ci/system-packages' tests group: CI
and `make test` install it, so a missing promtool fails here rather than skipping.

Any wall clock: promtool's unit tests run on their own series' time, the command at CLOCK.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

from recovery.db.models import SweepRun
from recovery.ops.metrics import GATES, PREFIX
from recovery.tests.conftest import CLOCK, stale_order

pytestmark = pytest.mark.processes

FOLDER = Path(settings.BASE_DIR) / "deploy" / "prometheus"
RULES = FOLDER / "tradeops-rules.yml"
RULE_TESTS = FOLDER / "tradeops-rules.test.yml"
MSG_NO_PROMTOOL = (
    "promtool is missing: it comes with Debian's `prometheus` package "
    "(bash .ci/system-packages tests installs it, as make test and CI do)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail(MSG_NO_PROMTOOL)
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=FOLDER, timeout=120)


def rule_expressions() -> list[str]:
    """Each rule's `expr`, one line or a folded block (read as text: no YAML library needed)."""
    exprs, block = [], None
    for line in RULES.read_text().splitlines():
        if block is not None:
            if line.startswith(" " * 10) and line.strip():
                block.append(line.strip())
                continue
            exprs.append(" ".join(block))
            block = None
        found = re.match(r"\s+expr: (.*)$", line)
        if found is None:
            continue
        if found.group(1) in (">-", ">", "|"):
            block = []
        else:
            exprs.append(found.group(1))
    return exprs


def test_promtool_checks_the_rules() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_rule_tests_cover_every_alert() -> None:
    alerts = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert len(alerts) == len(rule_expressions()) == 8 and alerts == tested


@pytest.mark.django_db
def test_the_rules_use_only_metrics_and_labels_the_command_writes(trading, tmp_path: Path) -> None:
    stale_order()
    path = tmp_path / "tradeops.prom"
    call_command("auto_recover", "--metrics-file", str(path), now=CLOCK, stdout=io.StringIO())
    written = {family.name for family in text_string_to_metric_families(path.read_text())}
    used = {name for expr in rule_expressions() for name in re.findall(rf"\b{PREFIX}_\w+", expr)}
    assert used and used <= written, used - written
    outcomes = set()
    for expr in rule_expressions():
        for values in re.findall(r'outcome=~?"([^"]+)"', expr):
            outcomes.update(values.split("|"))
    assert outcomes and outcomes <= set(SweepRun.Outcome.values), outcomes - set(SweepRun.Outcome.values)
    written_gates = {
        s.labels["gate"]
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
        if s.name == f"{PREFIX}_last_run_blocked"
    }
    assert written_gates == {str(g) for g in GATES}
