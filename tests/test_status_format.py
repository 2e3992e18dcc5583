"""The status format version: a controller reads every older status layout (migrating it, keeping the stage
clock and the evidence), refuses a newer one instead of overwriting it, and writes its own.

The format-0 statuses in ``tests/data/status`` were written by the real previous build (the controller before
status formats existed) during ``bench/soak.py upgrade``: a gate progressing in its fourth stage and one paused
there, each with the sequential evidence carried from the earlier stages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatekeeper.controller.kube import BadStatus, status_of
from gatekeeper.spec.status import MIGRATIONS, STATUS_FORMAT, GateStatus, Phase, StatusFormatError, migrate

OLD = sorted((Path(__file__).parent / "data" / "status").glob("format-0-*.json"))


@pytest.mark.parametrize("path", OLD, ids=[p.stem for p in OLD])
def test_a_status_written_by_the_previous_build_keeps_its_stage_clock_and_carried_evidence(path):
    raw = json.loads(path.read_text())
    assert "formatVersion" not in raw and raw["carried"]["signals"]  # a real format-0 status with evidence
    s = status_of({"status": raw})
    assert s.format_version == STATUS_FORMAT
    assert (s.stage, s.stage_started_at, s.weight) == (raw["stage"], raw["stageStartedAt"], raw["weight"])
    assert s.carried is not None and s.carried.model_dump(by_alias=True, mode="json") == raw["carried"]
    assert s.phase in (Phase.PROGRESSING, Phase.PAUSED) and len(s.history) == len(raw["history"])
    written = s.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert written["formatVersion"] == STATUS_FORMAT and written["carried"] == raw["carried"]


def test_a_status_of_a_newer_format_is_not_acted_on_and_says_to_upgrade():
    newer = {"formatVersion": STATUS_FORMAT + 1, "phase": "Progressing", "stage": 2, "somethingNew": {"x": 1}}
    with pytest.raises(BadStatus, match=rf"status format {STATUS_FORMAT + 1} by a newer gatekeeper.*upgrade"):
        status_of({"status": newer})


@pytest.mark.parametrize("bad", ["1", 1.5, -1, True, None])
def test_a_format_version_that_is_not_a_version_is_refused(bad):
    with pytest.raises(StatusFormatError, match="is not a format version"):
        migrate({"formatVersion": bad})


def test_every_older_format_has_a_migration_step():
    assert sorted(MIGRATIONS) == list(range(STATUS_FORMAT))
    assert GateStatus.read({}).format_version == STATUS_FORMAT  # an empty status: a new gate
