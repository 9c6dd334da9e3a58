"""How fast `nsnet web` draws a large lab, and whether the page stays responsive under a capture flood.

Run as root: python bench/bench_web.py [--nodes 500] [--repeat 5] [--rate 10000] [--seconds 5]

1. It brings up a star lab of N nodes (each a veth to one bridge in the
   lab's host, as bench_build.py builds it) from a topology file, starts
   `nsnet web LAB` on 127.0.0.1 and opens it in Debian's headless chromium
   (Selenium). For each of --repeat page loads it reports: the time from
   navigation to the whole picture drawn (every node's box and every wire in
   the page), how much of it the server took to answer the topology (the
   kernel read through nsnet.graph and nsnet.inspect, and the layout), and
   how long the page's own drawing took. The target: under 2 s.
2. On the seed's lab 2 (fixed) it starts a capture from the page at R, ~ and
   B, sends UDP from RED to BLUE at --rate packets a second for --seconds
   (BLUE has a socket bound that never reads), and meanwhile measures the
   longest stall of the page's main thread (a 50 ms timer's largest late
   tick). It reports the frames captured and dropped by the kernel, the
   lines the page showed and skipped (it keeps the latest; the pcapng file
   has every frame).

Every name carries the bench's process id; the labs, the server and the
browser are removed in `finally` blocks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_build import topology  # noqa: E402
from bench_capture import SENDER, SINK  # noqa: E402

NSNET = [sys.executable, "-m", "nsnet"]


def nsnet(*args: str) -> str:
    return subprocess.run([*NSNET, *args], capture_output=True, text=True, check=True, timeout=600).stdout


def start_server(lab: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen([*NSNET, "web", lab], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)/\?token=([\w-]+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"nsnet web did not start: {line!r}")
    return proc, line.split(" ", 2)[2].strip(), match.group(2)


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1700,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_for(driver: Any, script: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"the page never satisfied: {script}")


def render_bench(n: int, repeat: int) -> list[dict[str, float]]:
    lab = f"bw{os.getpid()}"
    spec = topology(n)
    spec["name"] = lab
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{lab}.yaml"
        path.write_text(yaml.safe_dump(spec))
        print(f"bringing up {n} nodes ...", flush=True)
        nsnet("up", str(path), "-q")
        server, url, _ = start_server(lab)
        driver = None
        runs = []
        try:
            driver = browser()
            for _ in range(repeat):
                driver.get("about:blank")
                started = time.perf_counter()
                driver.get(url)
                wait_for(
                    driver,
                    f"return document.querySelectorAll('#picture .box').length === {n + 1}"
                    f" && document.querySelectorAll('#picture line.wire').length === {n}",
                )
                wall = time.perf_counter() - started
                timing = driver.execute_script(
                    "const t = performance.getEntriesByType('resource').find(e => e.name.includes('/topology'));"
                    "const r = performance.getEntriesByName('nsnet-render').pop();"
                    "return {server: t ? t.duration : null, render: r ? r.duration : null,"
                    " nodes: document.querySelectorAll('#picture .box').length}"
                )
                runs.append({"wall_s": wall, "topology_ms": timing["server"], "render_ms": timing["render"]})
                print(
                    f"  {n} nodes drawn in {wall:.3f} s (topology answer {timing['server']:.0f} ms,"
                    f" drawing {timing['render']:.0f} ms)",
                    flush=True,
                )
        finally:
            if driver is not None:
                driver.quit()
            server.terminate()
            server.wait(timeout=30)
            subprocess.run([*NSNET, "down", lab, "-q"], check=False)
    return runs


def flood_bench(rate: int, seconds: float) -> dict[str, Any]:
    lab = f"bwf{os.getpid()}"
    nsnet("up", str(ROOT / "examples" / "lab2-bridge-fixed.yaml"), "--name", lab, "-q")
    sink = subprocess.Popen(
        ["ip", "netns", "exec", f"{lab}-BLUE", sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True
    )
    server, url, token = start_server(lab)
    driver = None
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "bound"
        driver = browser()
        driver.get(url)
        wait_for(driver, "return document.querySelector('.iface[data-key=\"BLUE/beth0\"]') !== null")
        driver.execute_script(
            "window.__gaps = []; let last = performance.now();"
            "window.__timer = setInterval(() => { const now = performance.now();"
            " window.__gaps.push([now - last - 50, now]); last = now; }, 50);"
        )
        driver.execute_script("document.querySelector('[data-tab=capture]').click()")
        driver.execute_script(
            "for (const i of document.querySelectorAll('#cap-points input'))"
            " i.checked = ['RED:reth0', 'host:br0', 'BLUE:beth0'].includes(i.value);"
            "document.getElementById('cap-filter').value = 'udp';"
            "document.getElementById('cap-start').click();"
        )
        wait_for(driver, "return document.getElementById('cap-status').dataset.state === 'running'")
        sent = subprocess.run(
            ["ip", "netns", "exec", f"{lab}-RED", sys.executable, "-c", SENDER, str(rate), str(seconds)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        time.sleep(1)
        driver.execute_script("document.getElementById('cap-stop').click()")
        wait_for(driver, "return document.getElementById('cap-status').dataset.state === 'stopped'", timeout=60)
        ticks = driver.execute_script("clearInterval(window.__timer); return window.__gaps")
        gaps = sorted(g for g, _ in ticks)
        worst = max(ticks)
        started_at = ticks[0][1]
        capture_id = driver.execute_script("return S.capture.id")
        req = urllib.request.Request(
            f"{url.split('/?')[0]}/api/captures/{capture_id}?line=0&step=0", headers={"X-Nsnet-Token": token}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            done = json.load(r)
        shown = driver.execute_script("return document.querySelectorAll('#cap-lines .line').length")
        result = {
            "rate": rate,
            "sent": int(sent[0]),
            "seconds": float(sent[1]),
            "kernel": done["counters"],
            "page_lines_kept": shown,
            "lines_handed_out": done["last_line"],
            "page_longest_stall_ms": round(gaps[-1], 1),
            "page_p99_stall_ms": round(gaps[int(len(gaps) * 0.99)], 1),
            "page_longest_stall_at_s": round((worst[1] - started_at) / 1000, 2),
        }
        print(json.dumps(result, indent=2), flush=True)
        return result
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
        sink.terminate()
        sink.wait(timeout=10)
        subprocess.run([*NSNET, "down", lab, "-q"], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "web.json"))
    args = parser.parse_args()
    runs = render_bench(args.nodes, args.repeat)
    median = statistics.median(r["wall_s"] for r in runs)
    print(f"median: {args.nodes} nodes drawn in {median:.3f} s (target: under 2 s)", flush=True)
    flood = flood_bench(args.rate, args.seconds)
    Path(args.out).write_text(
        json.dumps({"nodes": args.nodes, "render": runs, "median_s": median, "flood": flood}, indent=2) + "\n"
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
