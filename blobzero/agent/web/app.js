// BlobZero play page: plain JS, no build step. Talks to the agent's JSON API (/api/<Method>),
// which is the gRPC service blobzero.v1.BlobAgent with the same field names (agent.proto).
"use strict";

const SUIT_SYMBOL = { S: "♠", H: "♥", C: "♣", D: "♦" };
const SUIT_ORDER = "SHCD";
const RANKS = "23456789TJQKA";
const $ = (id) => document.getElementById(id);

let state = null;        // the latest GameState for my seat
let busy = false;
let exportedGame = null; // the last downloaded game file's text

// An agent started with a token (docs/agent.md, "Running it in public") is opened as
// https://host/#token=<token>: the token moves to this tab's sessionStorage and off the address bar.
const TOKEN = (() => {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("blobzero-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("blobzero-token");
})();

async function api(method, body) {
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const response = await fetch(`/api/${method}`, { method: "POST", headers, body: JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new Error(data.message || `${method} failed (${response.status})`);
  return data;
}

function rankLabel(r) { return r === "T" ? "10" : r; }
function isRed(suit) { return suit === "H" || suit === "D"; }

function cardElement(name, small = false) {
  const rank = name[0], suit = name[1];
  const el = document.createElement("div");
  el.className = `card${isRed(suit) ? " red" : ""}${small ? " small" : ""}`;
  el.dataset.card = name;
  el.title = name;
  el.innerHTML = `<span class="corner">${rankLabel(rank)}${SUIT_SYMBOL[suit]}</span>` +
                 `<span class="pip">${SUIT_SYMBOL[suit]}</span>`;
  return el;
}

function suitHtml(trump) {
  if (trump === "none") return "no trump";
  return `<span class="suit ${isRed(trump) ? "red" : ""}">${SUIT_SYMBOL[trump]}</span> trump`;
}

function seatName(s) { return s === state.seat ? "You" : `Player ${s + 1}`; }

function setMessage(text, error = false) {
  const el = $("message");
  el.textContent = text;
  el.className = error ? "message error" : "message";
}

function setBusy(value) {
  busy = value;
  document.body.classList.toggle("busy", value);
  for (const b of document.querySelectorAll("#bids button, #hint, #start")) b.disabled = value || b.dataset.illegal === "1";
}

// ---- setup -------------------------------------------------------------------------------
function schedule(players, cards) {
  const out = [];
  for (let c = cards; c >= 2; c--) out.push(c);
  for (let i = 0; i < players; i++) out.push(1);
  for (let c = 2; c <= cards; c++) out.push(c);
  return out;
}

function refreshSetup() {
  const players = Number($("players").value);
  const select = $("cards");
  const previous = Number(select.value) || 5;
  select.innerHTML = "";
  const top = Math.floor(52 / players);
  for (let c = 1; c <= top; c++) {
    const o = document.createElement("option");
    o.value = o.textContent = String(c);
    select.appendChild(o);
  }
  select.value = String(Math.min(previous, top));
  const round = $("length").value === "round";
  const rounds = schedule(players, Number(select.value));
  $("schedule").textContent = round ? `One round, ${select.value} cards each.`
    : `A full game: ${rounds.length} rounds of ${rounds.join(", ")} cards.`;
  $("preset-label").hidden = $("opponent-kind").value !== "model";
}

async function startGame(event) {
  event.preventDefault();
  if (busy) return;
  const body = {
    players: Number($("players").value), cards: Number($("cards").value),
    single_round: $("length").value === "round",
    opponents: { kind: $("opponent-kind").value, search: $("preset").value },
  };
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  setBusy(true);
  setMessage("Dealing…");
  try {
    state = await api("StartGame", body);
    $("setup").hidden = true;
    $("game").hidden = false;
    $("hint-box").hidden = true;
    $("review-box").hidden = true;
    reviewing++;
    setMessage(state.game_over ? "" : turnText());
    render();
  } catch (err) {
    setMessage(err.message, true);
  } finally {
    setBusy(false);
  }
}

// ---- playing -----------------------------------------------------------------------------
function turnText() {
  if (state.game_over) return "";
  if (state.to_act !== state.seat) return `Waiting for ${seatName(state.to_act)}…`;
  return state.phase === "bid" ? "Your bid: how many tricks will you take?" : "Your turn: play a card.";
}

async function act(body) {
  if (busy) return;
  const before = state;
  setBusy(true);
  setMessage("The other players are thinking…");
  try {
    state = await api("Act", { game_id: state.game_id, seat: state.seat, ...body });
    $("hint-box").hidden = true;
    const done = state.results.length - before.results.length;
    if (done > 0) {
      const r = state.results[state.results.length - 1];
      const me = state.seat;
      const made = r.bids[me] === r.tricks[me];
      setMessage(`Round ${r.round_index + 1} over: you bid ${r.bids[me]} and took ${r.tricks[me]} ` +
                 `${made ? `— made it, +${r.scores[me]}` : "— missed, +0"}. ${turnText()}`);
    } else {
      setMessage(turnText());
    }
    render();
    // the review runs beside the game: the next round can be played while the agent reviews
    if (done > 0) review(state.game_over ? [] : [state.results[state.results.length - 1].round_index]);
  } catch (err) {
    setMessage(err.message, true);
  } finally {
    setBusy(false);
  }
}

async function hint() {
  if (busy || !state || state.game_over || state.to_act !== state.seat) return;
  setBusy(true);
  setMessage("The agent is thinking…");
  try {
    const advice = await api("Hint", { game_id: state.game_id, seat: state.seat, search: $("preset").value });
    renderHint(advice);
    setMessage(turnText());
  } catch (err) {
    setMessage(err.message, true);
  } finally {
    setBusy(false);
  }
}

function actionLabel(a) {
  return a.card !== undefined ? `${rankLabel(a.card[0])}${SUIT_SYMBOL[a.card[1]]}` : `bid ${a.bid}`;
}

function renderHint(advice) {
  const box = $("hint-box");
  const best = actionLabel(advice.recommended);
  let html = `<p><strong>The agent suggests ${best}</strong> — expected score ` +
             `${advice.expected_score.toFixed(1)} points (${advice.search}, model ${advice.model_version}` +
             `${advice.forced ? ", forced" : ""}).</p><table><tr><th>action</th><th>network prior</th>` +
             `<th>search visits</th><th>expected score</th></tr>`;
  for (const a of advice.actions) {
    const key = a.card !== undefined ? a.card : `bid-${a.bid}`;
    const cls = actionLabel(a) === best ? "best" : "";
    html += `<tr class="${cls}" data-action="${key}"><td>${actionLabel(a)}</td>` +
            `<td>${(100 * a.prior).toFixed(1)}% <span class="bar" data-width="${Math.round(60 * a.prior)}"></span></td>` +
            `<td>${a.visits}</td><td>${a.value.toFixed(2)}</td></tr>`;
  }
  box.innerHTML = html + "</table>";
  // widths through the CSSOM: the page's Content-Security-Policy refuses inline style attributes
  for (const bar of box.querySelectorAll(".bar")) bar.style.width = `${bar.dataset.width}px`;
  box.hidden = false;
}

// ---- review, game files ----------------------------------------------------------------------
// After each round: the review of that round; at the end of the game: of the whole game. Every
// decision of my seat, searched by the agent as a hint would be: what it expected of each action,
// the points given away, the three costliest marked.
let reviewing = 0;       // the latest review asked for: an older answer arriving later is dropped

async function review(rounds) {
  const mine = ++reviewing;
  const box = $("review-box");
  box.hidden = false;
  box.dataset.state = "running";
  box.innerHTML = `<h2>Review</h2><p class="options">The agent reviews your decisions…</p>`;
  try {
    const answer = await api("Review", { game_id: state.game_id, seat: state.seat, search: $("preset").value, rounds });
    if (mine === reviewing) renderReview(answer, rounds);
  } catch (err) {
    if (mine !== reviewing) return;
    box.dataset.state = "failed";
    box.innerHTML = `<h2>Review</h2><p class="options">${err.message}</p>`;
  }
}

function renderReview(answer, rounds) {
  const box = $("review-box");
  const scope = rounds.length ? `round ${rounds[0] + 1}` : "the whole game";
  let html = `<h2>Review of ${scope}: ${answer.total_points_lost.toFixed(1)} points given away</h2>` +
             `<p class="options">search ${answer.search}, model ${answer.model_version}; expected round score ` +
             `of each action, the best first</p><table><tr><th>round</th><th>you</th><th>expected</th>` +
             `<th>best</th><th>expected</th><th>points lost</th><th>every action</th></tr>`;
  for (const d of answer.decisions) {
    const best = d.actions.reduce((a, b) => (b.value > a.value ? b : a));
    const all = [...d.actions].sort((a, b) => b.value - a.value)
      .map((a) => `${actionLabel(a)} ${a.value.toFixed(1)} (${a.visits}, ${(100 * a.prior).toFixed(0)}%)`).join(" · ");
    html += `<tr class="decision${d.costly ? " costly" : ""}" data-lost="${d.points_lost}">` +
            `<td>${d.round_index + 1}</td><td>${actionLabel(d.taken)}</td><td>${d.taken.value.toFixed(1)}</td>` +
            `<td>${actionLabel(best)}</td><td>${best.value.toFixed(1)}</td>` +
            `<td class="lost">${d.forced ? "forced" : d.points_lost.toFixed(1)}</td><td class="all">${all}</td></tr>`;
  }
  box.innerHTML = html + `<tr class="total"><td colspan="5">Total</td><td>${answer.total_points_lost.toFixed(1)}</td><td></td></tr></table>`;
  box.dataset.state = "done";
}

async function download() {
  if (busy || !state) return;
  try {
    const answer = await api("ExportGame", { game_id: state.game_id });
    exportedGame = answer.game_json;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([exportedGame], { type: "application/json" }));
    link.download = `blob-${state.game_id}.json`;
    document.body.appendChild(link);
    link.click();
    link.remove();
  } catch (err) {
    setMessage(err.message, true);
  }
}

async function openFile() {
  const file = $("open-file").files[0];
  if (!file || busy) return;
  setBusy(true);
  setMessage("Opening the game file…");
  try {
    state = await api("ImportGame", { game_json: await file.text() });
    $("setup").hidden = true;
    $("game").hidden = false;
    $("hint-box").hidden = true;
    setMessage(state.game_over ? "" : turnText());
    render();
    if (state.results.length) review([]);
  } catch (err) {
    setMessage(err.message, true);
  } finally {
    $("open-file").value = "";
    setBusy(false);
  }
}

// ---- rendering ---------------------------------------------------------------------------
function render() {
  const s = state;
  localStorage.setItem("blobzero-game", JSON.stringify({ game_id: s.game_id, seat: s.seat, search: $("preset").value }));
  $("round-info").textContent = s.single_round ? `One round · ${s.cards} cards each`
    : `Round ${s.round_index + 1} of ${s.rounds_in_game} · ${s.cards} card${s.cards > 1 ? "s" : ""} each`;
  $("trump-info").innerHTML = suitHtml(s.trump);
  $("phase-info").textContent = s.game_over ? "game over" : s.phase === "bid" ? "bidding" : "playing";
  renderSeats();
  const empty = { cards: [], winner: -1 };
  const last = s.last_trick || empty;
  renderTrick($("trick"), s.current_trick || empty, false);
  renderTrick($("last-trick"), last, true);
  $("last-winner").textContent = last.cards.length ? `${seatName(last.winner)} won it` : "";
  $("last-title").textContent = last.cards.length && last.round_index !== s.round_index
    ? `Last trick of round ${last.round_index + 1}` : "Last trick";
  renderBids();
  renderHand();
  renderScores();
  const over = $("game-over");
  over.hidden = !s.game_over;
  if (s.game_over) {
    const names = s.winners.map(seatName);
    const mine = s.winners.includes(s.seat);
    over.textContent = `${mine ? "🏆 " : ""}${names.join(" and ")} win${names.length === 1 && names[0] !== "You" ? "s" : ""}` +
      ` with ${Math.max(...s.scores)} points.`;
    over.dataset.winners = s.winners.join(",");
  }
  $("hint").disabled = busy || s.game_over || s.to_act !== s.seat;
}

function renderSeats() {
  const box = $("seats");
  box.innerHTML = "";
  for (const v of state.seats) {
    const el = document.createElement("div");
    el.className = `seat${v.seat === state.to_act && !state.game_over ? " to-act" : ""}${v.seat === state.seat ? " me" : ""}`;
    el.dataset.seat = v.seat;
    const bid = v.has_bid ? v.bid : "–";
    let cls = "";
    if (v.has_bid && state.phase !== "bid") cls = v.tricks_won === v.bid ? "made" : v.tricks_won > v.bid ? "over" : "";
    el.innerHTML =
      `<div class="name"><span>${seatName(v.seat)}</span>${v.seat === state.dealer ? '<span class="dealer" title="dealer">D</span>' : ""}</div>` +
      `<div class="kind">${v.kind}</div>` +
      `<div class="line">bid <strong class="bid">${bid}</strong> · tricks <strong class="tricks ${cls}">${v.tricks_won}</strong></div>` +
      `<div class="line">score <strong class="game-score">${v.game_score}</strong> · ${v.cards_held} in hand</div>`;
    box.appendChild(el);
  }
}

function renderTrick(box, trick, last) {
  box.innerHTML = "";
  for (const tc of trick.cards) {
    const el = document.createElement("div");
    el.className = `played${last && tc.seat === trick.winner ? " wins" : ""}`;
    el.appendChild(cardElement(tc.card, last));
    const who = document.createElement("span");
    who.textContent = seatName(tc.seat);
    el.appendChild(who);
    box.appendChild(el);
  }
}

function renderBids() {
  const box = $("bids");
  const bidding = !state.game_over && state.phase === "bid" && state.to_act === state.seat;
  box.hidden = !bidding;
  box.innerHTML = "";
  if (!bidding) return;
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = "Bid:";
  box.appendChild(label);
  for (let b = 0; b <= state.cards; b++) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "bid-button";
    button.textContent = String(b);
    button.dataset.bid = String(b);
    const legal = state.legal_bids.includes(b);
    button.dataset.illegal = legal ? "0" : "1";
    button.disabled = !legal;
    if (b === state.forbidden_bid) button.title = "the dealer may not make the bids add up to the cards dealt";
    button.addEventListener("click", () => act({ bid: b }));
    box.appendChild(button);
  }
}

function sortKey(name) { return SUIT_ORDER.indexOf(name[1]) * 13 + (12 - RANKS.indexOf(name[0])); }

function renderHand() {
  const box = $("hand");
  box.innerHTML = "";
  const playing = !state.game_over && state.phase === "play" && state.to_act === state.seat;
  for (const name of [...state.hand].sort((a, b) => sortKey(a) - sortKey(b))) {
    const el = cardElement(name);
    if (playing) {
      const legal = state.legal_cards.includes(name);
      el.classList.add(legal ? "legal" : "illegal");
      if (legal) el.addEventListener("click", () => act({ card: name }));
    }
    box.appendChild(el);
  }
}

function renderScores() {
  const s = state;
  const table = $("scores");
  let html = "<tr><th>Round</th><th>Cards</th><th>Trump</th>" +
             s.seats.map((v) => `<th>${seatName(v.seat)}</th>`).join("") + "</tr>";
  for (const r of s.results) {
    html += `<tr data-round="${r.round_index}"><td>${r.round_index + 1}</td><td>${r.cards}</td>` +
            `<td class="${isRed(r.trump) ? "red" : ""}">${r.trump === "none" ? "–" : SUIT_SYMBOL[r.trump]}</td>`;
    for (let p = 0; p < s.players; p++) {
      const made = r.bids[p] === r.tricks[p];
      html += `<td data-seat="${p}" data-score="${r.scores[p]}" class="${made ? "made" : "missed"}" ` +
              `title="bid ${r.bids[p]}, took ${r.tricks[p]}">${r.bids[p]}/${r.tricks[p]} → ${r.scores[p]}</td>`;
    }
    html += "</tr>";
  }
  const best = Math.max(...s.scores);
  html += `<tr class="total"><td colspan="3">Total</td>` +
          s.scores.map((v, p) => `<td data-seat="${p}" data-total="${v}" class="${v === best && s.results.length ? "leader" : ""}">${v}</td>`).join("") +
          "</tr>";
  table.innerHTML = html;
}

// ---- wiring ------------------------------------------------------------------------------
$("setup-form").addEventListener("submit", startGame);
for (const id of ["players", "cards", "length", "opponent-kind"]) $(id).addEventListener("change", refreshSetup);
$("hint").addEventListener("click", hint);
$("download").addEventListener("click", download);
$("open-file").addEventListener("change", openFile);
$("new-game").addEventListener("click", () => {
  localStorage.removeItem("blobzero-game");
  $("game").hidden = true;
  $("setup").hidden = false;
  setMessage("");
});
refreshSetup();

// Each level and built-in opponent with its rating (blobzero ladder: Bradley–Terry, Elo scale,
// random = 0), when the run has measured it.
function nameLevels(ratings) {
  const label = (r) => ` · rating ${Math.round(r.rating)} ±${Math.round((r.high - r.low) / 2)}`;
  for (const o of $("preset").options) {
    const r = ratings[`level:${o.value}`];
    if (r) { o.textContent += label(r); o.dataset.rating = String(r.rating); }
  }
  for (const o of $("opponent-kind").options) {
    const r = ratings[o.value];
    if (r) { o.textContent += label(r); o.dataset.rating = String(r.rating); }
  }
}

// A reload (or an agent restart: hosted games are kept in its storage) continues the game.
async function resume() {
  const saved = JSON.parse(localStorage.getItem("blobzero-game") || "null");
  if (!saved) return;
  try {
    state = await api("GetState", { game_id: saved.game_id, seat: saved.seat });
    $("preset").value = saved.search;       // hints and the review keep the search chosen
    $("setup").hidden = true;
    $("game").hidden = false;
    setMessage(state.game_over ? "" : turnText());
    render();
  } catch (err) {
    localStorage.removeItem("blobzero-game");
  }
}
// The agent's levels (one definition: blobcore.search_config.LEVELS), weakest first; the chosen
// one is the agent's default search when that is a level, else the strongest. Then a saved game
// resumes with the search it chose.
function levelOptions(info) {
  const names = info.search_presets || [];
  for (const name of names) {
    const level = (info.levels || {})[name];
    const o = document.createElement("option");
    o.value = name;
    o.textContent = level ? `${name} ${level.determinizations}×${level.simulations}` : name;
    $("preset").append(o);
  }
}
fetch("/api/info").then((r) => r.json()).then((info) => {
  $("model-info").textContent = `agent: ${info.model}`;
  levelOptions(info);
  const names = info.search_presets || [];
  $("preset").value = names.includes(info.default_search) ? info.default_search : names[names.length - 1];
  nameLevels(info.ratings || {});
}).catch(() => {}).finally(resume);
