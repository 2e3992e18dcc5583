"""Coverage-guided fuzzing of one target with atheris (libFuzzer for Python).

    .venv/bin/python -m tests.fuzz.run TARGET [libFuzzer flags] WORK_CORPUS_DIR [SEED_DIR ...]

`TARGET` is a name from `tests.fuzz.targets.TARGETS`. The target's modules are imported (by running every
seed once) inside atheris' instrumentation, so coverage of gatekeeper's own code (and of the pure-Python
parsers it relies on) guides the mutations. A dictionary of the format's words (field names from the gate
schema, keys and identifiers from the seeds) is written next to the work corpus and passed as `-dict`.

libFuzzer reports an escaping exception (a finding), an input over `-timeout` seconds of wall time, and RSS
over `-rss_limit_mb` as a crash; `-cpu_limit_s=S` (ours, default 1) makes an input that takes more than S
seconds of CPU a finding too (`SlowInput`): that is the hang limit, independent of how busy the machine is.
A crash writes the input under `-artifact_prefix` and exits non-zero; `bench/fuzz.py` and
`tests/test_fuzz.py` run this module and read its output. Without atheris (a platform it has no wheel for)
this module exits 3 with a message.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
import time
from pathlib import Path

from tests.fuzz.targets import TARGETS, Target, seeds


class SlowInput(Exception):
    """An input that took longer than the CPU limit (a hang, measured in CPU time so a busy machine or a
    low-priority run does not turn a slow scheduler into a finding; libFuzzer's wall-clock -timeout stays
    on as the backstop for an input that never returns)."""


_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_.\-/]{1,40}")


def dictionary(target: Target, *, limit: int = 600) -> list[bytes]:
    """Words of the target's format: schema field names and enum values for gates, seed tokens for all."""
    words: dict[bytes, None] = {}
    if target.name in (
        "spec",
        "gate-resource",
        "import-argo",
        "import-flagger",
        "import-kayenta",
        "import-keptn",
    ):
        from gatekeeper.spec.models import GateSpec

        _schema_words(GateSpec.model_json_schema(by_alias=True), words)
    for path in seeds(target):
        for m in _WORD.finditer(path.read_bytes()):
            words.setdefault(m.group(0), None)
    return list(words)[:limit]


def _schema_words(node: object, out: dict[bytes, None]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name in value:
                    out.setdefault(name.encode(), None)
            if key == "enum" and isinstance(value, list):
                for v in value:
                    if isinstance(v, str):
                        out.setdefault(v.encode(), None)
            if key == "const" and isinstance(value, str):
                out.setdefault(value.encode(), None)
            _schema_words(value, out)
    elif isinstance(node, list):
        for v in node:
            _schema_words(v, out)


def write_dictionary(target: Target, path: Path) -> None:
    lines = []
    for w in dictionary(target):
        esc = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02x}" for b in w)
        lines.append(f'"{esc}"')
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in TARGETS:
        print(f"usage: python -m tests.fuzz.run TARGET [flags] DIR...; targets: {', '.join(TARGETS)}")
        return 2
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (no wheel for this platform?): coverage-guided fuzzing unavailable")
        return 3
    target = TARGETS[argv[1]]
    rest = argv[2:]
    with atheris.instrument_imports(include=list(target.instrument)):
        for path in seeds(target):  # imports every module the target reaches, inside the instrumentation
            with contextlib.suppress(Exception):  # a failing seed is reported by the fuzzing run itself
                target.run(path.read_bytes())
    dirs = [a for a in rest if not a.startswith("-")]
    if dirs and not any(a.startswith("-dict=") for a in rest):  # after: the schema import is instrumented
        dict_path = (Path(dirs[0]) / ".." / f"{target.name}.dict").resolve()
        write_dictionary(target, dict_path)
        rest = [f"-dict={dict_path}", *rest]

    prefix = next((a.partition("=")[2] for a in rest if a.startswith("-artifact_prefix=")), "./")
    cpu_limit = float(next((a.partition("=")[2] for a in rest if a.startswith("-cpu_limit_s=")), "1"))
    rest = [a for a in rest if not a.startswith("-cpu_limit_s=")]
    slowest = [0.0]

    def one(data: bytes) -> None:
        t0 = time.process_time()
        try:
            target.run(data)
        except Exception:  # keep the input even if libFuzzer dies before writing its crash file
            Path(f"{prefix}uncaught-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise
        spent = time.process_time() - t0
        if spent > slowest[0]:
            slowest[0] = spent
            print(f"gk-fuzz: slowest input so far {spent * 1000:.1f} ms CPU", file=sys.stderr, flush=True)
        if spent > cpu_limit:
            Path(f"{prefix}slow-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise SlowInput(f"one input took {spent:.2f} s of CPU (limit {cpu_limit:g} s)")

    atheris.Setup([argv[0], *rest], one)
    atheris.Fuzz()
    return 0  # not reached: libFuzzer exits


if __name__ == "__main__":
    sys.exit(main(sys.argv))
