"""Game files, review and games that survive, through a real ``blobzero agent`` process over HTTP
(``POST /api/ExportGame``, ``/api/ImportGame``, ``/api/Review``), the ``blobzero review`` command,
and agent restarts and a second replica on the same storage."""
from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import time

import jsonschema
import pytest

from blobzero import gamefile
from blobzero.agent.gamestore import GameStore
from agent_helpers import start_agent
from test_gamefile import SCHEMA
from triton_helpers import PROJECT_ROOT, PYTHON, export_tiny


@pytest.fixture(scope="module")
def onnx(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("review-model") / "tiny.onnx", seed=6)


@pytest.fixture(scope="module")
def agent(tmp_path_factory, onnx):
    proc = start_agent(tmp_path_factory.mktemp("review-agent"), "--onnx", str(onnx))
    yield proc
    assert proc.stop() == 0, proc.log.read_text()[-2000:]


def ok(agent, method: str, body: dict) -> dict:
    status, answer = agent.post(method, body)
    assert status == 200, (method, answer)
    return answer


def play(agent, state: dict, rng: random.Random, moves: int = 10_000) -> dict:
    """Random legal moves for the human seat, up to ``moves`` of them or the end."""
    for _ in range(moves):
        if state["game_over"]:
            break
        body = {"bid": rng.choice(state["legal_bids"])} if state["legal_bids"] else {"card": rng.choice(state["legal_cards"])}
        state = ok(agent, "Act", {"game_id": state["game_id"], "seat": state["seat"], **body})
    return state


def human_decisions(obj: dict, seat: int) -> int:
    return sum(a["seat"] == seat for r in obj["rounds"] for a in r["actions"])


@pytest.fixture(scope="module")
def finished(agent):
    """A full 3-player game from 3 cards: seat 0 human (random legal moves), expert and greedy."""
    state = ok(agent, "StartGame", {"players": 3, "cards": 3, "seed": 17,
                                    "seats": [{"kind": "human"}, {"kind": "expert"}, {"kind": "greedy"}]})
    state = play(agent, state, random.Random(3))
    assert state["game_over"]
    return state


def test_export_is_a_valid_game_file_and_imports_as_a_finished_game(agent, finished):
    text = ok(agent, "ExportGame", {"game_id": finished["game_id"]})["game_json"]
    obj = json.loads(text)
    jsonschema.validate(obj, SCHEMA)
    assert obj["over"] and obj["seed"] == 17 and obj["scores"] == finished["scores"]
    assert [s["kind"] for s in obj["seats"]] == ["human", "expert", "greedy"]
    state = ok(agent, "ImportGame", {"game_json": text})
    assert state["game_over"] and state["game_id"] != finished["game_id"]
    assert state["scores"] == finished["scores"] and state["winners"] == finished["winners"]
    assert [r["bids"] for r in state["results"]] == [r["bids"] for r in finished["results"]]
    # the imported game exports the same file
    assert json.loads(ok(agent, "ExportGame", {"game_id": state["game_id"]})["game_json"]) == obj
    # a finished game from another agent (a model version this one lacks) still imports for review;
    # an unfinished one would need that model to play on, and is refused naming it
    elsewhere = {**obj, "seats": [{"kind": "human"}, {"kind": "model", "search": "medium", "model_version": "77"},
                                  {"kind": "greedy"}]}
    assert ok(agent, "ImportGame", {"game_json": json.dumps(elsewhere)})["game_over"]
    unfinished = {**elsewhere, "rounds": elsewhere["rounds"][:2]}
    for key in ("scores", "over", "winners"):
        unfinished.pop(key)
    status, answer = agent.post("ImportGame", {"game_json": json.dumps(unfinished)})
    assert status == 400 and answer["message"].startswith("game_json: seats[1].model_version:"), answer


