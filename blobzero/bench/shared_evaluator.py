"""One evaluator process fed by N self-play processes: the shape Triton gives, without Triton.

Used by ``blobzero bench gpu`` to size "how many self-play replicas per GPU". Each search
process (``run_client``) runs the real double-buffered ``PooledSearch``; its two halves' leaf
batches go through shared memory (one block per client, two slots, one per half) and a request
queue to the evaluator process (``serve``), which merges every request waiting (up to
``max_rows`` positions, like Triton's dynamic batcher), runs BlobNet once on the merged batch
(bf16 autocast on CUDA; float32 on the CPU, which is how the tests run it) and writes each
client's rows back into its slot. Requests carry only (client, slot, rows): no array is pickled.

Shapes per slot: states (rows_max, 256) + masks (rows_max, 52) float32 in, policy
(rows_max, 52) + value (rows_max, 8) float32 out.
"""
from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from multiprocessing import shared_memory

import numpy as np

from plumbing.netspec import NUM_ACTIONS, STATE_DIM, VALUE_DIM

SLOTS = 2                                          # one per double-buffered half
_FIELDS = (("states", STATE_DIM), ("masks", NUM_ACTIONS), ("policy", NUM_ACTIONS), ("value", VALUE_DIM))
STOP = None                                        # on the request queue: the evaluator exits


def slot_bytes(rows_max: int) -> int:
    return rows_max * sum(width for _, width in _FIELDS) * 4


def slot_views(buffer, rows_max: int, slot: int) -> dict[str, np.ndarray]:
    """The four float32 arrays of ``slot`` in a client's shared block."""
    out, offset = {}, slot * slot_bytes(rows_max)
    for name, width in _FIELDS:
        out[name] = np.ndarray((rows_max, width), np.float32, buffer=buffer, offset=offset)
        offset += rows_max * width * 4
    return out


class SharedEvaluatorClient:
    """A search process's side: ``submit(states, masks) -> Future[(policy, value)]``, at most
    one request per slot in flight (PooledSearch's two halves)."""

    def __init__(self, client: int, shm_name: str, rows_max: int, requests, responses):
        self.client, self.rows_max = client, rows_max
        self.shm = shared_memory.SharedMemory(name=shm_name)
        self.views = [slot_views(self.shm.buf, rows_max, s) for s in range(SLOTS)]
        self.requests, self.responses = requests, responses
        self.free = list(range(SLOTS))
        self.pending: dict[int, tuple[concurrent.futures.Future, int]] = {}
        self.lock = threading.Lock()
        self.receiver = threading.Thread(target=self._receive, daemon=True)
        self.receiver.start()

    def submit(self, states: np.ndarray, masks: np.ndarray) -> concurrent.futures.Future:
        n = len(states)
        if n > self.rows_max:
            raise ValueError(f"{n} positions in one request, over the evaluator's {self.rows_max}")
        with self.lock:
            slot = self.free.pop()
            future = concurrent.futures.Future()
            self.pending[slot] = (future, n)
        view = self.views[slot]
        view["states"][:n] = states
        view["masks"][:n] = masks
        self.requests.put((self.client, slot, n))
        return future

    def _receive(self) -> None:
        while True:
            slot = self.responses.get()
            if slot is STOP:
                return
            with self.lock:
                future, n = self.pending.pop(slot)
            view = self.views[slot]
            result = (view["policy"][:n].copy(), view["value"][:n].copy())
            with self.lock:
                self.free.append(slot)
            try:
                future.set_result(result)
            except concurrent.futures.InvalidStateError:
                pass                                  # cancelled by a stopping PooledSearch

    def close(self) -> None:
        self.responses.put(STOP)
        self.receiver.join(timeout=5)
        self.views = []
        try:
            self.shm.close()
        except BufferError:                           # a view still referenced: the OS frees it
            pass


