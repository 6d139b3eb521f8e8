"""The play page of ``blobzero agent`` in a real headless Chromium (Debian's chromium +
chromedriver, ``make browser-tools``): a person's round played by clicking, checked against the
core's rules, with a screenshot; a reload continues the game; the review of the round, the game
file downloaded and opened again.
"""
from __future__ import annotations

import json
import math
import random
import subprocess

import pytest

from blobcore.rules import Rng, Round
from services.triton_local import free_ports
from agent_helpers import start_agent
from triton_helpers import PROJECT_ROOT, PYTHON, export_tiny
from webdriver import Browser

SYMBOLS = {"S": "♠", "H": "♥", "C": "♣", "D": "♦"}


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """The agent, with a small ladder measured in its run's storage (the page names levels by it)."""
    onnx = export_tiny(tmp_path_factory.mktemp("browser-model") / "tiny.onnx", seed=4)
    work = tmp_path_factory.mktemp("browser-agent")
    rated = subprocess.run([PYTHON, "-m", "blobzero.cli", "ladder", "--set", f"storage.games_dir={work}/run/games",
                            "--add", "random", "greedy", "expert", "level:normal", "--model", str(onnx),
                            "--deals", "10"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert rated.returncode == 0, rated.stderr
    proc = start_agent(work, "--onnx", str(onnx))
    yield proc
    assert proc.stop() == 0, proc.log.read_text()[-2000:]


def idle(b: Browser) -> bool:
    return not b.script("return document.body.classList.contains('busy')")


def check_cards_read_at_a_glance(b: Browser) -> int:
    """Every card shows its rank and suit symbol; hearts and diamonds are red, the others not."""
    cards = b.script("return [...document.querySelectorAll('.card')].map(c => "
                     "[c.dataset.card, c.textContent, c.classList.contains('red'), getComputedStyle(c).color])")
    for name, text, red, color in cards:
        rank = "10" if name[0] == "T" else name[0]
        assert text.count(SYMBOLS[name[1]]) == 2 and text.startswith(rank), (name, text)
        assert red == (name[1] in "HD"), name
        assert (color == "rgb(198, 40, 40)") == red, (name, color)
    return len(cards)


def test_play_a_round_by_clicking_and_check_the_score_table(agent, tmp_path):
    [driver_port] = free_ports(1)
    rng = random.Random(5)
    with Browser(driver_port, tmp_path / "chromedriver.log") as b:
        b.get(agent.page)
        b.wait_for(lambda: b.script("return document.getElementById('model-info').textContent"),
                   what="the agent's info")
        # the page plays under its Content-Security-Policy (issue 20): any violation is recorded
        csp = b.script("const x = new XMLHttpRequest(); x.open('GET', '/', false); x.send(); "
                       "return x.getResponseHeader('Content-Security-Policy')")
        assert "script-src 'self'" in csp and "style-src 'self'" in csp, csp
        b.script("window.violations = []; document.addEventListener('securitypolicyviolation', "
                 "e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));")
        # each level and built-in opponent is named with its measured rating (blobzero ladder)
        ratings = json.loads((agent.log.parent / "run" / "ladder" / "ladder.json").read_text())["ratings"]
        b.wait_for(lambda: "rating" in b.text(b.find("#preset option[value=normal]")), what="the ratings")
        normal = b.text(b.find("#preset option[value=normal]"))
        assert normal.startswith("normal 1×24 · rating ") and f"rating {math.floor(ratings['level:normal']['rating'] + 0.5)}" in normal
        assert f"rating {math.floor(ratings['expert']['rating'] + 0.5)}" in b.text(b.find("#opponent-kind option[value=expert]"))
        assert "rating" not in b.text(b.find("#preset option[value=easy]"))      # not measured: no number
        # the agent's levels (blobcore.search_config.LEVELS), weakest first, from /api/info
        assert b.script("return [...document.getElementById('preset').options].map(o => o.value)") == \
            ["easy", "normal", "heavy"]
        assert b.text(b.find("#preset option[value=easy]")) == "easy 1×4"
        assert b.script("return document.getElementById('preset').value") == "heavy"   # medium is no level
        for css, value in (("#players", "4"), ("#cards", "3"), ("#length", "round"),
                           ("#opponent-kind", "model"), ("#preset", "normal")):
            b.select(css, value)
        assert "One round, 3 cards each" in b.text(b.find("#schedule"))
        b.type(b.find("#seed"), "7")
        b.click(b.find("#start"))
        b.wait_for(lambda: idle(b) and not b.script("return document.getElementById('game').hidden"),
                   what="the deal")
        hinted = seen_cards = reloaded = 0
        for _ in range(20):
            if not b.script("return document.getElementById('game-over').hidden"):
                break
            bids = [e for e in b.find_all("#bids .bid-button") if b.enabled(e)]
            if bids:
                b.click(rng.choice(bids))
                b.wait_for(lambda: idle(b), what="the agents' moves")
                before = b.script("return [state.game_id, state.history.length, state.hand]")
                b.get(agent.page)                    # a reload continues the game (issue 29)
                b.wait_for(lambda: b.script("return state !== null && !document.getElementById('game').hidden"),
                           what="the game after a reload")
                assert b.script("return [state.game_id, state.history.length, state.hand]") == before
                b.script("window.violations = []; document.addEventListener('securitypolicyviolation', "
                         "e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));")
                reloaded = 1
                continue
            else:
                if not hinted:        # the hint: probabilities and values for my seat
                    b.click(b.find("#hint"))
                    b.wait_for(lambda: idle(b) and b.find_all("#hint-box tr[data-action]"), what="the hint")
                    rows = b.script("return [...document.querySelectorAll('#hint-box tr[data-action]')]"
                                    ".map(r => r.textContent)")
                    legal = b.script("return state.legal_cards")
                    assert len(rows) == len(legal) and all("%" in r for r in rows)
                    assert "The agent suggests" in b.text(b.find("#hint-box"))
                    widths = b.script("return [...document.querySelectorAll('#hint-box .bar')].map(e => e.style.width)")
                    assert widths and all(w.endswith("px") for w in widths), widths
                    hinted = 1
                seen_cards = max(seen_cards, check_cards_read_at_a_glance(b))
                b.click(rng.choice(b.find_all(".hand .card.legal")))
            b.wait_for(lambda: idle(b), what="the agents' moves")
        shot = b.screenshot(tmp_path / "round-over.png")
        assert shot.stat().st_size > 10_000 and hinted and seen_cards >= 4 and reloaded

        # the review: every decision of mine (1 bid + 3 cards), the costliest marked, a total
        b.wait_for(lambda: b.script("return document.getElementById('review-box').dataset.state") == "done",
                   what="the review")
        rows = b.script("return [...document.querySelectorAll('#review-box tr.decision')].map(r => "
                        "[Number(r.dataset.lost), r.classList.contains('costly'), r.textContent])")
        assert len(rows) == 4, rows
        lost = sorted((v for v, _, _ in rows), reverse=True)
        marked = sorted((v for v, costly, _ in rows if costly), reverse=True)
        assert marked == lost[:len(marked)] and len(marked) == min(3, sum(v > 0.005 for v in lost))
        review_title = b.text(b.find("#review-box h2"))
        assert review_title.startswith("Review of the whole game: ") and "points given away" in review_title
        assert "search normal 1x24" in b.text(b.find("#review-box .options"))
        b.screenshot(tmp_path / "review.png")

        # the game file: downloaded, then opened again from the setup panel
        b.click(b.find("#download"))
        b.wait_for(lambda: b.script("return exportedGame"), what="the game file")
        exported = json.loads(b.script("return exportedGame"))
        assert exported["format"] == "blobzero.game" and exported["over"] and exported["seed"] == 7
        saved = tmp_path / "game.json"
        saved.write_text(b.script("return exportedGame"))
        old_id = b.script("return state.game_id")
        b.click(b.find("#new-game"))
        b.type(b.find("#open-file"), str(saved))
        b.wait_for(lambda: idle(b) and b.script("return state.game_id") != old_id
                   and b.script("return document.getElementById('review-box').dataset.state") == "done",
                   what="the opened game and its review")
        assert b.script("return state.game_over") and b.script("return state.scores") == exported["scores"]
        assert len(b.find_all("#review-box tr.decision")) == 4
        assert b.script("return window.violations") == []

        banner = b.text(b.find("#game-over"))
        winners = [int(s) for s in b.attribute(b.find("#game-over"), "data-winners").split(",")]
        shown = b.script("return [...document.querySelectorAll('#scores tr[data-round=\"0\"] td[data-seat]')]"
                         ".map(td => Number(td.dataset.score))")
        totals = b.script("return [...document.querySelectorAll('#scores tr.total td[data-seat]')]"
                          ".map(td => Number(td.dataset.total))")
        game_id = b.script("return state.game_id")
    status, state = agent.post("GetState", {"game_id": game_id, "seat": 0})
    assert status == 200 and state["game_over"]
    # the core replays the same deal (seed 7, dealer 0) with the actions the page sent and the agents chose
    rnd = Round.from_seed(Rng(7), 4, 3, dealer=0, trump="random")
    for action in state["history"]:
        rnd.apply(action["bid"] if "bid" in action else action["card"])
    assert rnd.is_terminal
    assert shown == rnd.scores() == totals
    assert winners == [s for s, v in enumerate(rnd.scores()) if v == max(rnd.scores())]
    assert f"with {max(rnd.scores())} points" in banner


def test_the_page_sends_the_token_it_was_opened_with(tmp_path):
    """An agent with a token (issue 20): the page opened as /#token=... deals; the token leaves the
    address bar, and without it the page says the agent refused."""
    onnx = export_tiny(tmp_path / "tiny.onnx", seed=4)
    token = tmp_path / "token"
    token.write_text("page-token-1234\n")
    proc = start_agent(tmp_path / "agent", "--onnx", str(onnx), "--set", f"agent.token_file={token}")
    [driver_port] = free_ports(1)
    try:
        with Browser(driver_port, tmp_path / "chromedriver.log") as b:
            for url, dealt in ((proc.page, False), (proc.page + "#token=page-token-1234", True)):
                b.get("about:blank")                # a fresh load, not a same-page fragment change
                b.get(url)
                b.wait_for(lambda: b.script("return document.getElementById('model-info').textContent"),
                           what="the agent's info")
                b.select("#opponent-kind", "greedy")
                b.click(b.find("#start"))
                if dealt:
                    b.wait_for(lambda: idle(b) and not b.script("return document.getElementById('game').hidden"),
                               what="the deal")
                    assert "token" not in b.script("return location.href")
                else:
                    b.wait_for(lambda: idle(b) and "Bearer" in b.script(
                        "return document.getElementById('message').textContent"), what="the refusal")
    finally:
        assert proc.stop() == 0


def test_a_full_game_is_reviewed_round_by_round_then_whole(agent, tmp_path):
    """3 players from 2 cards (5 rounds) against greedy: after each round the review of that round,
    at the end the review of the whole game; every row a decision of mine."""
    [driver_port] = free_ports(1)
    rng = random.Random(11)
    with Browser(driver_port, tmp_path / "chromedriver.log") as b:
        b.get(agent.page)
        b.wait_for(lambda: b.script("return document.getElementById('model-info').textContent"),
                   what="the agent's info")
        for css, value in (("#players", "3"), ("#cards", "2"), ("#length", "game"), ("#opponent-kind", "greedy"),
                           ("#preset", "normal")):
            b.select(css, value)
        b.click(b.find("#start"))
        b.wait_for(lambda: idle(b) and not b.script("return document.getElementById('game').hidden"), what="the deal")
        titles = []
        for _ in range(40):
            if b.script("return state.game_over"):
                break
            rounds_done = b.script("return state.results.length")
            bids = [e for e in b.find_all("#bids .bid-button") if b.enabled(e)]
            b.click(rng.choice(bids) if bids else rng.choice(b.find_all(".hand .card.legal")))
            b.wait_for(lambda: idle(b), what="the agents' moves")
            if b.script("return state.results.length") > rounds_done:
                b.wait_for(lambda: b.script("return document.getElementById('review-box').dataset.state") == "done",
                           what="the round's review")
                titles.append(b.text(b.find("#review-box h2")))
                rows = b.script("return [...document.querySelectorAll('#review-box tr.decision td:first-child')]"
                                ".map(td => td.textContent)")
                if not b.script("return state.game_over"):
                    n = b.script("return state.results.length")
                    assert rows and set(rows) == {str(n)}, (n, rows)
        assert b.script("return state.game_over")
        assert [t.split(":")[0] for t in titles] == [f"Review of round {i}" for i in range(1, 5)] + \
            ["Review of the whole game"]
        game_id = b.script("return state.game_id")
        rows = b.find_all("#review-box tr.decision")
    obj = json.loads(agent.post("ExportGame", {"game_id": game_id})[1]["game_json"])
    assert len(rows) == sum(a["seat"] == 0 for r in obj["rounds"] for a in r["actions"])
