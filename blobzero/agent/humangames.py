"""Human games as training data, opt-in (off by default: ``agent.record_human_games``).

When a hosted game with a human seat ends (a game played on the page or through Act; not an
imported file), each of its rounds is written as a ``RoundRecord`` — the self-play record
(``plumbing/records.py``): the deal, every action, the scores, the game context — in which only
the human seats' moves are decisions, each with one visit on the move taken (an imitation target,
as ``selfplay.imitate`` records a built-in seat), and the client id ``human-<game_id>`` marks them.
One shard per game (``plumbing/shards.py`` format, one crash-safe put) under
``<parent of storage.games_dir>/human_games/``: beside the self-play shards, never among them, so
the trainer reads them only when told to mix a share of them in.
"""
from __future__ import annotations

from plumbing import storage
from plumbing.records import to_proto
from plumbing.shards import encode_shard, shard_key


def human_games_location(cfg) -> str:
    """``<parent of storage.games_dir>/human_games`` (storage.locations)."""
    return storage.locations(cfg.storage).human_games


class HumanGames:
    def __init__(self, location: str):
        self.store = storage.open_store(location)

    @classmethod
    def from_config(cls, cfg) -> "HumanGames":
        return cls(human_games_location(cfg))

    @staticmethod
    def records(hosted) -> list:
        """The finished rounds of ``hosted`` as RoundRecords (the human seats' decisions only)."""
        humans = {i for i, s in enumerate(hosted.seats) if s.kind == "human"}
        game_id = int(hosted.id, 16)
        out, before = [], [0] * len(hosted.seats)
        for index, rnd in enumerate(hosted.finished_rounds):
            history = rnd.history
            decisions = [{"ply": ply, "player": seat, "visits": {action: 1}, "q": {}, "root_value": []}
                         for ply, (seat, action) in enumerate(history) if seat in humans]
            record = {"n_players": rnd.n_players, "cards": rnd.cards, "dealer": rnd.dealer, "trump": rnd.trump,
                      "actions": [a for _, a in history], "scores": rnd.scores(), "seed": hosted.seed + index,
                      "hands": rnd.dealt_hands, "decisions": decisions, "search": {}}
            if not hosted.single_round:
                schedule = hosted.game.schedule
                record["game"] = {"round_index": index, "n_rounds": len(schedule),
                                  "next_cards": schedule[index + 1] if index + 1 < len(schedule) else 0,
                                  "scores_before": list(before), "game_id": game_id}
            before = [a + b for a, b in zip(before, rnd.scores())]
            out.append(to_proto(record, client_id=f"human-{hosted.id}", model_version=0))
        return out

    def write(self, hosted) -> str | None:
        """One shard with the game's rounds; its key (None: no human seat, nothing written)."""
        if not any(s.kind == "human" for s in hosted.seats):
            return None
        key = shard_key(0, f"human-{hosted.id}", 0)
        self.store.put(key, encode_shard(self.records(hosted)))
        return key
