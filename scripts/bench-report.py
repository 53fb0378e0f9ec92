#!/usr/bin/env python3
"""Turns the load runs of scripts/bench.sh (target/bench/results.json, one JSON object per
step) into the Markdown tables of docs/benchmarks.md: every scenario step with each server
side by side, and the ratios the performance targets are stated in.

    scripts/bench-report.py [target/bench/results.json] > target/bench/report.md
"""
import json
import sys
from collections import OrderedDict

SERVERS = OrderedDict(
    [
        ("sluice", "Sluice"),
        ("bare", "bare forwarder"),
        ("janus", "Janus (default)"),
        ("janus_loops1", "Janus (event_loops = 1)"),
    ]
)


def load(path):
    steps = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                steps.append(json.loads(line))
    return steps


def cell(step):
    if step is None:
        return "not reached"
    if "error" in step:
        return "failed to set up"
    loss = step["loss_ratio"] * 100
    behind = step.get("shortfall_ratio", 0) * 100
    text = "{:,.0f} · {:.0f}% · {:,}/{:,} µs".format(
        step["packets_per_cpu_second"],
        step["server_core_share"] * 100,
        step["latency_p50_us"],
        step["latency_p99_us"],
    )
    if loss >= 0.01 or behind >= 1:
        text += " · **loss {:.2f}%, behind {:.1f}%**".format(loss, behind)
    return text


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "target/bench/results.json"
    steps = load(path)
    servers = [s for s in SERVERS if any(step["target"] == s for step in steps)]
    rows = OrderedDict()
    for step in steps:
        key = (step["scenario"], step["size"])
        rows.setdefault(key, {})[step["target"]] = step

    print("Each cell: forwarded packets per server CPU-second · the server's share of its core ·")
    print("time inside the server p50/p99. Loss is shown only where there was some.\n")
    print("| scenario | sessions | delivered/s | " + " | ".join(SERVERS[s] for s in servers) + " |")
    print("|---|---:|---:|" + "---|" * len(servers))
    for (scenario, size), by_server in rows.items():
        any_step = next(s for s in by_server.values() if "error" not in s)
        sessions = any_step["publishers"] + any_step["subscriptions"]
        print(
            "| {} {} | {:,} | {:,.0f} | ".format(
                scenario, size, sessions, any_step["delivered_per_s"]
            )
            + " | ".join(cell(by_server.get(s)) for s in servers)
            + " |"
        )

    print_summary(steps, servers)

    print("\nRatios of forwarded packets per server CPU-second, step by step (only steps where")
    print("both servers kept up: loss under 1%):\n")
    print("| scenario | Sluice / bare forwarder | Sluice / faster Janus |")
    print("|---|---:|---:|")
    for (scenario, size), by_server in rows.items():
        def rate(name):
            step = by_server.get(name)
            if step is None or "error" in step or step["loss_ratio"] > 0.01:
                return None
            return step["packets_per_cpu_second"]

        sluice = rate("sluice")
        bare = rate("bare")
        janus = max([r for r in (rate("janus"), rate("janus_loops1")) if r], default=None)
        fmt = lambda a, b: "{:.2f}x".format(a / b) if a and b else "-"
        print("| {} {} | {} | {} |".format(scenario, size, fmt(sluice, bare), fmt(sluice, janus)))


def family(step):
    """Steps of one ramp share a family: the meetings side by side, the live stream."""
    if step["scenario"] == "room" and "rooms=" in step["size"]:
        return "meetings of 10 side by side"
    if step["scenario"] == "live":
        return "live stream"
    return "{} {}".format(step["scenario"], step["size"])


def sustained(step):
    return (
        "error" not in step
        and step["loss_ratio"] <= 0.01
        and step.get("shortfall_ratio", 0) <= 0.02
    )


def print_summary(steps, servers):
    """Per scenario: the most each server forwarded without loss, and its best efficiency."""
    families = OrderedDict()
    for step in steps:
        if "error" not in step:
            families.setdefault(family(step), {}).setdefault(step["target"], []).append(step)
    print("\nSummary per scenario. Capacity: the most packets per second a server delivered at a")
    print("step without loss (under 1%) and without falling behind; efficiency: its best forwarded")
    print("packets per CPU-second over the scenario's steps (a saturated step counts: it is where")
    print("a server is most efficient). A server that never kept up shows its efficiency only.\n")
    print("| scenario | " + " | ".join(SERVERS[s] for s in servers)
          + " | Sluice / bare | Sluice / faster Janus |")
    print("|---|" + "---|" * len(servers) + "---:|---:|")
    for name, by_server in families.items():
        cells, efficiency = [], {}
        for server in servers:
            runs = by_server.get(server, [])
            if not runs:
                cells.append("-")
                continue
            efficiency[server] = max(r["packets_per_cpu_second"] for r in runs)
            kept_up = [r for r in runs if sustained(r)]
            capacity = (
                "{:,.0f}/s".format(max(r["delivered_per_s"] for r in kept_up))
                if kept_up
                else "saturated"
            )
            cells.append("{} · {:,.0f}".format(capacity, efficiency[server]))
        sluice = efficiency.get("sluice")
        bare = efficiency.get("bare")
        janus = max([efficiency[j] for j in ("janus", "janus_loops1") if j in efficiency],
                    default=None)
        ratio = lambda a, b: "{:.2f}x".format(a / b) if a and b else "-"
        print("| {} | {} | {} | {} |".format(name, " | ".join(cells), ratio(sluice, bare),
                                             ratio(sluice, janus)))


if __name__ == "__main__":
    main()
