"""The BlobAgent API (proto/blobzero/agent.proto), independent of the transport.

``AgentApi`` takes and returns the generated messages; ``ApiError`` carries a gRPC status code
name. The gRPC servicer (``blobzero/agent/service.py``) and the JSON-over-HTTP front of the
web page (``blobzero/agent/web.py``) both call it, so the page and a gRPC client see the same
service. Bad input raises ``ApiError("INVALID_ARGUMENT", <what is wrong>)``; nothing is changed.
"""
from __future__ import annotations

import time

from blobcore.rules import card_name
from blobcore.search_config import SIZES, SearchConfig
from blobzero import agent_pb2 as pb
from blobzero.agent.engine import Advice, Engine, EngineUnavailable
from blobzero.agent.games import GAME_ID_LENGTH, KINDS, GameHost, GameNotFound, HostedGame, Seat
from blobzero.agent.position import (SUITS, PositionError, Play, SeatKnowledge, build_round, check_table,
                                     parse_card, parse_trump)
from plumbing import config as configuration



class ApiError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def trump_name(trump: int | None) -> str:
    return "none" if trump is None else SUITS[trump]


class AgentApi:
    def __init__(self, cfg: configuration.Config, engine: Engine, metrics=None):
        self.cfg = cfg
        self.engine = engine
        self.metrics = metrics
        self.games = GameHost(self._agent_move, max_games=cfg.agent.max_games, ttl_s=cfg.agent.game_ttl_s,
                              max_per_owner=cfg.agent.max_games_per_client)

    # -- search settings ------------------------------------------------------------------
    def search_config(self, preset: str, simulations: int = 0, determinizations: int = 0) -> SearchConfig:
        """The configured search's evaluation variant at a preset's size, with a request's own
        simulations and determinizations (0 = the preset's) — built by the one builder."""
        name = (preset or self.cfg.agent.search_preset).lower()
        if name not in SIZES:
            raise ApiError("INVALID_ARGUMENT", f"search: {preset!r} is not a preset ({', '.join(SIZES)})")
        limit = self.cfg.agent.max_simulations
        if simulations and not 1 <= simulations <= limit:
            raise ApiError("INVALID_ARGUMENT", f"simulations must be 1..{limit}, got {simulations}")
        if determinizations and not 1 <= determinizations <= 64:
            raise ApiError("INVALID_ARGUMENT", f"determinizations must be 1..64, got {determinizations}")
        size = {key: value for key, value in (("simulations", simulations),
                                              ("determinizations", determinizations)) if value}
        return self.cfg.search.build(for_evaluation=True, preset=name, **size)

    # -- Advise --------------------------------------------------------------------------
    def advise(self, req: pb.AdviseRequest) -> pb.AdviseResponse:
        started = time.perf_counter()
        try:
            check_table(req.players, req.cards, req.dealer)
            history = tuple(self._play(i, a) for i, a in enumerate(req.history))
            knowledge = SeatKnowledge(
                players=req.players, cards=req.cards, dealer=req.dealer, trump=parse_trump(req.trump),
                seat=req.seat, hand=tuple(parse_card(c, "hand") for c in req.hand), history=history,
                game=self._context(req))
            rnd = build_round(knowledge, seed=req.seed)
        except PositionError as exc:
            raise ApiError("INVALID_ARGUMENT", str(exc)) from None
        config = self.search_config(req.search, req.simulations, req.determinizations)
        advice = self._search(rnd, config, req.model_version, req.seed)
        return self._response(rnd, advice, config, started)

    def _play(self, i: int, action: pb.Action) -> Play:
        which = action.WhichOneof("what")
        if which == "bid":
            return Play(action.seat, bid=action.bid)
        if which == "card":
            return Play(action.seat, card=parse_card(action.card, f"history[{i}]"))
        raise PositionError(f"history[{i}]: an action needs a bid or a card")

    def _context(self, req: pb.AdviseRequest) -> dict | None:
        if not req.HasField("game"):
            return None
        g = req.game
        if g.scores and len(g.scores) != req.players:
            raise PositionError(f"game.scores: need one per seat ({req.players}), got {len(g.scores)}")
        return {"round_index": g.round_index, "rounds_in_game": g.rounds_in_game,
                "next_cards": g.next_cards, "scores": list(g.scores) or None}

    def _search(self, rnd, config: SearchConfig, model: str, seed: int) -> Advice:
        try:
            future = self.engine.submit(rnd, config, model or self.cfg.agent.model, seed)
        except ValueError as exc:       # an unknown model version
            raise ApiError("INVALID_ARGUMENT", f"model_version: {exc}") from None
        except EngineUnavailable as exc:
            raise ApiError("UNAVAILABLE", str(exc)) from None
        try:
            return future.result(timeout=self.cfg.agent.request_timeout_s)
        except EngineUnavailable as exc:
            raise ApiError("UNAVAILABLE", str(exc)) from None
        except TimeoutError:
            raise ApiError("UNAVAILABLE", f"no answer within agent.request_timeout_s = "
                                          f"{self.cfg.agent.request_timeout_s} s") from None

    @staticmethod
    def _response(rnd, advice: Advice, config: SearchConfig, started: float) -> pb.AdviseResponse:
        points = 10.0 + rnd.cards
        bidding = rnd.phase_name == "bid"

        def one(a: int) -> pb.ActionAdvice:
            item = pb.ActionAdvice(prior=advice.prior.get(a, 0.0), visits=advice.visits.get(a, 0),
                                   value=advice.q.get(a, advice.root_value) * points)
            if bidding:
                item.bid = a
            else:
                item.card = card_name(a)
            return item

        order = sorted(advice.prior, key=lambda a: (-advice.visits.get(a, 0), -advice.prior[a], a))
        name = next((n for n, size in SIZES.items() if size ==
                     (config.determinizations, config.simulations)), "custom")
        return pb.AdviseResponse(
            recommended=one(advice.action), actions=[one(a) for a in order],
            expected_score=advice.root_value * points, model_version=advice.model_version,
            seconds=time.perf_counter() - started, forced=advice.forced,
            search=f"{name} {config.determinizations}x{config.simulations}")

    # -- hosted games --------------------------------------------------------------------
    def _seat(self, spec: pb.SeatSpec, where: str, default_kind: str) -> Seat:
        kind = (spec.kind or default_kind).lower()
        if kind not in KINDS:
            raise ApiError("INVALID_ARGUMENT", f"{where}.kind: {spec.kind!r} is not one of {', '.join(KINDS)}")
        search = ""
        if kind == "model":
            self.search_config(spec.search)     # validates the preset name
            search = (spec.search or self.cfg.agent.search_preset).lower()
            try:
                self.engine.models.key(spec.model_version or self.cfg.agent.model)
            except ValueError as exc:
                raise ApiError("INVALID_ARGUMENT", f"{where}.model_version: {exc}") from None
            except EngineUnavailable as exc:
                raise ApiError("UNAVAILABLE", str(exc)) from None
        return Seat(kind, search, spec.model_version or self.cfg.agent.model)

    def start_game(self, req: pb.StartGameRequest, client: str = "") -> pb.GameState:
        """``client``: who asks (an address); it holds at most agent.max_games_per_client games,
        a new one replaces its own least recently used, never another client's."""
        try:
            check_table(req.players, req.cards)
        except PositionError as exc:
            raise ApiError("INVALID_ARGUMENT", str(exc)) from None
        if req.seats:
            seats = [self._seat(s, f"seats[{i}]", "human") for i, s in enumerate(req.seats)]
        else:
            seats = [Seat("human")] + [self._seat(req.opponents, "opponents", "model")] * (req.players - 1)
        try:
            hosted = self.games.start(req.players, req.cards, seats, req.single_round, req.seed,
                                      req.first_dealer, owner=client)
        except ValueError as exc:
            raise ApiError("INVALID_ARGUMENT", str(exc)) from None
        if self.metrics is not None:
            self.metrics.games.set(len(self.games))
        viewer = next((i for i, s in enumerate(seats) if s.kind == "human"), 0)
        return self.view(hosted, viewer)

    def act(self, req: pb.ActRequest) -> pb.GameState:
        hosted = self._game(req.game_id)
        which = req.WhichOneof("what")
        if which is None:
            raise ApiError("INVALID_ARGUMENT", "an action needs a bid or a card")
        try:
            if which == "card":
                action = parse_card(req.card, "card")
                if hosted.round.phase_name == "bid":
                    raise ValueError(f"seats are still bidding: send a bid, not the card {req.card}")
            else:
                action = req.bid
                if hosted.round.phase_name != "bid":
                    raise ValueError(f"bidding is over: send a card, not a bid")
            self.games.act(req.game_id, req.seat, action)
        except ValueError as exc:
            raise ApiError("INVALID_ARGUMENT", str(exc)) from None
        return self.view(hosted, req.seat)

    def get_state(self, req: pb.GetStateRequest) -> pb.GameState:
        hosted = self._game(req.game_id)
        if not 0 <= req.seat < len(hosted.seats):
            raise ApiError("INVALID_ARGUMENT", f"seat must be 0..{len(hosted.seats) - 1}, got {req.seat}")
        with hosted.lock:
            return self.view(hosted, req.seat)

    def hint(self, req: pb.HintRequest) -> pb.AdviseResponse:
        started = time.perf_counter()
        hosted = self._game(req.game_id)
        with hosted.lock:
            if hosted.over:
                raise ApiError("INVALID_ARGUMENT", "the game is over")
            rnd = hosted.round.copy()
        if rnd.current_player != req.seat:
            raise ApiError("INVALID_ARGUMENT", f"it is seat {rnd.current_player}'s turn, not seat {req.seat}'s")
        config = self.search_config(req.search)
        # the search resamples every hidden card from the seat's own view (docs/determinization.md)
        return self._response(rnd, self._search(rnd, config, self.cfg.agent.model, hosted.seed + hosted.moves),
                              config, started)

    def _game(self, game_id: str) -> HostedGame:
        if len(game_id) > 4 * GAME_ID_LENGTH:
            raise ApiError("INVALID_ARGUMENT", f"game_id must be the {GAME_ID_LENGTH} hex digits StartGame "
                                               f"returned, got {len(game_id)} characters")
        try:
            return self.games.get(game_id)
        except GameNotFound as exc:
            raise ApiError("NOT_FOUND", exc.args[0]) from None

    def _agent_move(self, rnd, seat: Seat, seed: int) -> int:
        config = self.search_config(seat.search)
        return self._search(rnd, config, seat.model, seed).action

    def view(self, hosted: HostedGame, seat: int) -> pb.GameState:
        """What ``seat`` may see: its own hand, the public record, scores. Call under the lock."""
        game, rnd = hosted.game, hosted.round
        state = pb.GameState(
            game_id=hosted.id, seat=seat, players=len(hosted.seats), single_round=hosted.single_round,
            round_index=min(game.round_index, len(game.schedule) - 1), rounds_in_game=len(game.schedule),
            cards=rnd.cards, trump=trump_name(rnd.trump), dealer=rnd.dealer, phase=rnd.phase_name,
            to_act=game.current_player, hand=[card_name(c) for c in rnd.hand(seat)],
            scores=list(game.scores), game_over=game.is_over,
            forbidden_bid=-1 if rnd.forbidden_bid is None else rnd.forbidden_bid)
        if not game.is_over and rnd.current_player == seat:
            if rnd.phase_name == "bid":
                state.legal_bids.extend(rnd.legal_actions())
            else:
                state.legal_cards.extend(card_name(c) for c in rnd.legal_actions())
        bids, voids = rnd.bids, rnd.void_suits
        for s, spec in enumerate(hosted.seats):
            state.seats.append(pb.SeatView(
                seat=s, kind=spec.label, has_bid=bids[s] is not None, bid=bids[s] or 0,
                tricks_won=rnd.tricks_won[s], cards_held=len(rnd.hand(s)), game_score=game.scores[s],
                voids=[SUITS[v] for v in sorted(voids[s])]))
        state.current_trick.winner = -1
        state.last_trick.winner = -1        # set, so JSON always carries both tricks
        for s, c in rnd.current_trick:
            state.current_trick.cards.append(pb.TrickCard(seat=s, card=card_name(c)))
        state.current_trick.round_index = state.round_index
        if hosted.last_trick is not None:
            state.last_trick.round_index, cards, winner = hosted.last_trick
            state.last_trick.winner = winner
            for s, c in cards:
                state.last_trick.cards.append(pb.TrickCard(seat=s, card=card_name(c)))
        n = rnd.n_players
        for i, (s, a) in enumerate(rnd.history):
            state.history.append(pb.Action(seat=s, bid=a) if i < n else pb.Action(seat=s, card=card_name(a)))
        for i, scores in enumerate(game.round_scores):
            state.results.append(self._result(hosted, i, scores))
        if game.is_over:
            state.winners.extend(game.winners())
        return state

    @staticmethod
    def _result(hosted: HostedGame, index: int, scores: list[int]) -> pb.RoundResult:
        record = hosted.finished_rounds[index]
        return pb.RoundResult(round_index=index, cards=record.cards, trump=trump_name(record.trump),
                              dealer=record.dealer, bids=record.bids, tricks=record.tricks_won,
                              scores=scores)