def test_an_unfinished_game_exports_only_what_every_seat_has_seen(agent):
    state = ok(agent, "StartGame", {"players": 4, "cards": 2, "seed": 9, "opponents": {"kind": "greedy"}})
    state = play(agent, state, random.Random(1), moves=5)      # into round 2 or 3
    assert not state["game_over"] and state["results"]
    obj = json.loads(ok(agent, "ExportGame", {"game_id": state["game_id"]})["game_json"])
    assert obj["seed"] is None and not obj["over"]
    assert len(obj["rounds"]) == len(state["results"])        # the round in progress stays hidden
    assert all("scores" in r for r in obj["rounds"])
    # its review covers the completed rounds only, for any seat (an agent's hand stays hidden)
    for seat in (0, 2):
        review = ok(agent, "Review", {"game_id": state["game_id"], "seat": seat, "search": "light"})
        assert {d["round_index"] for d in review["decisions"]} == set(range(len(state["results"])))
        assert len(review["decisions"]) == human_decisions(obj, seat)
    # imported, it is played on: the agents move up to the human's turn, the game ends
    imported = ok(agent, "ImportGame", {"game_json": json.dumps(obj)})
    assert not imported["game_over"] and imported["to_act"] == 0
    assert imported["results"] == state["results"]
    done = play(agent, imported, random.Random(2))
    assert done["game_over"] and len(done["results"]) == done["rounds_in_game"]


def test_an_impossible_history_is_refused_naming_the_first_illegal_action(agent, finished):
    obj = json.loads(ok(agent, "ExportGame", {"game_id": finished["game_id"]})["game_json"])
    games_before = agent.metric("blobzero_agent_hosted_games")
    bad = copy.deepcopy(obj)
    r = bad["rounds"][0]
    k = next(i for i, a in enumerate(r["actions"]) if "card" in a)
    seat = r["actions"][k]["seat"]
    r["actions"][k]["card"] = r["hands"][(seat + 1) % 3][0]       # another seat's card
    status, answer = agent.post("ImportGame", {"game_json": json.dumps(bad)})
    assert status == 400 and answer["code"] == "INVALID_ARGUMENT"
    assert answer["message"].startswith(f"game_json: rounds[0].actions[{k}]: seat {seat} plays ")
    assert "is not in player" in answer["message"]
    wrong_seat = copy.deepcopy(obj)
    wrong_seat["rounds"][2]["actions"][1]["seat"] = wrong_seat["rounds"][2]["actions"][0]["seat"]
    status, answer = agent.post("ImportGame", {"game_json": json.dumps(wrong_seat)})
    assert status == 400 and answer["message"].startswith("game_json: rounds[2].actions[1]: seat ")
    for body, expected in (({"game_json": "{"}, "game_json: not JSON"), ({"game_json": ""}, "game_json: empty"),
                           ({"game_json": 5}, "bad JSON for ImportGame"),
                           ({"game_json": json.dumps({**obj, "version": 9})}, "version 1")):
        status, answer = agent.post("ImportGame", body)
        assert status == 400 and expected in answer["message"], answer
    assert agent.metric("blobzero_agent_hosted_games") == games_before      # nothing was hosted
    status, answer = agent.post("ExportGame", {"game_id": "0123456789abcdef"})
    assert status == 404 and answer["code"] == "NOT_FOUND"


def test_review_of_a_hosted_game_every_decision_of_the_human_seat(agent, finished):
    obj = json.loads(ok(agent, "ExportGame", {"game_id": finished["game_id"]})["game_json"])
    review = ok(agent, "Review", {"game_id": finished["game_id"], "seat": 0, "search": "light"})
    decisions = review["decisions"]
    assert len(decisions) == human_decisions(obj, 0) and review["search"] == "light 2x20"
    assert review["seat"] == 0
    for d in decisions:
        assert d["search"] == "light 2x20" and d["points_lost"] >= 0
        values = [a["value"] for a in d["actions"]]
        assert d["taken"] in d["actions"]
        assert d["points_lost"] == pytest.approx(0.0 if d["forced"] else max(values) - d["taken"]["value"], abs=1e-4)
        if not d["forced"]:
            assert sum(a["visits"] for a in d["actions"]) > 0
    assert review["total_points_lost"] == pytest.approx(sum(d["points_lost"] for d in decisions), abs=1e-3)
    lost = sorted((d["points_lost"] for d in decisions), reverse=True)
    marked = [decisions[i] for i in review["costliest"]]
    assert len(marked) == min(3, sum(v > 0.005 for v in lost))
    assert [d["points_lost"] for d in marked] == lost[:len(marked)]
    assert all(d["costly"] for d in marked) and sum(d["costly"] for d in decisions) == len(marked)
    # the same game as a file: the same decisions; one round only
    again = ok(agent, "Review", {"game_json": json.dumps(obj), "seat": 0, "search": "light"})
    assert [(d["round_index"], d["ply"], d["taken"]) for d in again["decisions"]] == \
           [(d["round_index"], d["ply"], d["taken"]) for d in decisions]
    one = ok(agent, "Review", {"game_id": finished["game_id"], "seat": 0, "search": "light", "rounds": [2]})
    assert {d["round_index"] for d in one["decisions"]} == {2}


