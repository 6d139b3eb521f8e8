"""``blobzero agent`` over real gRPC: Advise on constructed positions, malformed requests, hosted
games, 64 concurrent clients sharing network batches, health and reflection, and the Triton path.

The agent runs as a real process (``python -m blobzero.cli agent``) on a freshly initialised tiny
BlobNet exported to ONNX (random weights are enough for the API; the endgame below is decided by
the search's exact terminal values, not by the network).
"""
from __future__ import annotations

import random
import re
import subprocess

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from blobcore.rules import Rng, Round, card_name
from blobzero import agent_pb2 as pb
from blobzero import agent_pb2_grpc as pb_grpc
from helpers import advance, wait_until
from agent_helpers import agent_behind_triton, start_agent
from triton_helpers import PROJECT_ROOT, PYTHON, export_tiny, metric


@pytest.fixture(scope="module")
def onnx(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("agent-model") / "tiny.onnx", seed=3)


@pytest.fixture(scope="module")
def agent(tmp_path_factory, onnx):
    proc = start_agent(tmp_path_factory.mktemp("agent"), "--onnx", str(onnx))
    yield proc
    assert proc.stop() == 0, proc.log.read_text()[-2000:]


@pytest.fixture(scope="module")
def stub(agent):
    with grpc.insecure_channel(agent.target) as channel:
        yield pb_grpc.BlobAgentStub(channel)


def request_from_round(rnd: Round, **extra) -> pb.AdviseRequest:
    """What the player to move in ``rnd`` knows, as an AdviseRequest (no other seat's cards)."""
    seat = rnd.current_player
    history = [pb.Action(seat=s, bid=a) if i < rnd.n_players else pb.Action(seat=s, card=card_name(a))
               for i, (s, a) in enumerate(rnd.history)]
    return pb.AdviseRequest(players=rnd.n_players, cards=rnd.cards, dealer=rnd.dealer,
                            trump="none" if rnd.trump is None else "SHCD"[rnd.trump], seat=seat,
                            hand=[card_name(c) for c in rnd.hand(seat)], history=history, **extra)


def endgame(**extra) -> pb.AdviseRequest:
    """3 players x 2 cards, spades trump; seat 2 (dealer) bid 1 and is last to play to the first
    trick: KH led, 5S ruffed. 3S loses this trick and AS surely takes the last one: exactly 1 trick,
    11 points whatever the hidden cards. AS takes this trick and then needs 3S to lose the last one,
    which fails whenever another seat holds a higher spade. 3S is the only card that surely wins."""
    history = [pb.Action(seat=0, bid=1), pb.Action(seat=1, bid=1), pb.Action(seat=2, bid=1),
               pb.Action(seat=0, card="KH"), pb.Action(seat=1, card="5S")]
    return pb.AdviseRequest(players=3, cards=2, dealer=2, trump="S", seat=2, hand=["AS", "3S"],
                            history=history, **extra)


# -- Advise ----------------------------------------------------------------------------------------

def test_health_and_reflection_are_served(agent):
    with grpc.insecure_channel(agent.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in answer.list_services_response.service}
    assert {"blobzero.v1.BlobAgent", "grpc.health.v1.Health"} <= names


def test_advise_endgame_chooses_the_only_winning_card(stub):
    answer = stub.Advise(endgame(search="medium", seed=1), timeout=60)
    values = {a.card: a.value for a in answer.actions}
    assert answer.recommended.card == "3S", answer
    assert set(values) == {"AS", "3S"}
    assert values["3S"] == pytest.approx(11.0, abs=1e-4)       # exact: bid 1 made, 10 + 1
    assert values["AS"] < values["3S"]
    visits = {a.card: a.visits for a in answer.actions}
    # Gumbel root (the default): sequential halving visits both cards alike, the play-outs decide
    assert sum(visits.values()) == 3 * 30 and visits["3S"] >= visits["AS"]
    assert sum(a.prior for a in answer.actions) == pytest.approx(1.0, abs=1e-4)
    assert 0 <= answer.expected_score <= 11.0 + 1e-4
    assert answer.model_version == "tiny" and answer.search == "medium 3x30" and not answer.forced
    assert answer.seconds > 0


