"""The BlobAgent API (proto/blobzero/agent.proto), independent of the transport.

``AgentApi`` takes and returns the generated messages; ``ApiError`` carries a gRPC status code
name. The gRPC servicer (``blobzero/agent/service.py``) and the JSON-over-HTTP front of the
web page (``blobzero/agent/web.py``) both call it, so the page and a gRPC client see the same
service. Bad input raises ``ApiError("INVALID_ARGUMENT", <what is wrong>)``; nothing is changed.
"""
from __future__ import annotations

import logging
import time
from typing import Iterator

from blobcore.rules import card_name
from blobcore.search_config import SIZES, SearchConfig
from blobzero import agent_pb2 as pb
from blobzero import gamefile
from blobzero.agent.engine import Advice, Engine, EngineUnavailable
from blobzero.agent.games import GAME_ID_LENGTH, KINDS, GameHost, GameNotFound, GameUnavailable, HostedGame, Seat
from blobzero.agent.gamestore import GameStore, games_location
from blobzero.agent.position import (SUITS, PositionError, Play, SeatKnowledge, build_round, check_table,
                                     parse_card, parse_trump)
from plumbing import config as configuration

log = logging.getLogger("blobzero.agent")
#: the most decisions one Review searches (a 3-player game from 17 cards has ~340 per seat)
MAX_REVIEW_DECISIONS = 1000


class ApiError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def trump_name(trump: int | None) -> str:
    return "none" if trump is None else SUITS[trump]


class AgentApi:
    def __init__(self, cfg: configuration.Config, engine: Engine, metrics=None, store: GameStore | None = None,
                 human_games=None, keep_games: bool = True):
        """store: where hosted games are kept (default: the run's storage, ``games_location``;
        keep_games=False: memory only, as for ``blobzero review``); human_games: a ``HumanGames``
        writer for finished games (default: none unless ``agent.record_human_games``)."""
        self.cfg = cfg
        self.engine = engine
        self.metrics = metrics
        #: a model source can answer (service.watch_models keeps it): gRPC health and /readyz
        self.serving = True
        if store is None and keep_games:
            store = GameStore(cfg.agent.games_dir or games_location(cfg), cfg.agent.keep_games,
                              cfg.agent.keep_games_days)
            log.info("hosted games kept in %s (at most %d, %g days idle)%s", store.location, store.keep_games,
                     store.keep_days, "; human games recorded" if cfg.agent.record_human_games else "")
            try:
                store.prune()
            except OSError as exc:        # storage down at start: serve, and keep trying as games are saved
                log.warning("hosted games: cannot apply the retention to %s now: %s", store.location, exc)
        if human_games is None and cfg.agent.record_human_games:
            from blobzero.agent.humangames import HumanGames
            human_games = HumanGames.from_config(cfg)
        self.human_games = human_games
        self.games = GameHost(self._agent_move, max_games=cfg.agent.max_games, ttl_s=cfg.agent.game_ttl_s,
                              max_per_owner=cfg.agent.max_games_per_client, store=store,
                              on_finished=self._finished)

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
        return self._answer(self._submit(rnd, config, model, seed))

    def _submit(self, rnd, config: SearchConfig, model: str, seed: int):
        try:
            return self.engine.submit(rnd, config, model or self.cfg.agent.model, seed)
        except ValueError as exc:       # an unknown model version
            raise ApiError("INVALID_ARGUMENT", f"model_version: {exc}") from None
        except EngineUnavailable as exc:
            raise ApiError("UNAVAILABLE", str(exc)) from None

    def _answer(self, future) -> Advice:
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
        except GameUnavailable as exc:
            raise ApiError("UNAVAILABLE", str(exc)) from None

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

    # -- game files ----------------------------------------------------------------------
    def export_game(self, req: pb.ExportGameRequest) -> pb.ExportGameResponse:
        """The hosted game as a game file. While it runs, the file holds the completed rounds
        only, without the seed: what every seat has seen (docs/gamefile.md)."""
        hosted = self._game(req.game_id)
        with hosted.lock:
            record = hosted.record(reveal=False)
        return pb.ExportGameResponse(game_json=gamefile.dump(record))

    def import_game(self, req: pb.ImportGameRequest, client: str = "") -> pb.GameState:
        """Host a game file (checked by the rules engine) for review, or to play on."""
        record = self._parse(req.game_json)
        for i, s in enumerate(record.seats):
            if s["kind"] == "model" and not record.over:     # a seat that will search must be servable
                self._seat(pb.SeatSpec(kind="model", search=s.get("search", ""),
                                       model_version=s.get("model_version", "")), f"game_json: seats[{i}]", "model")
        hosted = self.games.add_record(record, owner=client)
        if self.metrics is not None:
            self.metrics.games.set(len(self.games))
        with hosted.lock:
            viewer = next((i for i, s in enumerate(hosted.seats) if s.kind == "human"), 0)
            return self.view(hosted, viewer)

    @staticmethod
    def _parse(text: str) -> gamefile.GameRecord:
        if not text.strip():
            raise ApiError("INVALID_ARGUMENT", "game_json: empty (send the game file's JSON text)")
        try:
            return gamefile.loads(text)
        except gamefile.GameFileError as exc:
            raise ApiError("INVALID_ARGUMENT", f"game_json: {exc}") from None

    # -- review --------------------------------------------------------------------------
    def review(self, req: pb.ReviewRequest) -> Iterator[pb.DecisionReview]:
        """Every decision of ``req.seat``, searched exactly as Advise searches it (same search,
        same engine, one search each): yields one DecisionReview per decision, in game order.
        All of them are submitted at once, so they share the engine's network batches."""
        started = time.perf_counter()
        record = self._review_record(req)
        if not 0 <= req.seat < record.players:
            raise ApiError("INVALID_ARGUMENT", f"seat must be 0..{record.players - 1}, got {req.seat}")
        config = self.search_config(req.search)
        wanted = set(req.rounds)
        positions = [p for p in record.positions(req.seat) if not wanted or p[0] in wanted]
        if len(positions) > MAX_REVIEW_DECISIONS:
            raise ApiError("INVALID_ARGUMENT", f"{len(positions)} decisions: review at most "
                                               f"{MAX_REVIEW_DECISIONS} at once (choose rounds)")
        seed = req.seed or (record.seed or 0)
        futures = [self._submit(rnd, config, req.model_version, seed + 7919 * i + ply)
                   for i, (_, ply, rnd, _) in enumerate(positions)]
        for (index, ply, rnd, action), future in zip(positions, futures):
            answer = self._response(rnd, self._answer(future), config, started)
            yield self._decision(index, ply, rnd, action, answer)

    def _review_record(self, req: pb.ReviewRequest) -> gamefile.GameRecord:
        which = req.WhichOneof("game")
        if which == "game_json":
            return self._parse(req.game_json)
        if which != "game_id":
            raise ApiError("INVALID_ARGUMENT", "a review needs game_id (a hosted game) or game_json (a game file)")
        hosted = self._game(req.game_id)
        with hosted.lock:
            # while the game runs: its completed rounds only (every card of them is public). The
            # round in progress would show a seat's legal cards, i.e. its hand, to whoever asks.
            return hosted.record(reveal=False)

    @staticmethod
    def _decision(index: int, ply: int, rnd, action: int, answer: pb.AdviseResponse) -> pb.DecisionReview:
        bidding = rnd.phase_name == "bid"
        taken = next(a for a in answer.actions if (a.bid == action if bidding else a.card == card_name(action)))
        best = max(a.value for a in answer.actions)
        lost = 0.0 if answer.forced else max(0.0, best - taken.value)
        return pb.DecisionReview(round_index=index, ply=ply, phase=rnd.phase_name, taken=taken,
                                 actions=answer.actions, points_lost=lost, forced=answer.forced,
                                 search=answer.search, model_version=answer.model_version,
                                 expected_score=answer.expected_score)

    def review_all(self, req: pb.ReviewRequest) -> pb.ReviewResponse:
        """The whole review at once (HTTP, the CLI): the decisions, the three costliest marked
        (those losing anything), the total."""
        decisions = list(self.review(req))
        return summarize(decisions, req.seat)

    # -- finished games ------------------------------------------------------------------
    def _finished(self, hosted: HostedGame) -> None:
        if self.human_games is None or hosted.imported:
            return
        try:
            self.human_games.write(hosted)
        except OSError as exc:           # a full disk must not fail the player's last card
            log.warning("human game %s not recorded: %s", hosted.id, exc)