def test_one_reviewed_decision_is_one_advise_search(agent, finished):
    """Review searches each decision exactly as Advise does: the same search, the same visits."""
    obj = json.loads(ok(agent, "ExportGame", {"game_id": finished["game_id"]})["game_json"])
    review = ok(agent, "Review", {"game_id": finished["game_id"], "seat": 0, "search": "medium", "rounds": [0]})
    d = next(d for d in review["decisions"] if not d["forced"])
    r = obj["rounds"][0]
    history = r["actions"][:d["ply"]]
    played = {a["card"] for a in history if "card" in a and a["seat"] == 0}
    advice = ok(agent, "Advise", {"players": 3, "cards": r["cards"], "dealer": r["dealer"], "trump": r["trump"],
                                  "seat": 0, "hand": [c for c in r["hands"][0] if c not in played],
                                  "history": history, "search": "medium",
                                  "game": {"round_index": 0, "rounds_in_game": 7, "next_cards": 2,
                                           "scores": [0, 0, 0]}})
    assert advice["search"] == d["search"] == "medium 3x30"
    assert sum(a["visits"] for a in advice["actions"]) == sum(a["visits"] for a in d["actions"])
    assert {a.get("card", a.get("bid")) for a in advice["actions"]} == {a.get("card", a.get("bid")) for a in d["actions"]}


def test_review_bad_input_is_a_clear_400(agent, finished):
    for body, code, expected in (
            ({"seat": 0}, 400, "a review needs game_id"),
            ({"game_id": finished["game_id"], "seat": 5}, 400, "seat must be 0..2, got 5"),
            ({"game_id": finished["game_id"], "seat": 0, "search": "huge"}, 400, "'huge' is not a preset"),
            ({"game_id": "fedcba9876543210", "seat": 0}, 404, "no hosted game"),
            ({"game_json": "[1]", "seat": 0}, 400, "game_json: (top): a game file is a JSON object")):
        status, answer = agent.post("Review", body)
        assert status == code and expected in answer["message"], (body, answer)


