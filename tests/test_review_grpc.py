"""Review, ExportGame and ImportGame over real gRPC (the servicer methods of service.py)."""
from __future__ import annotations

import json
import random

import grpc
import pytest

from blobzero import agent_pb2 as pb
from blobzero import agent_pb2_grpc as pb_grpc
from agent_helpers import start_agent
from triton_helpers import export_tiny


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    onnx = export_tiny(tmp_path_factory.mktemp("grpc-review-model") / "tiny.onnx", seed=8)
    proc = start_agent(tmp_path_factory.mktemp("grpc-review-agent"), "--onnx", str(onnx))
    try:
        with grpc.insecure_channel(proc.target) as channel:
            yield pb_grpc.BlobAgentStub(channel)
    finally:
        assert proc.stop() == 0, proc.log.read_text()[-2000:]


def test_review_streams_one_decision_at_a_time_and_game_files_travel(stub):
    state = stub.StartGame(pb.StartGameRequest(players=3, cards=2, seed=4, seats=[
        pb.SeatSpec(kind="human"), pb.SeatSpec(kind="expert"), pb.SeatSpec(kind="model", search="light")]), timeout=60)
    rng = random.Random(1)
    while not state.game_over:
        move = {"bid": rng.choice(state.legal_bids)} if state.legal_bids else {"card": rng.choice(state.legal_cards)}
        state = stub.Act(pb.ActRequest(game_id=state.game_id, seat=0, **move), timeout=60)
    text = stub.ExportGame(pb.ExportGameRequest(game_id=state.game_id), timeout=30).game_json
    mine = sum(a["seat"] == 0 for r in json.loads(text)["rounds"] for a in r["actions"])
    stream = stub.Review(pb.ReviewRequest(game_id=state.game_id, seat=0, search="light"), timeout=120)
    decisions = list(stream)
    assert len(decisions) == mine and all(d.search == "light 2x20" and d.points_lost >= 0 for d in decisions)
    imported = stub.ImportGame(pb.ImportGameRequest(game_json=text), timeout=30)
    assert imported.game_over and list(imported.scores) == list(state.scores)
    again = list(stub.Review(pb.ReviewRequest(game_json=text, seat=0, search="light"), timeout=120))
    assert [(d.round_index, d.ply) for d in again] == [(d.round_index, d.ply) for d in decisions]
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.Review(pb.ReviewRequest(game_json=text.replace('"version": 1', '"version": 2'), seat=0), timeout=30))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "version" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        stub.ImportGame(pb.ImportGameRequest(game_json="{"), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not JSON" in caught.value.details()