def test_advise_a_dealer_bid_with_game_context(stub):
    history = [pb.Action(seat=0, bid=1), pb.Action(seat=1, bid=2), pb.Action(seat=2, bid=0)]
    request = pb.AdviseRequest(players=4, cards=5, dealer=3, trump="H", seat=3,
                               hand=["AH", "KH", "7S", "2C", "TD"], history=history, search="light",
                               game=pb.GameContext(round_index=3, rounds_in_game=12, next_cards=1,
                                                   scores=[11, 0, 12, 10]))
    answer = stub.Advise(request, timeout=60)
    bids = sorted(a.bid for a in answer.actions)
    assert bids == [0, 1, 3, 4, 5]                   # 2 is the hook bid: 1 + 2 + 0 + 2 = 5 cards
    assert answer.recommended.bid in bids and answer.recommended.WhichOneof("what") == "bid"
    assert sum(a.visits for a in answer.actions) == 2 * 20
    assert answer.search == "light 2x20"


def test_advise_is_reproducible_and_needs_no_hidden_cards(stub):
    """Two different true deals that look the same to the asking seat give the same answer."""
    rnd = advance(Round.from_seed(11, 4, 5), 7, seed=2)
    request = request_from_round(rnd, search="light", seed=5)
    first, second = stub.Advise(request, timeout=60), stub.Advise(request, timeout=60)
    assert [(a.card, a.visits) for a in first.actions] == [(a.card, a.visits) for a in second.actions]
    assert first.recommended.card in {card_name(c) for c in rnd.legal_actions()}


def test_advise_forced_move_needs_no_search(stub):
    # the last card of a 1-card round with the other seats done: one legal action
    request = pb.AdviseRequest(players=3, cards=1, dealer=0, trump="none", seat=0, hand=["2C"],
                               history=[pb.Action(seat=1, bid=0), pb.Action(seat=2, bid=0),
                                        pb.Action(seat=0, bid=0), pb.Action(seat=1, card="AD"),
                                        pb.Action(seat=2, card="KD")])
    answer = stub.Advise(request, timeout=60)
    assert answer.forced and answer.recommended.card == "2C" and len(answer.actions) == 1
    assert answer.actions[0].prior == pytest.approx(1.0)


def _with(request: pb.AdviseRequest, **changes) -> pb.AdviseRequest:
    out = pb.AdviseRequest()
    out.CopyFrom(request)
    for key, value in changes.items():
        if isinstance(value, list):
            del getattr(out, key)[:]
            getattr(out, key).extend(value)
        else:
            setattr(out, key, value)
    return out