def test_blobzero_review_prints_a_table_and_json(agent, finished, onnx, tmp_path):
    path = tmp_path / "game.json"
    path.write_text(ok(agent, "ExportGame", {"game_id": finished["game_id"]})["game_json"])
    base = [PYTHON, "-m", "blobzero.cli", "review", str(path), "--onnx", str(onnx), "--search", "light",
            "--set", f"storage.games_dir={tmp_path / 'games'}"]
    out = subprocess.run(base + ["--json"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    review = json.loads(out.stdout)
    assert len(review["decisions"]) == human_decisions(json.loads(path.read_text()), 0)
    assert review["search"] == "light 2x20" and review["seat"] == 0
    table = subprocess.run(base, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"review of seat 0 (human): {len(review['decisions'])} decisions, search light 2x20")
    assert lines[-1].startswith("points lost in all: ")
    assert sum(line.rstrip().endswith("*") for line in lines) == len(review["costliest"])
    path.write_text(path.read_text().replace('"version": 1', '"version": 3'))
    bad = subprocess.run(base, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "version: this agent reads version 1, got 3" in bad.stderr


# -- games that survive ---------------------------------------------------------------------------

def test_a_hosted_game_survives_an_agent_restart_and_a_second_replica(tmp_path, onnx):
    run = tmp_path / "run"
    first = start_agent(tmp_path / "a", "--onnx", str(onnx), storage=run)
    try:
        state = ok(first, "StartGame", {"players": 4, "cards": 3, "seed": 23,
                                        "seats": [{"kind": "human"}, {"kind": "model", "search": "light"},
                                                  {"kind": "expert"}, {"kind": "greedy"}]})
        state = play(first, state, random.Random(2), moves=4)
        game_id = state["game_id"]
    finally:
        assert first.stop() == 0, first.log.read_text()[-2000:]
    assert (run / "agent" / "games" / f"{game_id}.json").is_file()
    second = start_agent(tmp_path / "b", "--onnx", str(onnx), storage=run)
    replica = start_agent(tmp_path / "c", "--onnx", str(onnx), storage=run)
    try:
        restored = ok(second, "GetState", {"game_id": game_id, "seat": 0})
        assert restored == state                                # the same view, after a restart
        moved = play(second, restored, random.Random(5), moves=3)
        assert ok(replica, "GetState", {"game_id": game_id, "seat": 0}) == moved    # another replica sees it
        done = play(replica, moved, random.Random(6))                               # and finishes it
        assert done["game_over"] and len(done["results"]) == 8
        assert ok(second, "GetState", {"game_id": game_id, "seat": 0})["scores"] == done["scores"]
        review = ok(second, "Review", {"game_id": game_id, "seat": 0, "search": "light", "rounds": [7]})
        assert review["decisions"] and {d["round_index"] for d in review["decisions"]} == {7}
    finally:
        assert second.stop() == 0, second.log.read_text()[-2000:]
        assert replica.stop() == 0, replica.log.read_text()[-2000:]


def test_retention_bounds_the_stored_games(tmp_path):
    """keep_games and keep_days on real files; a crash-safe put leaves no temporary files."""
    from blobzero.agent.games import GameHost, Seat
    from blobcore.players import PLAYERS
    store = GameStore(str(tmp_path / "games"), keep_games=3, keep_days=1.0)
    host = GameHost(lambda rnd, seat, seed: PLAYERS["greedy"](rnd, None), store=store)
    ids = []
    for seed in range(1, 6):
        ids.append(host.start(3, 1, [Seat("greedy")] * 3, single_round=True, seed=seed).id)
        time.sleep(0.02)                         # distinct modification times
    files = sorted(p.name for p in (tmp_path / "games").iterdir())
    assert files == sorted(f"{i}.json" for i in ids)             # no temporary names left behind
    assert store.prune() == 2
    assert sorted(p.stem for p in (tmp_path / "games").iterdir()) == sorted(ids[2:])
    assert store.prune(now=time.time() + 2 * 86400) == 3          # idle for more than keep_days
    assert not list((tmp_path / "games").iterdir())
    assert store.load("../../etc/passwd") is None and store.moves("0" * 16) is None


# -- human games as data (opt-in) -------------------------------------------------------------------

def test_human_games_are_not_recorded_by_default(agent, finished):
    run = agent.log.parent / "run"
    assert (run / "agent" / "games" / f"{finished['game_id']}.json").is_file()
    assert not (run / "human_games").exists()


def test_a_finished_human_game_becomes_training_records_when_switched_on(tmp_path):
    """The writer the switch turns on (``agent.record_human_games``): one shard per finished game,
    the human seat's moves as one-visit decisions, read back with the trainer's shard reader."""
    from blobcore.players import PLAYERS
    from blobzero.agent.games import GameHost, Seat
    from blobzero.agent.humangames import HumanGames, key_time
    from plumbing.shards import decode_shard

    writer = HumanGames(str(tmp_path / "human_games"))
    host = GameHost(lambda rnd, seat, seed: PLAYERS["expert"](rnd, None), on_finished=writer.write)
    hosted = host.start(3, 2, [Seat("greedy"), Seat("human"), Seat("expert")], seed=31)
    rng = random.Random(4)
    while not hosted.over:
        host.act(hosted.id, 1, rng.choice(hosted.round.legal_actions()))
    [shard] = list((tmp_path / "human_games").rglob("*.shard"))
    key = shard.relative_to(tmp_path / "human_games").as_posix()       # keyed by when it was written
    assert re.fullmatch(r"human-\d{8}/\d{8}-v000000\.shard", key) and abs(key_time(key) - time.time()) < 60
    records = decode_shard(shard.read_bytes())
    assert len(records) == len(hosted.finished_rounds) == 5
    for record, rnd in zip(records, hosted.finished_rounds):
        assert list(record.actions) == [a for _, a in rnd.history] and list(record.scores) == rnd.scores()
        assert record.client_id == f"human-{hosted.id}"
        assert [d.player for d in record.decisions] == [s for s, _ in rnd.history if s == 1]
        assert all(list(d.visits) == [1] and list(d.actions) == [record.actions[d.ply]] for d in record.decisions)
    assert [r.game.scores_before[1] for r in records][-1] + records[-1].scores[1] == hosted.game.scores[1]


def test_a_failing_or_broken_store_loses_nothing_in_play(tmp_path):
    """Storage that cannot be written (the directory replaced by a file) or a stored copy someone
    broke: the game in memory plays on, the broken copy is NOT_FOUND naming why, never a crash."""
    from blobcore.players import PLAYERS
    from blobzero.agent.games import GameHost, GameNotFound, Seat

    def host():
        return GameHost(lambda rnd, seat, seed: PLAYERS["greedy"](rnd, None), store=GameStore(str(tmp_path / "games")))

    first = host()
    hosted = first.start(3, 2, [Seat("human"), Seat("greedy"), Seat("expert")], single_round=True, seed=3)
    stored = tmp_path / "games" / f"{hosted.id}.json"
    assert json.loads(stored.read_text())["host"]["moves"] == hosted.moves
    stored.write_text('{"format": "blobzero.game", "host": ')          # broken
    with pytest.raises(GameNotFound, match="its stored copy is unreadable"):
        host().get(hosted.id)
    assert first.get(hosted.id) is hosted                              # the playing process keeps it
    for path in (tmp_path / "games").iterdir():
        path.unlink()
    (tmp_path / "games").rmdir()
    (tmp_path / "games").write_text("not a directory")                 # every write and read now fails
    rng = random.Random(1)
    while not hosted.over:
        first.act(hosted.id, 0, rng.choice(hosted.round.legal_actions()))
    assert hosted.over and first.get(hosted.id) is hosted


def test_hosted_games_survive_a_restart_on_object_storage(tmp_path, onnx):
    """The same through ``s3://`` (a real S3 API server on loopback, moto): the agent's storage is
    the run's bucket; a restarted agent continues the game from it."""
    from s3_helpers import S3Server, s3_environment

    server = S3Server().start()
    try:
        with s3_environment(server):
            bucket = server.bucket("blobzero-run")
            run = f"s3://{bucket}/run1"
            first = start_agent(tmp_path / "a", "--onnx", str(onnx), storage=run)
            try:
                state = ok(first, "StartGame", {"players": 3, "cards": 2, "seed": 5,
                                                "seats": [{"kind": "human"}, {"kind": "expert"}, {"kind": "greedy"}]})
                state = play(first, state, random.Random(8), moves=3)
            finally:
                assert first.stop() == 0, first.log.read_text()[-2000:]
            keys = [o["Key"] for o in server.client().list_objects_v2(Bucket=bucket)["Contents"]]
            assert keys == [f"run1/agent/games/{state['game_id']}.json"]
            second = start_agent(tmp_path / "b", "--onnx", str(onnx), storage=run)
            try:
                assert ok(second, "GetState", {"game_id": state["game_id"], "seat": 0}) == state
                assert play(second, state, random.Random(9))["game_over"]
            finally:
                assert second.stop() == 0, second.log.read_text()[-2000:]
    finally:
        server.stop()
