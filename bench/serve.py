"""`tinbao serve` scaling: 1 instance against 2, webhook mode, behind Caddy, on PostgreSQL.

    python bench/serve.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench
    python bench/serve.py --database-url ... --think-ms 5000 --conversations-per-citizen 2

For each configuration (1 then 2 instances, alternating with --repeat), on a fresh emulator
(`tinbao emulator --no-limits`) and a fresh schema (schema public of --database-url is DROPPED
and recreated, then `tinbao db upgrade`): start the instances (`tinbao serve`), the real Caddy
in front of them (round robin; with one instance too, so both runs pay the same proxy), point
the emulator's webhook at Caddy, and play N citizens x K complete tips (bench/intake.py's
steps and driver), every one checked to end with a receipt code.

What it judges, on a 2-core machine that also runs the emulator, the citizens, Caddy and
PostgreSQL (two instances cannot double the rate here; what scaling needs is no coordination
cost between them):
- closed loop (default): bot CPU per update on 2 instances <= 1.15 x that of 1, and updates/s
  on 2 >= those of 1;
- --think-ms 5000: p99 latency of 200 citizens pausing 5 s between steps (goal < 100 ms).
Figures only: the exit code is 0 whether goals pass or not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

# Run as `python bench/serve.py`: the repository root holds the bench package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.intake import (
    FIRST_USER_ID,
    TINBAO,
    TINBAO_ENDING_MESSAGES,
    TINBAO_STEPS,
    TINBAO_TOKEN,
    WARMUP_USER_ID,
    Driver,
    Options,
    Processes,
    RunResult,
    SseReplies,
    cpu_seconds,
    free_port,
    machine,
    machine_busy_seconds,
    make_client,
    postgres_cpu_seconds,
    profile_summary,
    reset_postgres,
    start_emulator,
    start_py_spy,
    stop_py_spy,
    tinbao_done,
    wait_until,
)
from sandbox.client import User

GOAL_CPU_RATIO = 1.15
GOAL_P99_MS = 100.0
WEBHOOK_SECRET = "bench-serve-webhook-secret"
console = Console(stderr=True)


def caddyfile(port: int, upstreams: list[int]) -> str:
    """A plain-http Caddy balancing round robin over the instances, health-checked on /readyz."""
    targets = " ".join(f"127.0.0.1:{upstream}" for upstream in upstreams)
    return (
        "{\n\tadmin off\n\tauto_https off\n}\n"
        f"http://127.0.0.1:{port} {{\n\treverse_proxy {targets} {{\n"
        "\t\tlb_policy round_robin\n\t\tlb_try_duration 5s\n"
        "\t\thealth_uri /readyz\n\t\thealth_interval 2s\n\t}\n}\n"
    )


async def run_serve(
    instances: int, options: Options, processes: Processes, workdir: Path
) -> RunResult:
    """One configuration: emulator, N instances, Caddy, warm-up, then the citizens."""
    assert options.database_url is not None
    name = f"{instances} instance{'s' if instances > 1 else ''}"
    result = RunResult(name, options.citizens, options.conversations)
    await reset_postgres(options.database_url)
    url = await start_emulator(processes, TINBAO_TOKEN)
    env = {
        "TINBAO_BOT_TOKEN": TINBAO_TOKEN,
        "TINBAO_TELEGRAM_API_URL": url,
        "TINBAO_DATABASE_URL": options.database_url,
        "TINBAO_SECRET_KEY": secrets.token_urlsafe(48),
        "TINBAO_MODE": "dev",
        "TINBAO_DATA_DIR": str(workdir / "data"),
        "TINBAO_MESSAGES_PER_MINUTE": "1000000",
        "TINBAO_TIPS_PER_HOUR": "1000000",
        "TINBAO_BOT_MAX_RATE": "0",
        "TINBAO_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    upgrade = subprocess.run(
        [TINBAO, "db", "upgrade"], env={**os.environ, **env}, cwd=workdir, capture_output=True
    )
    if upgrade.returncode != 0:
        raise RuntimeError(upgrade.stderr.decode(errors="replace"))
    ports = [free_port() for _ in range(instances)]
    names = [f"serve-{index + 1}" for index in range(instances)]
    pids = [
        processes.start(
            label, [TINBAO, "serve", "--port", str(port)], {**env, "TINBAO_LOG_FORMAT": "text"}
        )
        for label, port in zip(names, ports, strict=True)
    ]
    front = free_port()
    (workdir / "Caddyfile").write_text(caddyfile(front, ports), encoding="utf-8")
    caddy_pid = processes.start(
        "caddy", ["caddy", "run", "--config", str(workdir / "Caddyfile"), "--adapter", "caddyfile"]
    )
    client = make_client(url, TINBAO_TOKEN, options.citizens)
    replies = SseReplies(url, TINBAO_TOKEN) if options.wait == "sse" else None
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def ready() -> bool:
                answers = [await http.get(f"http://127.0.0.1:{port}/readyz") for port in ports]
                front_answer = await http.get(f"http://127.0.0.1:{front}/readyz")
                return all(a.status_code == 200 for a in [*answers, front_answer])

            def alive() -> None:
                for label in [*names, "caddy"]:
                    processes.check(label)

            console.print(f"[bold]{name}[/bold]: waiting for the instances and Caddy")
            await wait_until(name, ready, 120, alive)
            answer = await http.post(
                f"{url}/bot{TINBAO_TOKEN}/setWebhook",
                json={
                    "url": f"http://127.0.0.1:{front}/telegram/webhook",
                    "secret_token": WEBHOOK_SECRET,
                    "max_connections": 100,
                },
            )
            answer.raise_for_status()
        if replies is not None:
            await replies.start()
        driver = Driver(
            client,
            replies,
            TINBAO_STEPS,
            tinbao_done,
            result,
            step_timeout=options.step_timeout,
            think=options.think,
            ending_messages=TINBAO_ENDING_MESSAGES,
        )
        for warm in range(instances * 2):  # round robin: each instance warms up
            if not await driver.conversation(User(WARMUP_USER_ID - warm, "Warm"), record=False):
                raise RuntimeError(f"{name}: warm-up failed: {dict(result.errors)}")
        result.errors.clear()
        watched = {"driver": os.getpid(), "emulator": processes.running["emulator"].pid}
        watched |= {label: pid for label, pid in zip(names, pids, strict=True)}
        watched["caddy"] = caddy_pid
        before = {who: cpu_seconds(pid) for who, pid in watched.items()}
        postgres_before = postgres_cpu_seconds()
        machine_before = machine_busy_seconds()
        users = [
            User(FIRST_USER_ID + i, f"Citizen {i}", language_code="vi")
            for i in range(options.citizens)
        ]
        console.print(
            f"[bold]{name}[/bold]: {options.citizens} citizens x {options.conversations} tips"
        )
        spies = []
        if options.profile is not None:
            options.profile.mkdir(parents=True, exist_ok=True)
            spies = [
                start_py_spy(pid, options.profile / f"{instances}-{label}.txt")
                for label, pid in zip(names, pids, strict=True)
            ]
        started = time.perf_counter()
        try:
            await asyncio.gather(*(driver.citizen(user, options.conversations) for user in users))
        finally:
            for spy in spies:
                stop_py_spy(spy)
        result.seconds = time.perf_counter() - started
        result.cpu = {
            who: (cpu_seconds(pid) - before[who]) / result.seconds * 100
            for who, pid in watched.items()
        }
        result.cpu["postgres"] = (postgres_cpu_seconds() - postgres_before) / result.seconds * 100
        machine_cpu = (machine_busy_seconds() - machine_before) / result.seconds * 100
        result.cpu["other"] = max(0.0, machine_cpu - sum(result.cpu.values()))
        result.bot_cpu_seconds = sum(result.cpu[label] for label in names) / 100 * result.seconds
        result.emulator_errors = dict((await client.counters()).get("errors_by_code", {}))
        alive()
        for label in names:
            result.bot_log_errors += processes.log_lines(label, " ERROR ")
    finally:
        if replies is not None:
            await replies.aclose()
        await client.aclose()
        for label in ["caddy", *names, "emulator"]:
            if label in processes.running:
                processes.stop(label)
    return result


def judge(runs: dict[int, RunResult], options: Options) -> dict[str, Any]:
    """The goals this run can judge, from its figures."""
    one, two = runs.get(1), runs.get(2)
    verdict: dict[str, Any] = {}
    if one is not None and two is not None and one.updates and two.updates:
        cpu_one = one.bot_cpu_seconds / one.updates
        cpu_two = two.bot_cpu_seconds / two.updates
        verdict["cpu_per_update_ratio_2_vs_1"] = round(cpu_two / cpu_one, 3)
        verdict["cpu_goal_met"] = cpu_two <= GOAL_CPU_RATIO * cpu_one
        verdict["updates_per_s_ratio_2_vs_1"] = round(
            (two.updates / two.seconds) / (one.updates / one.seconds), 3
        )
        verdict["rate_goal_met"] = two.updates / two.seconds >= one.updates / one.seconds
    if options.think and two is not None:
        p99 = two.figures()["latency_ms"]["p99"]
        verdict["p99_ms_2_instances"] = p99
        verdict["p99_goal_met"] = p99 is not None and p99 < GOAL_P99_MS
    return verdict


def report(runs: dict[int, RunResult], options: Options) -> dict[str, Any]:
    """Print the table and return every figure."""
    table = Table(title=f"tinbao serve, {options.citizens} citizens, think {options.think:g} s")
    table.add_column("figure")
    for count in sorted(runs):
        table.add_column(runs[count].name, justify="right")
    figures = {count: runs[count].figures() for count in sorted(runs)}
    rows = [
        ("updates", lambda f: f["updates"]),
        ("updates/s", lambda f: f["updates_per_s"]),
        ("p50 ms", lambda f: f["latency_ms"]["p50"]),
        ("p99 ms", lambda f: f["latency_ms"]["p99"]),
        ("bot CPU ms/update (all instances)", lambda f: f["bot_cpu_ms_per_update"]),
        ("errors", lambda f: f["errors"]),
        ("unique receipts", lambda f: f["unique_receipts"]),
    ]
    for label, pick in rows:
        table.add_row(label, *(str(pick(figures[count])) for count in sorted(runs)))
    for who in sorted({key for f in figures.values() for key in f["cpu_percent_of_one_core"]}):
        table.add_row(
            f"CPU % {who}",
            *(str(figures[c]["cpu_percent_of_one_core"].get(who, "-")) for c in sorted(runs)),
        )
    out = Console()
    out.print(table)
    verdict = judge(runs, options)
    for key, value in verdict.items():
        out.print(f"{key}: {value}")
    if options.profile is not None:
        for path in sorted(options.profile.glob("*-serve-*.txt")):
            summary = profile_summary(path)
            out.print(f"[bold]py-spy {path.stem}: top frames, self share of samples[/bold]")
            for frame, share in summary.get("self", [])[:20]:
                out.print(f"  {share:5.1f}%  {frame}")
    return {"machine": machine(), "runs": figures, "verdict": verdict}


async def benchmark(
    options: Options, processes: Processes, workdir: Path, counts: list[int]
) -> dict[str, Any]:
    """Each configuration once per round; the quietest round of each is reported."""
    rounds: dict[int, list[RunResult]] = {count: [] for count in counts}
    for repeat in range(options.repeat):
        if options.repeat > 1:
            console.print(f"[bold]round {repeat + 1} of {options.repeat}[/bold]")
        for count in counts:
            rounds[count].append(await run_serve(count, options, processes, workdir))
    quietest = {
        count: min(runs, key=lambda run: run.cpu.get("other", 0.0))
        for count, runs in rounds.items()
    }
    return report(quietest, options)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; every subprocess is ended on exit."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL (schema public is reset)")
    parser.add_argument("--citizens", type=int, default=200)
    parser.add_argument("--conversations-per-citizen", type=int, default=3)
    parser.add_argument("--think-ms", type=float, default=0.0, help="mean pause between steps")
    parser.add_argument("--instances", default="1,2", help="configurations to run (1,2)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the quietest is shown")
    parser.add_argument("--step-timeout", type=float, default=60.0)
    parser.add_argument("--logs", type=Path, metavar="DIR", help="keep every process's log")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="sample each instance with py-spy into DIR"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    if args.database_url.startswith("sqlite"):
        parser.error("several instances need PostgreSQL")
    if shutil.which("caddy") is None:
        parser.error("caddy is not installed (apt-get install caddy)")
    options = Options(
        citizens=args.citizens,
        conversations=args.conversations_per_citizen,
        database_url=args.database_url,
        wait="sse",
        step_timeout=args.step_timeout,
        think=args.think_ms / 1000,
        profile=args.profile.resolve() if args.profile else None,
        logs=args.logs,
        echo_pool_size=128,
        only="tinbao",
        repeat=max(1, args.repeat),
        quiet_below=None,
        as_json=args.json,
    )
    counts = [int(part) for part in args.instances.split(",")]

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    with tempfile.TemporaryDirectory(prefix="tinbao-bench-serve-") as tmp:
        workdir = Path(tmp)
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
        processes = Processes(args.logs or workdir, workdir)
        try:
            figures = asyncio.run(benchmark(options, processes, workdir, counts))
        finally:
            processes.stop_all()
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
