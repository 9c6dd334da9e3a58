"""nsnet web in a real browser: Debian's chromium, headless, driven by Selenium, against real labs.

Each test starts ``nsnet web`` on 127.0.0.1 (a free port, a fresh token) and
a browser, and stops both at the end, also on failure. Waits poll the page
with generous timeouts; nothing is timed here (bench/bench_web.py measures).
Screenshots for docs/web.md are saved under docs/img/ as the tests go.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES, ROOT, nsnet, sh, unique_name

pytestmark = pytest.mark.kernel

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = ROOT / "docs" / "img"
WAIT = 30.0
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
"""An XML namespace name: an identifier in the page's code, never fetched."""


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    base: str
    token: str

    def get(self, path: str, token: bool = True, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return _request(self.base + path, None, {**({"X-Nsnet-Token": self.token} if token else {}), **(headers or {})})

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        return _request(self.base + path, body, {"Content-Type": "application/json", **headers})


def _request(url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def web() -> Iterator[Callable[..., Server]]:
    """Start ``nsnet web [ARGS]``; every server started is stopped at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nsnet", "web", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.match(r"nsnet web: (http://127\.0\.0\.1:\d+)/\?token=([\w-]+)", line)
        assert match, line + (proc.stderr.read() if proc.stderr else "")
        return Server(proc, line.split(" ", 2)[2].strip(), match.group(1), match.group(2))

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1700,1000",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:  # an element the page redrew between finding and reading it: ask again
        waiter = WebDriverWait(driver, timeout, 0.05, ignored_exceptions=(StaleElementReferenceException,))
        return waiter.until(condition)
    except TimeoutException:
        status = driver.execute_script("return document.getElementById('status')?.textContent")
        raise AssertionError(f"waited {timeout} s for {what}; page status: {status!r}") from None


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def texts(driver: Any, selector: str) -> list[str]:
    return [
        str(t)
        for t in driver.execute_script(f"return [...document.querySelectorAll({selector!r})].map(e => e.textContent)")
    ]


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / name))


def mac(lab: str, node: str, iface: str) -> str:
    return sh("ip", "-n", f"{lab}-{node}", "-br", "link", "show", iface).split()[2]


def up(lab: str, example: str) -> None:
    result = nsnet("up", str(EXAMPLES / example), "--name", lab)
    assert result.code == 0, result.text


def explain_on_page(driver: Any, src: str, dst: str) -> None:
    from selenium.webdriver.support.ui import Select

    css(driver, '.tabs button[data-tab="explain"]')[0].click()
    Select(css(driver, "#ex-src")[0]).select_by_visible_text(src)
    field = css(driver, "#ex-dst")[0]
    field.clear()
    field.send_keys(dst)
    driver.execute_script("document.getElementById('explain-out').innerHTML = ''")
    css(driver, "#ex-go")[0].click()
    wait(driver, lambda d: css(d, "#explain-verdict") or css(d, "#explain-error"), "the explanation")


# -- the server alone ----------------------------------------------------------------


def test_token_is_required(web: Callable[..., Server]) -> None:
    server = web()
    assert server.get("/", token=False)[0] == 403
    assert server.get("/api/labs", token=False)[0] == 403
    assert server.get("/static/app.js", token=False)[0] == 403
    assert server.get("/?token=wrong", token=False)[0] == 403
    code, body = server.get("/api/labs", token=False, headers={"X-Nsnet-Token": server.token + "x"})
    assert code == 403 and b"token" in body
    assert server.get(f"/?token={server.token}", token=False)[0] == 200
    assert server.get("/api/labs")[0] == 200
    # a change needs the header: the cookie a browser would send along is not enough
    cookie = {"Cookie": f"nsnet_token={server.token}"}
    assert server.get("/api/labs", token=False, headers=cookie)[0] == 200
    code, body = server.post("/api/labs/x/explain", b'{"src": "A", "dst": "B"}', cookie)
    assert code == 403 and b"X-Nsnet-Token" in body


def test_read_only_by_default(web: Callable[..., Server], lab_name: str) -> None:
    up(lab_name, "lab2-bridge.yaml")
    server = web(lab_name)
    code, body = server.post(f"/api/labs/{lab_name}/down", b"{}", {"X-Nsnet-Token": server.token})
    assert code == 400 and b"--allow-changes" in body
    assert Path(f"/run/nsnet/labs/{lab_name}.json").exists()
    code, body = server.post(
        f"/api/labs/{lab_name}/explain", b'{"src": "RED", "dst": "NOPE"}', {"X-Nsnet-Token": server.token}
    )
    assert code == 400 and b"NOPE" in body, body


def test_bad_arguments_are_clear_errors() -> None:
    result = nsnet("web", "--listen", "localhost-ish")
    assert result.code == 2 and "--listen takes an IP address" in result.err
    result = nsnet("web", "no-such-lab-here")
    assert result.code == 4 and "no lab named 'no-such-lab-here'" in result.err


def test_no_asset_references_an_external_url(web: Callable[..., Server]) -> None:
    server = web()
    code, page = server.get("/")
    assert code == 200
    html = page.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(assets) == ["static/app.css", "static/app.js"]
    shipped = sorted(p.name for p in (ROOT / "src/nsnet/web/static").iterdir())
    bodies = {"index.html": html}
    for name in shipped:
        code, body = server.get(f"/static/{name}")
        assert code == 200, name
        bodies[name] = body.decode()
    for name, text in bodies.items():
        urls = [u for u in re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text) if u != SVG_NAMESPACE]
        assert not urls, f"{name} references {urls}"
        assert not re.search(r"@import|url\((?!#)", text), name


# -- the page ------------------------------------------------------------------------


def test_lab2_live_with_explain_and_the_fix(web: Callable[..., Server], browser: Any, lab_name: str) -> None:
    up(lab_name, "lab2-bridge.yaml")
    server = web(lab_name)
    browser.get(server.url)
    wait(browser, lambda d: css(d, '.iface[data-key="BLUE/beth0"]'), "the picture of lab 2")
    # the tutorial's picture: RED, BLUE, the host's br0, the veth pairs, the seed's addresses
    assert texts(browser, ".box-title") == ["RED", "BLUE", "host"]
    cards = {e.get_attribute("data-key"): e.text for e in css(browser, ".iface")}
    assert set(cards) == {"RED/reth0", "BLUE/beth0", "host/br0", "host/reth1", "host/beth1"}
    assert "11.11.11.2/24" in cards["RED/reth0"] and "11.11.11.3/24" in cards["BLUE/beth0"]
    assert mac(lab_name, "RED", "reth0") in cards["RED/reth0"]
    wires = {(e.get_attribute("data-a"), e.get_attribute("data-b")) for e in css(browser, "line.wire")}
    assert wires == {("RED/reth0", "host/reth1"), ("BLUE/beth0", "host/beth1")}
    assert len(css(browser, "line.port-link")) == 2  # reth1 and beth1 are ports of br0
    assert not css(browser, ".entry")

    # a ping fills RED's and BLUE's neighbour tables and teaches br0 both MACs, on the page as it happens
    red_mac, blue_mac = mac(lab_name, "RED", "reth0"), mac(lab_name, "BLUE", "beth0")
    ping = nsnet("exec", lab_name, "RED", "--", "ping", "-c", "1", "-W", "1", "11.11.11.3")
    assert ping.code != 0  # the seed's failure: 100% loss
    expected = {
        "RED's entry": f'g[data-entries="RED/reth0"] .neigh[data-address="11.11.11.3"][data-mac="{blue_mac}"]',
        "BLUE's entry": f'g[data-entries="BLUE/beth0"] .neigh[data-address="11.11.11.2"][data-mac="{red_mac}"]',
        "br0 learning RED": f'g[data-entries="host/reth1"] .fdb[data-mac="{red_mac}"][data-kind="learned"]',
        "br0 learning BLUE": f'g[data-entries="host/beth1"] .fdb[data-mac="{blue_mac}"][data-kind="learned"]',
    }
    for what, selector in expected.items():
        wait(browser, lambda d, selector=selector: css(d, selector), what)
    shot(browser, "web-live.png")

    # explain RED -> BLUE: dies in the host's FORWARD chain, by its policy DROP; the seed's fix
    explain_on_page(browser, "RED", "BLUE")
    dies = wait(browser, lambda d: css(d, 'g.dies[data-node="host"]'), "the failing step on the host")[0]
    assert "netfilter FORWARD" in dies.text and "DROP by policy DROP of FORWARD" in dies.text
    assert css(browser, '.box.dead[data-node="host"]')
    bad = css(browser, ".badge.bad")
    assert [b.get_attribute("data-node") for b in bad] == ["host"]
    assert css(browser, "#fix-command")[0].text == (
        f"ip netns exec {lab_name}-host iptables -t filter -A FORWARD -s 11.11.11.0/24 -j ACCEPT"
    )
    assert "chain: FORWARD, source: 11.11.11.0/24, action: ACCEPT" in css(browser, "#fix-topology")[0].text
    assert "RED cannot reach BLUE" in css(browser, "#explain-verdict")[0].text
    assert not css(browser, "button#fix-apply")  # read-only
    hit = {e.get_attribute("data-key") for e in css(browser, ".iface.hit")}
    assert hit == {"RED/reth0", "host/reth1", "host/br0", "host/beth1"}  # then FORWARD, in the host, drops it
    shot(browser, "web-explain.png")

    # the fixed lab: the same explain draws the whole way there and back
    up(lab_name, "lab2-bridge-fixed.yaml")
    explain_on_page(browser, "RED", "BLUE")
    verdict = css(browser, "#explain-verdict")[0]
    assert "ok" in verdict.get_attribute("class")
    assert not css(browser, "g.dies") and not css(browser, ".box.dead") and not css(browser, ".badge.bad")
    legs = {leg: [] for leg in ("0", "1")}
    for b in css(browser, ".badge"):
        legs[b.get_attribute("data-leg")].append(b.get_attribute("data-node"))
    assert list(dict.fromkeys(legs["0"])) == ["RED", "host", "BLUE"]
    assert list(dict.fromkeys(legs["1"])) == ["BLUE", "host", "RED"]
    assert len(css(browser, "polyline.path")) == 2
    hit = {e.get_attribute("data-key") for e in css(browser, ".iface.hit")}
    assert hit == {"RED/reth0", "host/reth1", "host/br0", "host/beth1", "BLUE/beth0"}
    shot(browser, "web-explain-fixed.png")

    # a link going down, and an address added, show on their cards; the neighbour entries it flushes go
    sh("ip", "-n", f"{lab_name}-RED", "link", "set", "reth0", "down")
    wait(browser, lambda d: css(d, '.iface.state-down[data-key="RED/reth0"]'), "RED's reth0 down")
    wait(browser, lambda d: css(d, '.iface.state-no-carrier[data-key="host/reth1"]'), "reth1 without carrier")
    wait(browser, lambda d: not css(d, 'g[data-entries="RED/reth0"] .neigh'), "RED's entries flushed")
    assert css(browser, "line.wire.down")
    sh("ip", "-n", f"{lab_name}-RED", "link", "set", "reth0", "up")
    sh("ip", "-n", f"{lab_name}-RED", "addr", "add", "11.11.11.20/24", "dev", "reth0")
    wait(browser, lambda d: css(d, '.iface.state-up[data-key="RED/reth0"]'), "RED's reth0 up again")
    wait(browser, lambda d: "11.11.11.20/24" in css(d, '.iface[data-key="RED/reth0"]')[0].text, "the new address")
    events = css(browser, "#events-out")[0].get_attribute("textContent")
    assert "[RED] link change" in events and "11.11.11.20/24 dev reth0" in events


SIX_STEPS = [
    ("ARP request", ["R", "~", "B"]),
    ("ARP reply", ["B", "~", "R"]),
    ("ICMP echo request", ["R", "~", "B"]),
    ("ICMP echo reply", ["B", "~", "R"]),
    ("ARP request", ["B", "~", "R"]),
    ("ARP reply", ["R", "~", "B"]),
]


def test_capture_shows_the_seeds_six_steps(web: Callable[..., Server], browser: Any, lab_name: str) -> None:
    up(lab_name, "lab2-bridge-fixed.yaml")
    server = web(lab_name)
    browser.get(server.url)
    wait(browser, lambda d: css(d, '.iface[data-key="BLUE/beth0"]'), "the picture")
    css(browser, '.tabs button[data-tab="capture"]')[0].click()
    css(browser, "#cap-points-box summary")[0].click()
    for box in css(browser, "#cap-points input"):
        if box.is_selected() != (box.get_attribute("value") in ("RED:reth0", "host:br0", "BLUE:beth0")):
            box.click()
    css(browser, "#cap-filter")[0].send_keys("arp or icmp")
    css(browser, "#cap-start")[0].click()
    wait(browser, lambda d: css(d, '#cap-status[data-state="running"]'), "the capture to start")
    assert "[R] RED:reth0" in css(browser, "#cap-status")[0].text

    assert nsnet("exec", lab_name, "RED", "--", "ping", "-c", "1", "-W", "2", "11.11.11.3").code == 0
    # the ARP back comes when BLUE checks the entry it used to answer (about 5 s later)
    wait(browser, lambda d: len(css(d, "#cap-steps li")) >= 6, "six steps")
    steps = texts(browser, "#cap-steps li")[:6]
    for text, (kind, path) in zip(steps, SIX_STEPS, strict=True):
        assert text.startswith(f"#{steps.index(text) + 1} {kind}: {' → '.join(path)}"), steps
    lines = texts(browser, "#cap-lines .line")
    assert len(lines) >= 18 and lines[0].startswith("[R] ") and "Request who-has 11.11.11.3 tell 11.11.11.2" in lines[0]

    # replayed step by step: each step lights the points it crossed, in order, with the time of each hop
    css(browser, "#cap-steps li")[0].click()
    for number, (_kind, path) in enumerate(SIX_STEPS):
        if number:
            css(browser, "#cap-next")[0].click()
        hops = css(browser, "g.hop")
        assert [h.text.split()[0] for h in hops] == ["1", "2", "3"]
        assert [h.get_attribute("data-point") for h in hops] == [
            {"R": "RED:reth0", "~": "host:br0", "B": "BLUE:beth0"}[tag] for tag in path
        ]
        assert "+" in hops[1].text and ("µs" in hops[1].text or "ms" in hops[1].text)
        if number == 2:
            shot(browser, "web-capture.png")
    # a line of the timeline selects its packet
    css(browser, "#cap-lines .line")[0].click()
    assert css(browser, "#cap-steps li.sel")[0].get_attribute("data-n") == "1"

    css(browser, "#cap-stop")[0].click()
    link = wait(browser, lambda d: [a for a in css(d, "#cap-download") if a.is_displayed()], "the download link")[0]
    href = link.get_attribute("href")
    code, body = _request(href, None, {})
    assert code == 200 and body[:4] == b"\x0a\x0d\x0d\x0a"  # a pcapng section header block
    read = subprocess.run(["tcpdump", "-n", "-r", "-"], input=body, capture_output=True, check=False)
    assert read.returncode == 0 and read.stdout.decode().count("\n") == len(lines), read.stderr


def _same_text(text: str) -> str:
    return "\n".join(re.sub(r"\s+", " ", re.sub(r"\d+", "N", line)).strip() for line in text.splitlines())


def test_reach_inspect_and_labs_coming_and_going(
    web: Callable[..., Server], browser: Any, lab_name: str, new_lab_name: list[str]
) -> None:
    up(lab_name, "lab2-bridge.yaml")
    server = web(lab_name)
    browser.get(server.url)
    wait(browser, lambda d: css(d, '.iface[data-key="BLUE/beth0"]'), "the picture")

    # inspect: a node's title opens what `nsnet inspect LAB NODE` prints
    css(browser, '.box-title[data-node="host"]')[0].click()
    out = wait(browser, lambda d: css(d, '#inspect-out[data-node="host"]'), "inspect host")[0]
    printed = nsnet("inspect", lab_name, "host").out
    page = out.get_attribute("textContent")
    assert page.startswith(f"$ nsnet inspect {lab_name} host\n")
    assert _same_text(page.split("\n", 1)[1]) == _same_text(printed)  # counters and their column widths aside
    flat = re.sub(r"\s+", " ", page)
    for words in ("filter/FORWARD policy DROP", "reth1", "beth1", "br0", "net.bridge.bridge-nf-call-iptables 1"):
        assert words in flat, words
    shot(browser, "web-inspect.png")

    # reach: the matrix; a failing pair opens its explanation
    css(browser, '.tabs button[data-tab="reach"]')[0].click()
    css(browser, "#reach-go")[0].click()
    wait(browser, lambda d: css(d, "#reach-table"), "the reach matrix", timeout=60)
    assert css(browser, 'line.reach-bad[data-a="BLUE"][data-b="RED"]')  # the overlay: the pair, in red
    shot(browser, "web-reach.png")
    failing = css(browser, 'td.bad[data-src="RED"][data-dst="BLUE"]')
    assert failing and css(browser, 'td.bad[data-src="BLUE"][data-dst="RED"]')
    failing[0].click()
    wait(browser, lambda d: css(d, 'g.dies[data-node="host"]'), "the explanation of the failing pair")

    # a lab brought up while the page is open appears; one brought down disappears, and its view closes
    other = unique_name()
    new_lab_name.append(other)
    up(other, "lab2-bridge-fixed.yaml")
    wait(browser, lambda d: css(d, f'#labs button[data-lab="{other}"]'), "the new lab's tab")
    css(browser, f'#labs button[data-lab="{other}"]')[0].click()
    wait(browser, lambda d: css(d, f'#picture[data-lab="{other}"] .iface[data-key="RED/reth0"]'), "the new lab")
    assert nsnet("down", other).code == 0
    wait(browser, lambda d: not css(d, "#picture svg"), "the view of the lab that went down to close")
    status = css(browser, "#status")[0].text
    assert other in status and ("went down" in status or "is down" in status), status
    wait(browser, lambda d: not css(d, f'#labs button[data-lab="{other}"]'), "its tab to go")
    assert css(browser, f'#labs button[data-lab="{lab_name}"]')


def confirm(driver: Any, accept: bool = True) -> str:
    from selenium.webdriver.support import expected_conditions

    wait(driver, expected_conditions.alert_is_present(), "the confirmation")
    alert = driver.switch_to.alert
    text = str(alert.text)
    if accept:
        alert.accept()
    else:
        alert.dismiss()
    return text


def test_allow_changes_fix_down_and_up_behind_confirmations(
    web: Callable[..., Server], browser: Any, lab_name: str, new_lab_name: list[str]
) -> None:
    up(lab_name, "lab2-bridge.yaml")
    server = web(lab_name, "--allow-changes")
    browser.get(server.url)
    wait(browser, lambda d: css(d, '.iface[data-key="BLUE/beth0"]'), "the picture")
    assert "changes allowed" in css(browser, "#mode")[0].text

    # the fix explain proposes, applied from the page after a confirmation: the packet then gets through
    explain_on_page(browser, "RED", "BLUE")
    css(browser, "#fix-apply")[0].click()
    assert "iptables -t filter -A FORWARD -s 11.11.11.0/24 -j ACCEPT" in confirm(browser, accept=False)
    assert nsnet("exec", lab_name, "RED", "--", "ping", "-c", "1", "-W", "1", "11.11.11.3").code != 0
    css(browser, "#fix-apply")[0].click()
    confirm(browser)
    verdict = "return document.getElementById('explain-verdict')?.className || ''"
    wait(browser, lambda d: "ok" in d.execute_script(verdict), "the new verdict")
    assert not css(browser, "g.dies")
    assert nsnet("exec", lab_name, "RED", "--", "ping", "-c", "1", "-W", "2", "11.11.11.3").code == 0

    # down, after a confirmation (refused first: nothing happens)
    css(browser, '.tabs button[data-tab="lab"]')[0].click()
    css(browser, "#lab-down")[0].click()
    assert lab_name in confirm(browser, accept=False)
    assert Path(f"/run/nsnet/labs/{lab_name}.json").exists()
    css(browser, "#lab-down")[0].click()
    confirm(browser)
    wait(browser, lambda d: not css(d, "#picture svg"), "the view to close")
    wait(browser, lambda d: not Path(f"/run/nsnet/labs/{lab_name}.json").exists(), "the lab to be down")

    # up of a topology file, under a name of its own
    other = unique_name()
    new_lab_name.append(other)
    css(browser, "#up-file")[0].send_keys(str(EXAMPLES / "lab2-bridge-fixed.yaml"))
    css(browser, "#up-name")[0].send_keys(other)
    css(browser, "#up-go")[0].click()
    assert other in confirm(browser)
    wait(browser, lambda d: css(d, f'#labs button[data-lab="{other}"]'), "the new lab's tab", timeout=60)
    assert nsnet("exec", other, "RED", "--", "ping", "-c", "1", "-W", "2", "11.11.11.3").code == 0


def test_overlay_lab_with_a_probed_explanation(web: Callable[..., Server], browser: Any, lab_name: str) -> None:
    up(lab_name, "overlay-static.yaml")
    server = web(lab_name)
    browser.get(server.url)
    wait(browser, lambda d: css(d, '.iface[data-key="BLUE/beth0"]'), "the picture")
    # hosts A and B (and the underlay) are boxes of their own; the VXLAN devices are joined by a tunnel
    titles = texts(browser, ".box-title")
    assert titles[:2] == ["RED", "BLUE"] and {"A", "B"} <= set(titles[2:])
    assert css(browser, '.iface.kind-vxlan[data-key="A/vxlan1"]') and css(
        browser, '.iface.kind-vxlan[data-key="B/vxlan1"]'
    )
    assert len(css(browser, "path.tunnel")) == 1
    wires = {(e.get_attribute("data-a"), e.get_attribute("data-b")) for e in css(browser, "line.wire")}
    assert ("RED/reth0", "A/vred") in wires and ("BLUE/beth0", "B/vblue") in wires

    # explain with --probe: the kernel's account beside the prediction, and their agreement
    css(browser, "#ex-probe")[0].click()
    explain_on_page(browser, "RED", "BLUE")
    assert "ok" in css(browser, "#explain-verdict")[0].get_attribute("class")
    observed = wait(browser, lambda d: css(d, "#explain-observed"), "the probe's result")[0].text
    assert "observed (--probe)" in observed and "seen at" in observed
    assert "prediction and observation agree" in observed
    assert not css(browser, "#explain-disagree") and not css(browser, "#banner:not([hidden])")
    hit = {e.get_attribute("data-key") for e in css(browser, ".iface.hit")}
    assert hit == {
        *("RED/reth0", "A/vred", "A/br0", "A/vxlan1", "A/eth0"),
        *("B/eth0", "B/vxlan1", "B/br0", "B/vblue", "BLUE/beth0"),
    }, hit
    shot(browser, "web-overlay.png")
