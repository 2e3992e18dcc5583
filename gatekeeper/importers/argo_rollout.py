"""An Argo `Rollout` beside its AnalysisTemplates: which templates its analysis references, the argument values
it passes, and its `setWeight`/`pause` steps as stages (`progressDeadlineSeconds`, default 600, as deadline)."""

from __future__ import annotations

from typing import Any

from gatekeeper.importers.common import Doc, Report, go_duration_seconds, number

ARGO_DEFAULT_PROGRESS_DEADLINE = 600


def rollout_analysis(rollout: Doc, templates: list[Doc], report: Report) -> dict[str, Any]:
    """The templates the Rollout's analysis references (canary background and step analyses, blue-green
    pre- and post-promotion analyses), the argument values it passes, and its dry-run metric names."""
    spec = report.mapping(rollout, ("spec",), rollout.data.get("spec"))
    strategy = report.mapping(rollout, ("spec", "strategy"), spec.get("strategy"))
    canary = report.mapping(rollout, ("spec", "strategy", "canary"), strategy.get("canary"))
    blue_green = report.mapping(rollout, ("spec", "strategy", "blueGreen"), strategy.get("blueGreen"))
    refs: list[tuple[tuple, dict]] = []
    args: dict[str, str | None] = {}
    dry: list[str] = []
    blocks: list[tuple[tuple, dict]] = []
    bg = report.mapping(rollout, ("spec", "strategy", "canary", "analysis"), canary.get("analysis"))
    blocks.append((("spec", "strategy", "canary", "analysis"), bg))
    if bg.get("startingStep") is not None:
        report.unexpressed(
            rollout,
            ("spec", "strategy", "canary", "analysis", "startingStep"),
            "background analysis starts with the first stage here; use the signals' initialDelay",
        )
    for j, step in enumerate(
        report.sequence(rollout, ("spec", "strategy", "canary", "steps"), canary.get("steps"))
    ):
        inline = step.get("analysis") if isinstance(step, dict) else None
        if isinstance(inline, dict):
            blocks.append((("spec", "strategy", "canary", "steps", j, "analysis"), inline))
    for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
        block = blue_green.get(key)
        if isinstance(block, dict):
            path = ("spec", "strategy", "blueGreen", key)
            blocks.append((path, block))
            report.assume(
                rollout,
                path,
                f"blue-green {key}: its metrics judge the gate's one stage (gatekeeper runs no separate "
                "pre/post-promotion analysis)",
            )
    for path, block in blocks:
        for i, r in enumerate(block.get("templates") or []):
            refs.append(((*path, "templates", i), r))
        dry += [str(x.get("metricName", "")) for x in block.get("dryRun") or [] if isinstance(x, dict)]
    for path, block in reversed(blocks):  # the background analysis' values win
        rollout_args(rollout, path, block, args, report)
    used: list[Doc] = []
    for path, r in refs:
        name = str((r or {}).get("templateName", "")) if isinstance(r, dict) else ""
        kinds = ("ClusterAnalysisTemplate",) if (r or {}).get("clusterScope") else ("AnalysisTemplate",)
        found = next((t for t in templates if t.name == name and t.kind in kinds), None)
        if found is None:
            report.unresolved(rollout, path, f"template '{name}' ({kinds[0]}) is not among the inputs")
        elif found not in used:
            used.append(found)
    for t in templates:
        if t not in used:
            used.append(t)
            report.assume(
                t,
                (),
                f"{t.kind} '{t.name}' is not referenced by Rollout '{rollout.name}': imported anyway (it was "
                "given), its metrics judge every stage; remove them from the gate if they belong elsewhere",
            )
    return {"templates": used, "args": args, "dryRun": dry}


def rollout_args(rollout: Doc, path: tuple, analysis: dict, out: dict, report: Report) -> None:
    for i, a in enumerate(analysis.get("args") or []):
        if not isinstance(a, dict) or "name" not in a:
            continue
        if "value" in a:
            out[str(a["name"])] = str(a["value"])
        elif isinstance(a.get("valueFrom"), dict) and "podTemplateHashValue" in a["valueFrom"]:
            which = str(a["valueFrom"]["podTemplateHashValue"])
            out[str(a["name"])] = "${canary_hash}" if which == "Latest" else "${stable_hash}"
        elif "valueFrom" in a:
            report.unexpressed(
                rollout,
                (*path, "args", i, "valueFrom"),
                f"argument '{a['name']}' is read from the cluster at run time: pass --arg {a['name']}=VALUE",
            )


def rollout_stages(rollout: Doc, report: Report) -> tuple[list[dict[str, Any]], float]:
    spec = rollout.data.get("spec") if isinstance(rollout.data.get("spec"), dict) else {}
    deadline = float(spec.get("progressDeadlineSeconds") or ARGO_DEFAULT_PROGRESS_DEADLINE)
    stages: list[dict[str, Any]] = []
    base = ("spec", "strategy", "canary", "steps")
    for j, step in enumerate(_steps(spec)):
        if not isinstance(step, dict):
            continue
        if "setWeight" in step:
            w = number(step["setWeight"])
            if w is None:
                report.error(
                    rollout, (*base, j, "setWeight"), f"'{step['setWeight']}' is not a weight (0-100)"
                )
                continue
            if w <= 0 or (stages and w < stages[-1]["weight"]):
                report.unexpressed(
                    rollout, (*base, j, "setWeight"), f"weight {w:g}: stages only grow from > 0"
                )
                continue
            stages.append({"weight": w})
        elif "pause" in step:
            pause = step.get("pause") or {}
            if not stages:
                report.unexpressed(rollout, (*base, j, "pause"), "a pause before any setWeight has no stage")
            elif pause.get("duration") is not None:
                sec = go_duration_seconds(pause["duration"])
                stages[-1]["minDuration"] = (
                    f"{sec:g}s" if sec is not None else stages[-1].get("minDuration", "60s")
                )
            else:
                stages[-1]["authority"] = {"mode": "approval", "group": "rollout-approvers"}
                report.assume(
                    rollout,
                    (*base, j, "pause"),
                    "an indefinite pause (manual promotion) became a stage "
                    "that needs approval by group 'rollout-approvers'",
                )
        elif "analysis" not in step:
            report.unexpressed(rollout, (*base, j), f"step {', '.join(step)}: not a stage setting")
    return stages, deadline


def _steps(spec: dict[str, Any]) -> list[Any]:
    strategy = spec.get("strategy") if isinstance(spec.get("strategy"), dict) else {}
    canary = strategy.get("canary") if isinstance(strategy.get("canary"), dict) else {}
    steps = canary.get("steps")
    return steps if isinstance(steps, list) else []