BAD_REQUESTS = {
    "card seen twice (hand and history)": (
        lambda: _with(endgame(), hand=["AS", "KH"]), "KH is seen twice"),
    "card listed twice in the hand": (lambda: _with(endgame(), hand=["AS", "AS"]), "AS is listed twice"),
    "card played twice": (
        lambda: _with(endgame(), history=list(endgame().history[:4]) + [pb.Action(seat=1, card="KH")]),
        "KH is seen twice"),
    "not a card": (lambda: _with(endgame(), hand=["AS", "1X"]), "'1X' is not a card"),
    "hand of the wrong size": (lambda: _with(endgame(), hand=["AS"]), "must hold 2 cards"),
    "illegal bid (hook rule)": (
        lambda: _with(endgame(), history=[pb.Action(seat=0, bid=1), pb.Action(seat=1, bid=0),
                                          pb.Action(seat=2, bid=1)]),
        "history[2]: illegal action 1 (bid 1) for player 2 in the bid phase: the dealer may not bid 1"),
    "bid out of range": (lambda: _with(endgame(), history=[pb.Action(seat=0, bid=3)]), "bids are 0..2"),
    "illegal play (not following suit)": (
        lambda: _with(endgame(), hand=["2H"], history=list(endgame().history) + [pb.Action(seat=2, card="3S")]),
        "history[5]: illegal action 1 (3S) for player 2 in the play phase: must follow hearts"),
    "history out of turn": (
        lambda: _with(endgame(), history=[pb.Action(seat=1, bid=1)]), "history[0]: seat 1 acts, but it is seat 0's turn"),
    "wrong seat to act": (lambda: _with(endgame(), seat=1, hand=["QD"]), "seat 1 asks, but seat 2 is to act"),
    "too many players": (lambda: _with(endgame(), players=9), "players must be 3..8"),
    "too few players": (lambda: _with(endgame(), players=2), "players must be 3..8"),
    "too many cards": (lambda: _with(endgame(), cards=18), "cards must be 1..17"),
    "no cards": (lambda: _with(endgame(), cards=0), "cards must be 1..17"),
    "dealer off the table": (lambda: _with(endgame(), dealer=3), "dealer must be a seat 0..2"),
    "bad trump": (lambda: _with(endgame(), trump="X"), "trump: 'X' is not a suit"),
    "unknown preset": (lambda: _with(endgame(), search="huge"), "search: 'huge' is not a preset"),
    "too many simulations": (lambda: _with(endgame(), simulations=100000), "simulations must be 1..800"),
    "pinned version this agent does not have": (lambda: _with(endgame(), model_version="99"),
                                                "model_version must be 'latest'"),
    "round already over": (
        lambda: _with(endgame(), hand=[], history=list(endgame().history) + [
            pb.Action(seat=2, card="3S"), pb.Action(seat=1, card="2D"), pb.Action(seat=2, card="AS"),
            pb.Action(seat=0, card="4D")]), "the round is over"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_malformed_advise_is_invalid_argument_and_the_server_keeps_serving(stub, name):
    make, why = BAD_REQUESTS[name]
    with pytest.raises(grpc.RpcError) as caught:
        stub.Advise(make(), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert why in caught.value.details()
    assert stub.Advise(endgame(search="light"), timeout=60).recommended.card == "3S"


def test_malformed_requests_are_counted(agent, stub):
    before = agent.metric("blobzero_agent_errors_total", method="Advise", code="INVALID_ARGUMENT")
    with pytest.raises(grpc.RpcError):
        stub.Advise(_with(endgame(), players=9), timeout=30)
    after = agent.metric("blobzero_agent_errors_total", method="Advise", code="INVALID_ARGUMENT")
    assert after == before + 1
    assert agent.metric("blobzero_agent_request_latency_seconds_count", method="Advise") >= 1


def test_the_documented_client_runs(agent):
    """The 20-line client of docs/agent.md, run as written (only the address changed)."""
    text = (PROJECT_ROOT / "docs" / "agent.md").read_text()
    [code] = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(code.strip().splitlines()) <= 20
    result = subprocess.run([PYTHON, "-c", code.replace("127.0.0.1:50051", agent.target)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"bid \d: expected score \d+\.\d \(model tiny, \d+ ms\)", lines[0]), result.stdout
    assert sorted(int(re.match(r"  bid (\d)", line)[1]) for line in lines[1:]) == [0, 1, 2, 3, 4, 5]


def test_a_taken_port_is_named_and_exits_2(agent, tmp_path):
    result = subprocess.run([PYTHON, "-m", "blobzero.cli", "agent", "--grpc-port", str(agent.grpc_port),
                             "--http-port", "0", "--set", "metrics.agent_port=0"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "agent.grpc_port" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# -- hosted games ------------------------------------------------------------------------------

def test_hosted_round_against_every_kind_of_agent(stub):
    seats = [pb.SeatSpec(kind="human"), pb.SeatSpec(kind="expert"), pb.SeatSpec(kind="greedy"),
             pb.SeatSpec(kind="model", search="light")]
    state = stub.StartGame(pb.StartGameRequest(players=4, cards=4, single_round=True, seats=seats,
                                               seed=21), timeout=60)
    assert [s.kind for s in state.seats] == ["human", "expert", "greedy", "model:light"]
    game_id = state.game_id
    # errors first: they change nothing
    with pytest.raises(grpc.RpcError) as caught:
        stub.Act(pb.ActRequest(game_id=game_id, seat=1, bid=0), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "played by the agent" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        stub.Act(pb.ActRequest(game_id="nope", seat=0, bid=0), timeout=30)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.Act(pb.ActRequest(game_id=game_id, seat=0, card=state.hand[0]), timeout=30)
    assert "send a bid" in caught.value.details()
    rng = random.Random(0)
    not_mine = None
    while not state.game_over:
        assert state.to_act == 0
        if state.legal_bids:
            state = stub.Act(pb.ActRequest(game_id=game_id, seat=0, bid=rng.choice(state.legal_bids)), timeout=60)
            continue
        if not_mine is None:
            not_mine = next(card_name(c) for c in range(52) if card_name(c) not in state.hand)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Act(pb.ActRequest(game_id=game_id, seat=0, card=not_mine), timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"{not_mine} is not in player 0's hand" in caught.value.details()
        hint = stub.Hint(pb.HintRequest(game_id=game_id, seat=0, search="light"), timeout=60)
        assert hint.recommended.card in state.legal_cards
        state = stub.Act(pb.ActRequest(game_id=game_id, seat=0, card=rng.choice(state.legal_cards)), timeout=60)
    # the scores agree with the core replaying the same deal and actions
    rnd = Round.from_seed(Rng(21), 4, 4, dealer=0, trump="random")
    for action in state.history:
        rnd.apply(action.bid if action.WhichOneof("what") == "bid" else action.card)
    assert rnd.is_terminal and list(state.results[0].scores) == rnd.scores() == list(state.scores)
    assert list(state.winners) == [s for s, v in enumerate(rnd.scores()) if v == max(rnd.scores())]
    # another seat's view shows its own hand only
    view = stub.GetState(pb.GetStateRequest(game_id=game_id, seat=2), timeout=30)
    assert view.seat == 2 and view.game_over and not view.legal_cards


# -- concurrency -------------------------------------------------------------------------------

def test_64_concurrent_clients_share_one_batch_per_search_step(agent, stub):
    requests = []
    for i in range(64):
        rnd = advance(Round.from_seed(100 + i, 4, 5), i % 12, seed=i)
        requests.append(request_from_round(rnd, search="light", seed=i))
    before = {name: agent.metric(name) for name in ("blobzero_agent_batch_size_count",
                                                    "blobzero_agent_batch_size_sum",
                                                    "blobzero_agent_search_steps_total")}
    calls = [stub.Advise.future(r, timeout=120) for r in requests]   # 64 calls in flight at once
    answers = [call.result() for call in calls]
    after = {name: agent.metric(name) for name in before}
    batches = after["blobzero_agent_batch_size_count"] - before["blobzero_agent_batch_size_count"]
    rows = after["blobzero_agent_batch_size_sum"] - before["blobzero_agent_batch_size_sum"]
    steps = after["blobzero_agent_search_steps_total"] - before["blobzero_agent_search_steps_total"]
    print(f"64 concurrent Light searches: {batches:.0f} network batches in {steps:.0f} search steps, "
          f"{rows / batches:.1f} positions per batch")
    for request, answer in zip(requests, answers):
        legal = {a.card or a.bid for a in answer.actions}
        assert (answer.recommended.card or answer.recommended.bid) in legal
        assert answer.forced or sum(a.visits for a in answer.actions) == 2 * 20
    # one network batch per search step (one model), and the steps are shared: one search of
    # Light 2x20 takes up to 41 steps alone, so 64 searches one after another would take ~2,600.
    # A quiet machine needs ~45 batches; the bound leaves room for requests that arrive late
    # while a busy machine (a test run beside a training run) serves the first ones.
    assert batches <= steps
    assert batches <= 64 * 41 / 8, (batches, steps, rows)
    assert rows / batches >= 8, (batches, rows)


# -- the Triton path -----------------------------------------------------------------------------

def test_advise_through_a_real_triton_server(tmp_path, onnx):
    with agent_behind_triton(tmp_path, onnx) as (server, proc):
        with grpc.insecure_channel(proc.target) as channel:
            answer = pb_grpc.BlobAgentStub(channel).Advise(endgame(search="light"), timeout=60)
            with pytest.raises(grpc.RpcError) as caught:
                pb_grpc.BlobAgentStub(channel).Advise(_with(endgame(), cards=0), timeout=30)
        assert answer.recommended.card == "3S" and answer.model_version == "1"
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # Triton counts a request once it is released, a moment after the answer went out
        wait_until(lambda: metric(server.metrics(), "nv_inference_request_success", model="blobnet") >= 1,
                   10, "Triton to count the agent's requests")
