"""Alert/recording rules and dashboards: promtool unit tests and drift checks against the code."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "outrider" / "files" / "prometheus-rules.yaml"
DASHBOARDS = sorted((REPO / "charts" / "outrider" / "files" / "dashboards").glob("*.json"))
METRIC = re.compile(r"(?<![:\w])(outrider_[a-z0-9_]+)\b(?!:)")


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("promtool missing in CI: .ci/run installs Debian's prometheus package", pytrace=False)
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def _defined_metrics() -> set[str]:
    names: set[str] = set()
    for folder in ("operator", "scheduler", "runtime"):
        for path in (REPO / folder).rglob("*.py"):
            names.update(re.findall(r'"(outrider_[a-z0-9_]+)"', path.read_text()))
    return names


def _referenced(text: str) -> set[str]:
    out = set()
    for name in METRIC.findall(text):
        out.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return out


def test_promtool_check_and_unit_tests() -> None:
    promtool = _promtool()
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [promtool, "test", "rules", str(REPO / "tests" / "observability" / "rules_test.yaml")],
        capture_output=True,
        text=True,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_every_alert_is_documented() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 6
    for rule in alerts:
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), f"{rule['alert']} lacks {key}"
    for rule in (r for g in groups for r in g["rules"] if "record" in r):
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


@pytest.mark.parametrize("path", [RULES, *DASHBOARDS], ids=lambda p: p.name)
def test_referenced_metrics_exist_in_the_code(path: Path) -> None:
    defined = _defined_metrics()
    missing = sorted(m for m in _referenced(path.read_text()) if m not in defined)
    assert not missing, f"{path.name} references metrics no component exports: {missing}"


def test_dashboards_are_valid_grafana_json() -> None:
    assert DASHBOARDS
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["uid"] and dash["title"]
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dash["panels"]:
            if panel["type"] == "row":  # a row groups the panels below it and queries nothing
                assert "targets" not in panel and panel["title"]
                continue
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
        for note in dash["annotations"]["list"]:
            assert note["expr"].count("(") == note["expr"].count(")") and "outrider_" in note["expr"]


def test_every_alert_links_a_runbook_page_of_the_repository() -> None:
    prefix = "https://github.com/outrider-dev/outrider/blob/main/"
    alerts = [
        rule
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert alerts
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(prefix + "docs/runbooks/"), url
        page = REPO / url.removeprefix(prefix)
        assert page.is_file(), f"{rule['alert']}: no runbook page {page}"
        assert page.read_text().startswith(f"# {rule['alert']}"), f"{page} is not the page of {rule['alert']}"