def summarize(decisions: list[pb.DecisionReview], seat: int) -> pb.ReviewResponse:
    order = sorted(range(len(decisions)), key=lambda i: -decisions[i].points_lost)
    costliest = [i for i in order[:3] if decisions[i].points_lost > 0.005]
    for i in costliest:
        decisions[i].costly = True
    first = decisions[0] if decisions else pb.DecisionReview()
    return pb.ReviewResponse(decisions=decisions, total_points_lost=sum(d.points_lost for d in decisions),
                             costliest=costliest, search=first.search, model_version=first.model_version,
                             seat=seat)


#: the API's methods by name: (handler taking (api, request, client), request type)
METHODS = {
    "Advise": (lambda api, r, c: api.advise(r), pb.AdviseRequest),
    "StartGame": (lambda api, r, c: api.start_game(r, c), pb.StartGameRequest),
    "Act": (lambda api, r, c: api.act(r), pb.ActRequest),
    "GetState": (lambda api, r, c: api.get_state(r), pb.GetStateRequest),
    "Hint": (lambda api, r, c: api.hint(r), pb.HintRequest),
    "ExportGame": (lambda api, r, c: api.export_game(r), pb.ExportGameRequest),
    "ImportGame": (lambda api, r, c: api.import_game(r, c), pb.ImportGameRequest),
    "Review": (lambda api, r, c: api.review_all(r), pb.ReviewRequest),    # the stream, gathered
}
#: the longest error message sent back (a message may quote the request; gRPC puts it in metadata)
MAX_MESSAGE = 500


def run_method(api: AgentApi, method: str, request, client: str = ""):
    """Run one API method for ``client`` (its key: the owner of the games it starts, charged
    for the searches it makes); returns (response or None, code name, message), counted in the
    metrics. Every transport calls this: the gRPC servicer and the JSON front."""
    from blobzero.agent.access import acting_for

    started = time.perf_counter()
    try:
        with acting_for(client):            # the searches it makes are charged to the client
            response, code, message = METHODS[method][0](api, request, client), "OK", ""
    except ApiError as exc:
        response, code, message = None, exc.code, exc.message
    except Exception as exc:         # a bug: say so, keep serving
        log.exception("%s failed", method)
        response, code, message = None, "INTERNAL", f"internal error: {type(exc).__name__}: {exc}"
    if api.metrics is not None:
        api.metrics.answered(method, code, time.perf_counter() - started)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "..."
    return response, code, message
