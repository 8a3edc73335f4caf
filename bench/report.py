"""Writes docs/benchmarks.md and its plots from the JSON results in bench/results/.

Run the benchmarks first (each writes bench/results/<name>.json), then:
    .venv/bin/python bench/report.py
Figures are copied as measured; targets come from the issues that asked for them. The
page opens with the figures an operator compares load balancers by (`HEADLINES`: what
was measured, the target, the figure, whether it is met) and two plots drawn with
matplotlib into docs/images/; every raw figure follows, per benchmark, for scripts.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "benchmarks.md"
IMAGES = ROOT / "docs" / "images"


@dataclass(frozen=True)
class Headline:
    """One figure of the summary: where it is in the results, and its target."""

    what: str
    result: str  # bench/results/<result>.json
    key: str  # dotted path inside it
    unit: str
    target: float | None  # at most this (None: no target, shown for comparison)


HEADLINES = (
    Headline("Service created → address in its status, p99 (1,000 Services)",
             "controller-1000", "latency_on_watch_ms.p99", "ms", 100),
    Headline("10,000 Services created → all assigned after the last create",
             "controller-10000", "assigned_after_last_create_s", "s", 60),
    Headline("Catch-up: 10,000 Services assigned by a new controller",
             "controller-10000", "catch_up.all_assigned_s", "s", 60),
    Headline("BGP: Service status → route via all 3 nodes in the router's kernel, p99",
             "bgp", "a_status_to_route.all_3_next_hops_ms.p99", "ms", 300),
    Headline("BGP: speaker SIGTERM → every prefix withdrawn, p99",
             "bgp", "d_sigterm.every_prefix_withdrawn_ms.p99", "ms", 500),
    Headline("BGP: peak memory per node (speaker + ExaBGP)",
             "bgp", "c_peak_rss_mb.max_total", "MB", 100),
    Headline("Layer 2: owner's speaker killed → LAN client served by the new owner, median",
             "layer2", "failover.failover_s.median", "s", 2),
    Headline("Layer 2: the same, p95", "layer2", "failover.failover_s.p95", "s", 3),
    Headline("Layer 2: the same kills, a client behind the router served by the new owner, "
             "median", "layer2", "failover.remote_failover_s.median", "s", 2),
    Headline("VIP: master's speaker killed → LAN client served by the new master, median",
             "vip", "vip.failover_s.median", "s", 1),
    Headline("Webhook: one admission review with 1,000 Eips, p99",
             "webhook", "direct.p99_ms", "ms", 20),
    Headline("Heartbeat lateness while planning 20 rounds/s at 10,000 x 100, max",
             "heartbeats", "incremental.heartbeat_lateness.max_ms", "ms", 750),
    Headline("Planner: one Service change planned at 10,000 Services x 100 nodes (layer 2)",
             "planner", "incremental_one_change_layer2_ms.median_ms", "ms", 5),
)


def _lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def _summary(results: dict[str, Any]) -> list[str]:
    lines = ["## Summary", "",
             "| what | target | measured | met |", "|---|---|---|---|"]
    for h in HEADLINES:
        value = _lookup(results[h.result], h.key)
        target = f"≤ {h.target:g} {h.unit}" if h.target is not None else "—"
        met = "" if h.target is None else ("yes" if value <= h.target else "**no**")
        lines.append(f"| {h.what} | {target} | {value:g} {h.unit} | {met} |")
    return [*lines, "", "![Failover time by mode](images/failover.png)", "",
            "![Latency percentiles](images/latency.png)", ""]


def _plots(results: dict[str, Any]) -> None:
    """docs/images/failover.png and latency.png (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMAGES.mkdir(parents=True, exist_ok=True)
    # Every kill of the runs, one dot each (the JSON keeps each round), with the median
    # and p95 the summary table quotes.
    modes = [("layer 2 (heartbeats)", results["layer2"]["failover"]["failover_s"],
              [r["failover_s"] for r in results["layer2"]["failover"]["each"]]),
             ("VIP (keepalived)", results["vip"]["vip"]["failover_s"],
              [r["failover_s"] for r in results["vip"]["vip"]["failover_rounds"]])]
    figure, axes = plt.subplots(figsize=(7, 3.2))
    for row, (_name, stats, each) in enumerate(modes):
        spread = [row + 0.25 * ((i * 7919) % 17 / 16 - 0.5) for i in range(len(each))]
        axes.plot(each, spread, "o", color="0.55", markersize=4, alpha=0.8,
                  label="one kill" if row == 0 else "")
        axes.plot(stats["median"], row, "D", color="C0", markersize=8,
                  label="median" if row == 0 else "")
        axes.plot(stats["p95"], row, "|", color="C3", markersize=22, markeredgewidth=2,
                  label="p95" if row == 0 else "")
    axes.set_yticks(range(len(modes)), [name for name, _, _ in modes])
    axes.set_xlabel("seconds from the kill until the LAN client is served again")
    axes.set_title(f"Failover after SIGKILL of the owner's speaker "
                   f"({len(modes[0][2])} and {len(modes[1][2])} kills)")
    axes.legend(loc="upper center")
    axes.set_xlim(left=0)
    axes.set_ylim(-0.6, len(modes) - 0.4)
    figure.tight_layout()
    figure.savefig(IMAGES / "failover.png", dpi=110)
    plt.close(figure)

    series = [
        ("create → IP\n1k Services", results["controller-1000"]["latency_on_watch_ms"], "p"),
        ("create → IP\n10k Services", results["controller-10000"]["latency_on_watch_ms"],
         "p"),
        ("status → route\n(3 next hops)", results["bgp"]["a_status_to_route"][
            "all_3_next_hops_ms"], "p"),
        ("webhook review\n(1k Eips)", results["webhook"]["direct"], "ms"),
    ]
    figure, axes = plt.subplots(figsize=(7, 3.4))
    width = 0.25
    for offset, level in enumerate(("50", "90", "99")):
        values = [stats[f"p{level}"] if kind == "p" else stats[f"p{level}_ms"]
                  for _, stats, kind in series]
        axes.bar([i + (offset - 1) * width for i in range(len(series))], values, width,
                 label=f"p{level}")
    axes.set_xticks(range(len(series)), [name for name, _, _ in series])
    axes.set_ylabel("milliseconds")
    axes.set_title("Latency percentiles")
    axes.legend()
    figure.tight_layout()
    figure.savefig(IMAGES / "latency.png", dpi=110)
    plt.close(figure)

HOW = {
    "ipam": ".venv/bin/python bench/ipam.py > bench/results/ipam.json",
    "controller": ".venv/bin/python bench/controller.py --count 1000 "
                  "(and --count 10000); writes bench/results/controller*.json",
    "bgp": "sudo .venv/bin/python bench/bgp.py (writes bench/results/bgp.json)",
    "layer2": "sudo .venv/bin/python bench/layer2.py (writes bench/results/layer2.json)",
    "vip": "sudo .venv/bin/python bench/vip.py (writes bench/results/vip.json; runs "
           "bench/layer2.py after it for the side-by-side figures)",
    "webhook": ".venv/bin/python bench/webhook.py (writes bench/results/webhook.json)",
    "planner": ".venv/bin/python bench/planner.py (writes bench/results/planner.json)",
    "heartbeats": ".venv/bin/python bench/heartbeats.py (writes "
                  "bench/results/heartbeats.json)",
}
TARGETS = {
    "ipam": "100,000 allocations <= 2 s, rebuild of 100,000 <= 2 s, peak RSS <= 200 MB",
    "controller": "p99 create->status <= 100 ms at N=1,000; 10,000 assigned <= 60 s; "
                  "RSS <= 200 MB",
    "bgp": "status->route p99 <= 300 ms; withdraw on SIGTERM <= 500 ms; RSS <= 100 MB",
    "layer2": "failover median <= 2 s, p95 <= 3 s; assignment -> first GARP <= 100 ms",
    "vip": "failover median <= 1 s, p95 <= 2 s over 20 kills; status -> first GARP "
           "median <= 200 ms",
    "webhook": "p99 <= 20 ms per review with 1,000 Eips present",
    "planner": "one Service change planned in <= 5 ms at 10,000 Services x 100 nodes",
    "heartbeats": "no target of its own: a heartbeat later than timeout - interval "
                  "(750 ms) would count the node dead",
}


def _side_by_side(data: dict[str, Any]) -> list[str]:
    """VIP and layer 2 measured in one run, one row per figure."""
    rows = data.get("side_by_side") or {}
    lines = ["### VIP and layer 2 side by side (same run, same lab)", "",
             "| figure | VIP (keepalived) | layer 2 |", "|---|---|---|"]
    for figure, values in rows.items():
        if figure == "peak_rss_per_node_mb":
            for node, mb in values.items():
                lines.append(f"| peak RSS MB, {node} (speaker + keepalived) | "
                             f"{mb.get('vip_speaker')} + {mb.get('vip_keepalived')} = "
                             f"{mb.get('vip_sum')} | {mb.get('layer2_speaker')} |")
            continue
        lines.append(f"| {figure} | {values.get('vip')} | {values.get('layer2')} |")
    return [*lines, "",
            "The fault is the same (SIGKILL of the owner's speaker) but not what follows: "
            "VIP mode's keepalived dies with its speaker and resigns at once (priority 0), "
            "while layer 2 waits for the heartbeat timeout. A VIP master that dies "
            "silently (power, cable) is replaced after about three advertisement "
            "intervals, and restart_to_back includes the 5 s preempt delay (the old "
            "master keeps serving meanwhile). status_to_garp for VIP is VRRP's first "
            "election: every instance starts as backup and waits about three intervals.",
            ""]


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        rows: list[tuple[str, str]] = []
        for key, value in data.items():
            rows += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(data, list) and len(data) > 8:
        return [(prefix, f"{len(data)} values")]
    return [(prefix, json.dumps(data))]


def main() -> None:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/report.py` from `bench/results/*.json`; do not edit by hand.",
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, 2 cores, 24 GiB (this workplace's fixed size).",
        "Benchmarks are run on demand, never asserted in tests.",
        "",
    ]
    results = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    lines += _summary(results)
    _plots(results)
    for path in sorted(RESULTS.glob("*.json")):
        name = path.stem
        base = name.split("-")[0].split("_")[0]
        data = json.loads(path.read_text())
        lines += [f"## {name}", ""]
        if base in TARGETS:
            lines += [f"Target: {TARGETS[base]}.", ""]
        if base in HOW:
            lines += [f"Reproduce: `{HOW[base]}`", ""]
        if name == "vip":
            lines += _side_by_side(data)
        lines += ["| measure | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in _flatten(data)]
        lines.append("")
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
