"""Bad input at volume, the short run: every seed and every input that ever failed replays cleanly, then a few
seconds of coverage-guided fuzzing (atheris) per target, seeded, with the limits on (1 s of CPU per input, 1 GiB
RSS). The full run (a million inputs) is ``bench/fuzz.py``; the targets are in ``tests/fuzz/targets.py``.

A failure prints the escaping exception's traceback and the input (libFuzzer writes it under the artifact
prefix); copy it into ``tests/fuzz/corpus/<target>/regression-<what>`` with the fix and a named test.
"""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from tests.fuzz.targets import TARGETS, seeds, worker_env

# runs per target: a few seconds each on one core (inputs per second differ 100-fold between targets)
SHORT_RUNS = {
    "spec": 250,
    "gate-resource": 1500,
    "otlp": 20000,
    "prometheus": 3000,
    "import-argo": 300,
    "import-flagger": 300,
    "import-kayenta": 300,
    "import-keptn": 300,
}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_seed_and_past_failure_is_handled_without_a_traceback(name):
    target = TARGETS[name]
    files = seeds(target)
    assert files, f"no seeds in {target.corpus}: run python -m tests.fuzz.make_seeds"
    for path in files:
        try:
            target.run(path.read_bytes())
        except Exception as e:
            pytest.fail(f"{path.name}: {type(e).__name__}: {e}")


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_short_coverage_guided_run_finds_no_crash_hang_or_leak(name, tmp_path):
    pytest.importorskip("atheris", reason="atheris has no wheel for this platform")
    work = tmp_path / "corpus"
    work.mkdir()
    runs = SHORT_RUNS[name]
    cmd = [
        sys.executable, "-m", "tests.fuzz.run", name, f"-runs={runs}", "-seed=1", "-timeout=30", "-cpu_limit_s=1",
        "-rss_limit_mb=1024", "-max_len=8192", f"-artifact_prefix={tmp_path}/", str(work), str(TARGETS[name].corpus),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(), timeout=300)
    log = proc.stderr
    if proc.returncode != 0:
        start = max(log.find("=== Uncaught"), log.find("ALARM"), log.find("out-of-memory"), 0)
        kept = {p.name: base64.b64encode(p.read_bytes()).decode() for p in tmp_path.iterdir() if p.is_file()}
        pytest.fail(
            f"{name}: libFuzzer exit {proc.returncode}\n{log[start : start + 4000]}\ninputs (base64): {kept}"
        )
    assert f"Done {runs} runs" in log, log[-2000:]
