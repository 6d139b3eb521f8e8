"""Human-readable playthroughs (OpenSpiel style): a whole round or game written out move
by move with the legal actions, bids, trick winners and scores.

Golden files in tests/golden/ are produced by this module; a rules change shows up as a
readable diff. Regenerate deliberately with ``python -m blobcore.playthrough --regen``.
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

from blobcore.game import Game
from blobcore.rules import PHASE_BID, Round, card_name

SUITS = "SHCD"


def _cards(cards) -> str:
    return " ".join(card_name(c) for c in sorted(cards)) or "-"


def _trump(rnd: Round) -> str:
    return "none" if rnd.trump is None else SUITS[rnd.trump]


def describe_round(rnd: Round, choose, indent: str = "") -> list[str]:
    """Play ``rnd`` to the end with ``choose(round) -> action``; return the transcript lines."""
    n = rnd.n_players
    out = [f"{indent}table: {n} players, {rnd.cards} cards each, dealer seat {rnd.dealer}, "
           f"trump {_trump(rnd)}"]
    for seat, hand in enumerate(rnd.hands):
        out.append(f"{indent}  seat {seat} dealt: {_cards(hand)}")
    out.append(f"{indent}bidding (starts left of the dealer):")
    while rnd.phase == PHASE_BID:
        seat = rnd.current_player
        legal = rnd.legal_actions()
        note = f" forbidden {rnd.forbidden_bid}" if rnd.forbidden_bid is not None else ""
        action = choose(rnd)
        role = " (dealer)" if seat == rnd.dealer else ""
        out.append(f"{indent}  seat {seat}{role} legal {legal}{note} -> bids {action}")
        rnd.apply(action)
    out.append(f"{indent}  bids {rnd.bids} total {sum(rnd.bids)} vs {rnd.cards} tricks")
    while not rnd.is_terminal:
        trick = rnd.tricks_done + 1
        out.append(f"{indent}trick {trick} (seat {rnd.current_player} leads):")
        while rnd.tricks_done < trick and not rnd.is_terminal:
            seat = rnd.current_player
            legal = rnd.legal_actions()
            action = choose(rnd)
            out.append(f"{indent}  seat {seat} holds {_cards(rnd.hand(seat))} legal {_cards(legal)}"
                       f" -> plays {card_name(action)}")
            rnd.apply(action)
        out.append(f"{indent}  winner: seat {rnd.trick_winners[-1]}; tricks {rnd.tricks_won}")
    out.append(f"{indent}result:")
    for seat, (bid, won, score) in enumerate(zip(rnd.bids, rnd.tricks_won, rnd.scores())):
        made = "made" if bid == won else "missed"
        out.append(f"{indent}  seat {seat}: bid {bid} won {won} {made} -> {score}")
    return out


def seeded_policy(seed: int):
    """Random legal policy for playthroughs; bids stay near C/N so the hook rule shows up."""
    rng = random.Random(seed)

    def choose(rnd: Round) -> int:
        legal = rnd.legal_actions()
        if rnd.phase == PHASE_BID:
            modest = [b for b in legal if b <= rnd.cards // rnd.n_players + 1]
            legal = modest or legal
        return rng.choice(legal)
    return choose


def round_playthrough(seed: int, n_players: int, cards: int, dealer: int, trump) -> str:
    """Transcript of one seeded round played by a seeded random policy."""
    rnd = Round.from_seed(seed, n_players, cards, dealer=dealer, trump=trump)
    lines = [f"# Blob round playthrough: seed {seed}, seeded random legal policy (modest bids)"]
    lines += describe_round(rnd, seeded_policy(seed))
    return "\n".join(lines) + "\n"


def game_playthrough(seed: int, n_players: int, start_cards: int) -> str:
    """Transcript of a complete seeded game (every round) with cumulative scores."""
    game = Game(n_players, start_cards, seed=seed)
    choose = seeded_policy(seed)
    lines = [f"# Blob game playthrough: seed {seed}, {n_players} players starting at "
             f"{start_cards} cards, seeded random legal policy (modest bids)",
             f"schedule: {game.schedule}"]
    while not game.is_over:
        index = game.round_index
        rnd = game.round
        lines.append(f"round {index + 1}/{len(game.schedule)}:")
        transcript = describe_round(rnd.copy(), choose, "  ")
        for seat_action in _replay_actions(transcript, rnd):
            game.apply(seat_action)
        lines += transcript
        lines.append(f"  cumulative scores: {game.scores}")
    lines.append(f"winner(s): {game.winners()} with {max(game.scores)}")
    return "\n".join(lines) + "\n"


def _replay_actions(transcript: list[str], rnd: Round) -> list[int]:
    """Actions recorded in a transcript of ``rnd`` (parsed back, so the game replays them)."""
    from blobcore.rules import card_index
    actions = []
    for line in transcript:
        if "-> bids " in line:
            actions.append(int(line.rsplit(" ", 1)[1]))
        elif "-> plays " in line:
            actions.append(card_index(line.rsplit(" ", 1)[1]))
    return actions


#: golden file name -> generator
GOLDEN = {
    "round_4p_5c_spades.txt": lambda: round_playthrough(11, 4, 5, dealer=0, trump="S"),
    "round_3p_17c_notrump.txt": lambda: round_playthrough(12, 3, 17, dealer=2, trump=None),
    "round_8p_6c_diamonds.txt": lambda: round_playthrough(13, 8, 6, dealer=5, trump="D"),
    "round_5p_1c_hearts.txt": lambda: round_playthrough(14, 5, 1, dealer=3, trump="H"),
    "game_4p_from_3c.txt": lambda: game_playthrough(21, 4, 3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regen", type=Path, metavar="DIR",
                        help="rewrite the golden files into DIR (e.g. tests/golden)")
    args = parser.parse_args()
    if args.regen:
        args.regen.mkdir(parents=True, exist_ok=True)
        for name, make in GOLDEN.items():
            (args.regen / name).write_text(make())
            print(f"wrote {args.regen / name}")
    else:
        print(GOLDEN["round_4p_5c_spades.txt"](), end="")


if __name__ == "__main__":
    main()
