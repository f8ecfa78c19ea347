"""Bad rules get a clear error naming the field and what to do; the seed
file and the CLI's check say the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.alarms.rules import RuleError, load_seed, parse_rule, rule_errors
from bridge.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"name": "hot", "kind": "threshold", "direction": "above", "threshold": 80}


@pytest.mark.parametrize(
    ("rule", "field", "says"),
    [
        ({**GOOD, "kind": "temperature"}, "kind", "kind 'temperature' is unknown, use one of"),
        ({"name": "x"}, "kind", "no kind"),
        ({**GOOD, "for_s": -5}, "for_s", "cannot be negative"),
        (
            {"name": "x", "kind": "rate", "direction": "above", "threshold": 1, "window_s": -1},
            "window_s",
            "cannot be negative",
        ),
        ({**GOOD, "clear_threshold": 90}, "rule", "must be at or below the threshold (80)"),
        (
            {**GOOD, "direction": "below", "clear_threshold": 70},
            "rule",
            "must be at or above the threshold (80)",
        ),
        ({"name": "x", "kind": "no_data", "for_s": 365 * 86400}, "for_s", "at most 604800 s"),
        ({"name": "x", "kind": "stuck", "for_s": 10**9}, "for_s", "at most 604800 s"),
        ({**GOOD, "window_s": 60}, "window_s", "not a field of this kind of rule"),
        ({**GOOD, "severity": "bad"}, "severity", "'critical', 'major', 'minor' or 'warning'"),
        ({**GOOD, "count": 0}, "count", "greater than or equal to 1"),
        (
            {"name": "x", "kind": "outlier", "window_s": 60, "min_samples": 1},
            "min_samples",
            "greater than or equal to 3",
        ),
        ({**GOOD, "select": {"metric": "a b"}}, "select.metric", "should match pattern"),
    ],
)
def test_bad_rule_gets_a_clear_error(rule: dict[str, object], field: str, says: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(rule)
    assert says in str(caught.value), str(caught.value)
    errors = rule_errors(rule)
    assert any(e["field"] == field and says in e["message"] for e in errors), errors


def test_a_count_too_small_is_not_called_a_negative_duration() -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule({"name": "x", "kind": "outlier", "window_s": 60, "min_samples": 1})
    assert "greater than or equal to 3" in str(caught.value)
    assert "duration" not in str(caught.value)


def test_good_rules_pass() -> None:
    assert parse_rule(GOOD).kind == "threshold"
    assert rule_errors(GOOD) == []
    assert len(load_seed(ROOT / "alarms.example.toml")) == 6


def test_seed_file_errors_name_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(
        '[[rule]]\nname = "hot"\nkind = "threshold"\ndirection = "above"\n'
        "threshold = 80\nclear_threshold = 85\n"
    )
    assert main(["alarms", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "rule hot" in err
    assert "clear_threshold (85) must be at or below the threshold (80)" in err
    assert "Traceback" not in err
    dupes = tmp_path / "dupes.toml"
    dupes.write_text('[[rule]]\nname = "a"\nkind = "no_data"\nfor_s = 60\n' * 2)
    assert main(["alarms", "check", str(dupes)]) == 1
    assert "repeated: a" in capsys.readouterr().err
