"""`bridge plan`: the constants file the bench writes, the model's sums
(recomputed here from the constants), the seed's formula beside them, the
worked example and the growth table."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import ConfigError
from bridge.plan import constants, model
from tests.conftest import ROOT

KINDS = {"measured", "derived", "documented", "not measured"}


def plan_json(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "plan", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_the_constants_file_is_complete_and_stamped() -> None:
    c = constants.load()
    assert set(constants.REQUIRED) <= set(c.values)
    assert set(c.kinds.values()) <= KINDS
    assert {"nproc", "cpu", "postgresql", "ingest_measured_at"} <= set(c.machine)
    for name in constants.REQUIRED:
        if c.kinds[name] != "not measured":
            assert c[name] > 0, name


def test_the_bench_writes_the_constants_from_its_results(tmp_path: Path) -> None:
    out = tmp_path / "constants.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "write_constants.py"), str(out)],
        check=True,
        timeout=60,
    )
    written = json.loads(out.read_text())["constants"]
    ingest = json.loads((ROOT / "bench/results/ingest.json").read_text())
    single = ingest["single"]["runs"]["workers_1"]["cpu_us_per_message"]["bridge"]
    batch = ingest["batch"]["cpu_us_per_message"]["bridge"]
    a = written["bridge_cpu_us_per_message"]["value"]
    b = written["bridge_cpu_us_per_point"]["value"]
    assert a + 3 * b == pytest.approx(single, abs=0.01)
    assert a + 300 * b == pytest.approx(batch, abs=0.2)  # b is rounded to 0.001, times 300
    assert written["postgres_cpu_us_per_row"]["kind"] == "measured"
    storage = json.loads((ROOT / "bench/results/storage.json").read_text())
    assert written["disk_bytes_per_point"]["value"] == storage["disk"]["bytes_per_point"]


def test_the_seed_worked_example() -> None:
    data = plan_json("--devices", "5000", "--rate", "1", "--retention-days", "90")
    ex = data["example"]
    c = constants.load()
    points = 5000 * 1 * 3
    assert ex["plan"]["points_per_s"] == points
    # The seed's formula, by hand: 50 B per sample, 10k samples/s per core, 1 GB per 1,000 devices.
    assert ex["seed_formula"]["disk_gb"] == pytest.approx(points * 86_400 * 90 * 50 / 1e9)
    assert ex["seed_formula"]["cores"] == pytest.approx(1.5)
    assert ex["seed_formula"]["ram_gb"] == pytest.approx(5.0)
    # The plan, by hand from the constants.
    disk = points * 86_400 * 90 * c["disk_bytes_per_point"] / 1e9
    assert ex["plan"]["disk_raw_gb"] == pytest.approx(disk)
    db = math.ceil(points * c["postgres_cpu_us_per_row"] / 1e6 / 0.7)
    assert ex["plan"]["database_cores"] == db
    bridge = (5000 * c["bridge_cpu_us_per_message"] + points * c["bridge_cpu_us_per_point"]) / 1e6
    assert ex["plan"]["bridge_workers"] == max(1, math.ceil(bridge / 0.7))
    shown = ex["plan"]["disk_compressed_gb"] or ex["plan"]["disk_raw_gb"]
    assert ex["ratio_plan_to_seed"]["disk"] == pytest.approx(
        shown / ex["seed_formula"]["disk_gb"], abs=0.01
    )


def test_the_growth_table() -> None:
    data = plan_json("--devices", "5000", "--rate", "1", "--retention-days", "90", "--growth")
    rows = data["growth"]
    assert [r["target_points_per_s"] for r in rows] == list(model.GROWTH_POINTS_PER_S)
    for row in rows:
        assert row["plan"]["points_per_s"] >= row["target_points_per_s"]
        assert row["plan"]["points_per_s"] < row["target_points_per_s"] + 3  # devices rounded up
    for small, big in itertools.pairwise(rows):
        for key in ("bridge_workers", "database_cores"):
            assert big["plan"][key] >= small["plan"][key], key
        for key in ("disk_raw_gb", "redis_gb", "total_cores"):
            assert big["plan"][key] > small["plan"][key], key
    assert rows[-1]["plan"]["bridge_workers"] > rows[0]["plan"]["bridge_workers"]
    assert rows[-1]["seed_formula"]["cores"] == pytest.approx(1000, rel=1e-3)


def test_the_text_shows_both_and_the_machine() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "plan", "--devices", "5000", "--rate", "1",
         "--retention-days", "90", "--growth"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "seed formula" in done.stdout
    assert "15,000 points/s" in done.stdout
    assert "10,000,000" in done.stdout
    assert "measured on" in done.stdout


def test_bad_arguments_and_a_stale_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "plan", "--devices", "0", "--rate", "1", "--retention-days", "9"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "must be positive" in done.stderr
    stale = tmp_path / "constants.json"
    stale.write_text(json.dumps({"machine": {}, "generated_at": "x", "constants": {}}))
    with pytest.raises(ConfigError, match="run `make bench`"):
        constants.load(stale)