def serve(shm_names: list[str], rows_max: int, max_rows: int, requests, responses, preset: str,
          device: str, ready, stats) -> None:
    """The evaluator process: merge waiting requests into batches of <= ``max_rows`` rows and
    run BlobNet ``preset`` on ``device`` until STOP; puts its counters on ``stats``."""
    import torch

    from trainer.blobnet import ServingNet, build
    torch.set_num_threads(1)
    net = ServingNet(build(preset, seed=0)).to(device).eval()
    cuda = device == "cuda"
    blocks = [shared_memory.SharedMemory(name=n) for n in shm_names]
    views = [[slot_views(b.buf, rows_max, s) for s in range(SLOTS)] for b in blocks]
    states = torch.empty((max_rows, STATE_DIM), pin_memory=cuda)
    masks = torch.empty((max_rows, NUM_ACTIONS), pin_memory=cuda)
    batches = rows_total = 0
    busy = 0.0
    ready.set()
    stopping = False
    while not stopping:
        first = requests.get()
        if first is STOP:
            break
        batch, rows = [first], first[2]
        while rows < max_rows:                        # everything already waiting, like Triton
            try:
                item = requests.get_nowait()
            except queue.Empty:
                break
            if item is STOP:
                stopping = True
                break
            if rows + item[2] > max_rows:
                requests.put(item)                    # next batch
                break
            batch.append(item)
            rows += item[2]
        started = time.perf_counter()
        row = 0
        for client, slot, n in batch:
            v = views[client][slot]
            states[row:row + n].numpy()[:] = v["states"][:n]
            masks[row:row + n].numpy()[:] = v["masks"][:n]
            row += n
        with torch.no_grad(), torch.autocast(device_type="cuda" if cuda else "cpu",
                                             dtype=torch.bfloat16, enabled=cuda):
            policy, value = net(states[:rows].to(device, non_blocking=True),
                                masks[:rows].to(device, non_blocking=True))
        policy, value = policy.float().cpu().numpy(), value.float().cpu().numpy()
        row = 0
        for client, slot, n in batch:
            v = views[client][slot]
            v["policy"][:n] = policy[row:row + n]
            v["value"][:n] = value[row:row + n]
            row += n
            responses[client].put(slot)
        busy += time.perf_counter() - started
        batches += 1
        rows_total += rows
    views = states = masks = None
    for b in blocks:
        b.close()
    stats.put({"batches": batches, "rows": rows_total, "busy_s": busy})


def run_client(client: int, shm_name: str, rows_max: int, requests, responses, games: int,
               warmup_s: float, measure_s: float, seed: int, results, config) -> None:
    """A self-play process: search ``config`` (a SearchConfig), 4 players, 5 cards, ``games``
    rounds in flight; puts (rounds finished in the measured window, positions evaluated in
    it) on ``results``."""
    from selfplay_client.runner import PooledSearch, round_specs
    evaluator = SharedEvaluatorClient(client, shm_name, rows_max, requests, responses)
    start = time.perf_counter()
    begin, end = start + warmup_s, start + warmup_s + measure_s
    finished = [0]

    def on_record(_record) -> None:
        if begin <= time.perf_counter() < end:
            finished[0] += 1

    search = PooledSearch(evaluator, config, round_specs(seed), n_games=games)
    positions_before = [0]

    def should_stop() -> bool:
        now = time.perf_counter()
        if now < begin:
            positions_before[0] = search.stats.positions
        return now >= end
    search.run(on_record=on_record, should_stop=should_stop)
    results.put((client, finished[0], search.stats.positions - positions_before[0]))
    evaluator.close()


def selfplay_rate(n_clients: int, preset: str, device: str, games: int = 512,
                  max_rows: int = 16384, warmup_s: float = 10.0, measure_s: float = 20.0,
                  search=None) -> dict:
    """Rounds/min of ``n_clients`` search processes sharing one evaluator process, each
    running ``search`` (a SearchConfig; default: the product's at Medium size)."""
    if search is None:
        from blobzero.bench import search_config
        search = search_config(preset="medium")
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    rows_max = -(-games // 2)
    blocks = [shared_memory.SharedMemory(create=True, size=SLOTS * slot_bytes(rows_max))
              for _ in range(n_clients)]
    requests = ctx.Queue()
    responses = [ctx.Queue() for _ in range(n_clients)]
    ready, stats, results = ctx.Event(), ctx.Queue(), ctx.Queue()
    names = [b.name for b in blocks]
    clients: list = []
    server = ctx.Process(target=serve, args=(names, rows_max, max_rows, requests, responses, preset,
                                             device, ready, stats), daemon=True)
    server.start()
    try:
        if not ready.wait(300):
            raise RuntimeError("the evaluator process did not start within 300 s")
        clients += [ctx.Process(target=run_client, args=(i, names[i], rows_max, requests, responses[i],
                                                        games, warmup_s, measure_s, 1000 * i, results,
                                                        search),
                               daemon=True) for i in range(n_clients)]
        for c in clients:
            c.start()
        done = [results.get(timeout=warmup_s + measure_s + 600) for _ in clients]
        for c in clients:
            c.join(timeout=30)
        requests.put(STOP)
        served = stats.get(timeout=60)
        server.join(timeout=30)
    finally:
        for p in [server, *clients]:
            if p.is_alive():
                p.kill()
        for b in blocks:
            b.close()
            b.unlink()
    rounds = sum(r for _, r, _ in done)
    positions = sum(p for _, _, p in done)
    return {"processes": n_clients, "rounds_per_min": round(rounds / measure_s * 60, 1),
            "evaluations_per_s": round(positions / measure_s),
            "evaluator_batch_mean": round(served["rows"] / max(1, served["batches"]), 1),
            "evaluator_busy_fraction": round(served["busy_s"] / (warmup_s + measure_s), 3),
            "games_in_flight_per_process": games, "measure_s": measure_s}
