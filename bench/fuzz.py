"""Bad input at volume: coverage-guided fuzzing (atheris, libFuzzer) of every input surface, a million inputs.

    nice -n 19 .venv/bin/python bench/fuzz.py [--total 1000000] [--targets spec otlp ...] [--jobs 2] [--seed 1]
    .venv/bin/python bench/fuzz.py --quick         # 20,000 inputs in all, a minute or two

Targets (``tests/fuzz/targets.py``): the gate spec loader (files as ``gatekeeper lint`` reads them, and Gate
objects as the controller reads them), the OTLP decoder into the trace store (protobuf, JSON, gzip), the
Prometheus answer parser (over real HTTP) and each importer (Argo, Flagger, Kayenta, Keptn). Each target runs
in its own process, from the committed seed corpus, with libFuzzer's limits: an input over 1 s (of CPU time, so a
busy machine or `nice` does not make a finding; 30 s of wall time as the backstop) is a hang, RSS over 1 GiB
is a leak; an exception other than the surface's typed errors is a finding. Inputs are shared out
by a fixed table (``SHARE``: the slow parsers get fewer inputs). ``--parts DIR`` keeps each finished
target's result in DIR and reuses it on the next run with the same seed and at least as many inputs, so an
interrupted million-input run goes on where it stopped.

Goals: >= 1,000,000 inputs in total; 0 uncaught exceptions; 0 inputs over 1 s; RSS bounded (peak and growth
from the first to the last report are printed per target). Progress every ~15 s. Writes
``bench/results/fuzz.json`` (``fuzz-quick.json`` with ``--quick``), with the load average before and after:
the figures are counts, not timings, so a busy machine only makes the run longer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fuzz.targets import TARGETS, seeds, worker_env  # noqa: E402

SHARE = {  # inputs per target in a full run of 1,000,000 (scaled by --total): the importers run 15-100 inputs/s
    # on a core (pure-Python YAML, kept for its JSON fallback), the spec loader and Gate objects ~100/s (libyaml,
    # pydantic), the decoders 500-2,500/s; a million inputs take about 60 core-minutes
    "spec": 100_000,
    "gate-resource": 120_000,
    "otlp": 506_000,
    "prometheus": 250_000,
    "import-argo": 6_000,
    "import-flagger": 6_000,
    "import-kayenta": 6_000,
    "import-keptn": 6_000,
}
CPU_LIMIT_S = 1  # an input over 1 s of CPU is a hang (CPU time: a busy machine does not make findings)
WALL_TIMEOUT_S = 30  # libFuzzer's wall-clock backstop for an input that never returns
RSS_LIMIT_MB = 1024
MAX_LEN = 8192
_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+ .*?exec/s: (\d+) rss: (\d+)Mb")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")
_SLOWEST = re.compile(r"^gk-fuzz: slowest input so far ([\d.]+) ms CPU")
_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(msg, flush=True)


def run_target(name: str, runs: int, *, seed: int, workdir: Path) -> dict[str, Any]:
    work = workdir / name / "corpus"
    art = workdir / name / "artifacts"
    work.mkdir(parents=True)
    art.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "tests.fuzz.run", name, f"-runs={runs}", f"-seed={seed}", f"-timeout={WALL_TIMEOUT_S}", f"-cpu_limit_s={CPU_LIMIT_S}",
        f"-rss_limit_mb={RSS_LIMIT_MB}", f"-max_len={MAX_LEN}", "-print_final_stats=1", "-print_pcs=0",
        f"-artifact_prefix={art}/", str(work), str(TARGETS[name].corpus),
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=worker_env()
    )
    assert proc.stderr is not None
    first_rss = last = None
    stats: dict[str, int] = {}
    slowest_ms = 0.0
    tail: list[str] = []
    next_report = t0 + 15
    for line in proc.stderr:
        tail = [*tail[-200:], line]
        if m := _STATUS.match(line):
            last = {"inputs": int(m[1]), "cov": int(m[3]), "ft": int(m[4]), "corpus": int(m[5]),
                    "exec_s": int(m[6]), "rss_mb": int(m[7])}  # fmt: skip
            if m[2] == "INITED":
                first_rss = last["rss_mb"]
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + 15
                say(f"  {name:15} {last['inputs']:>8,}/{runs:,} inputs  {last['exec_s']:>6}/s  "
                    f"cov {last['cov']:>5}  corpus {last['corpus']:>4}  rss {last['rss_mb']} MB")  # fmt: skip
        elif m := _STAT.match(line):
            stats[m[1]] = int(m[2])
        elif m := _SLOWEST.match(line):
            slowest_ms = float(m[1])
    rc = proc.wait()
    seconds = time.monotonic() - t0
    log = "".join(tail)
    finding = None
    if rc != 0:
        kind = ("hang" if "libFuzzer: timeout" in log or "SlowInput" in log else "memory" if "out-of-memory" in log
                else "exception" if "Uncaught Python exception" in log
                else "exit" if "fuzz target exited" in log else "other")  # fmt: skip
        marks = [
            i for i in (log.find("=== Uncaught"), log.find("ALARM"), log.find("out-of-memory")) if i >= 0
        ]
        start = min(marks) if marks else max(0, len(log) - 3000)  # else the reason is at the end
        unit = re.search(r"Test unit written to (\S+)", log)
        saved = sorted([*art.glob("uncaught-*"), *art.glob("slow-*")])
        path = unit[1] if unit else str(saved[0]) if saved else None
        finding = {"kind": kind, "report": log[start : start + 3000], "input": path}
    executed = stats.get("number_of_executed_units", last["inputs"] if last else 0)
    out = {
        "target": name,
        "about": TARGETS[name].about,
        "inputs": executed,
        "asked": runs,
        "seconds": round(seconds, 1),
        "inputs_per_s": round(executed / seconds, 1) if seconds else None,
        "coverage": last["cov"] if last else None,
        "features": last["ft"] if last else None,
        "corpus_size": last["corpus"] if last else None,
        "new_units": stats.get("new_units_added"),
        "seeds": len(seeds(TARGETS[name])),
        "rss_first_mb": first_rss,
        "rss_peak_mb": stats.get("peak_rss_mb", last["rss_mb"] if last else None),
        "slowest_input_cpu_ms": slowest_ms,
        "exit_code": rc,
        "uncaught": 1 if finding and finding["kind"] in ("exception", "exit", "other") else 0,
        "hangs": 1 if finding and finding["kind"] == "hang" else 0,
        "memory": 1 if finding and finding["kind"] == "memory" else 0,
        "finding": finding,
    }
    verdict = "clean" if rc == 0 else f"FOUND {finding['kind'] if finding else rc}"
    say(f"{name:15} {executed:>9,} inputs in {seconds:6.0f} s ({out['inputs_per_s']}/s), cov {out['coverage']}, "
        f"slowest {slowest_ms:.0f} ms CPU, rss {first_rss}->{out['rss_peak_mb']} MB: {verdict}")  # fmt: skip
    if finding:
        say(f"exit code {rc}\n" + finding["report"][-2500:])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--total", type=int, default=1_000_000, help="inputs over all targets")
    ap.add_argument("--targets", nargs="+", choices=sorted(TARGETS), default=list(SHARE))
    ap.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once (one process each)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="20,000 inputs in all (CI-sized)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--parts", type=Path, default=None, help="keep and reuse each finished target's result")
    a = ap.parse_args()
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (scripts/setup.sh installs it on Linux x86_64)", file=sys.stderr)
        return 2
    total = 20_000 if a.quick else a.total
    weight = sum(SHARE[t] for t in a.targets)
    plan = {t: max(100, round(total * SHARE[t] / weight)) for t in a.targets}
    out_path = a.out or ROOT / "bench" / "results" / ("fuzz-quick.json" if a.quick else "fuzz.json")
    say(f"fuzzing {sum(plan.values()):,} inputs over {len(plan)} targets, {a.jobs} at a time (seed {a.seed}): "
        + ", ".join(f"{t} {n:,}" for t, n in plan.items()))  # fmt: skip
    load_before = os.getloadavg()
    commit = _commit()  # the code that ran, not whatever HEAD is when the run ends
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gk-fuzz-") as tmp, ThreadPoolExecutor(a.jobs) as pool:
        done = {t: r for t, n in plan.items() if (r := _part(a.parts, t, n, a.seed)) is not None}
        for t, r in done.items():
            say(f"{t:15} {r['inputs']:>9,} inputs from {_shown(a.parts / f'{t}.json')} (seed {a.seed}): "
                f"{'clean' if not r['finding'] else 'FOUND ' + r['finding']['kind']}")  # fmt: skip
        futures = {t: pool.submit(_run_and_keep, a.parts, t, n, seed=a.seed, workdir=Path(tmp))
                   for t, n in plan.items() if t not in done}  # fmt: skip
        results = [done[t] if t in done else futures[t].result() for t in plan]
        for r in results:  # the failing input outlives the temporary directory
            if r["finding"] and r["finding"]["input"] and Path(r["finding"]["input"]).exists():
                keep = out_path.with_name(f"fuzz-finding-{r['target']}-{Path(r['finding']['input']).name}")
                keep.write_bytes(Path(r["finding"]["input"]).read_bytes())
                r["finding"]["input"] = _shown(keep)
    totals = {
        "inputs": sum(r["inputs"] for r in results),
        "uncaught": sum(r["uncaught"] for r in results),
        "hangs_over_1s": sum(r["hangs"] for r in results),
        "memory_over_limit": sum(r["memory"] for r in results),
        "rss_peak_mb": max((r["rss_peak_mb"] or 0) for r in results),
        "slowest_input_cpu_ms": max(r["slowest_input_cpu_ms"] for r in results),
        "seconds": round(time.monotonic() - t0, 1),
    }
    doc = {
        "benchmark": "fuzz",
        "mode": "quick" if a.quick else "full",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "atheris": _version("atheris"),
            "niceness": os.nice(0),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "limits": {
            "cpu_s_per_input": CPU_LIMIT_S,
            "wall_timeout_s": WALL_TIMEOUT_S,
            "rss_limit_mb": RSS_LIMIT_MB,
            "max_len": MAX_LEN,
            "seed": a.seed,
        },
        "goals": {"inputs": ">= 1,000,000", "uncaught": 0, "hangs_over_1s": 0, "memory_over_limit": 0},
        "totals": totals,
        "targets": results,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=2) + "\n")
    say(f"total {totals['inputs']:,} inputs in {totals['seconds']:.0f} s: {totals['uncaught']} uncaught, "
        f"{totals['hangs_over_1s']} inputs over 1 s of CPU (slowest {totals['slowest_input_cpu_ms']:.0f} ms), {totals['memory_over_limit']} over {RSS_LIMIT_MB} MB "
        f"(peak RSS {totals['rss_peak_mb']} MB); wrote {_shown(out_path)}")  # fmt: skip
    clean = not (totals["uncaught"] or totals["hangs_over_1s"] or totals["memory_over_limit"])
    return 0 if clean else 1


def _part(parts: Path | None, target: str, runs: int, seed: int) -> dict[str, Any] | None:
    """A result kept by an earlier run: same seed, at least ``runs`` inputs."""
    path = parts / f"{target}.json" if parts else None
    if path is None or not path.exists():
        return None
    r = dict(json.loads(path.read_text()))
    return r if r.get("seed") == seed and r.get("inputs", 0) >= runs else None


def _run_and_keep(parts: Path | None, target: str, runs: int, *, seed: int, workdir: Path) -> dict[str, Any]:
    r = run_target(target, runs, seed=seed, workdir=workdir)
    if parts is not None:
        parts.mkdir(parents=True, exist_ok=True)
        (parts / f"{target}.json").write_text(json.dumps({**r, "seed": seed}, indent=2) + "\n")
    return r


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return ""


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
