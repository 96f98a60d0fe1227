"""LLM pools: replicas that serve token by token with iteration-level continuous batching.

Each replica (``tensor_parallel`` devices of one node, one vLLM-style engine) keeps its own
running list and FIFO waiting queue; a request routed to the pool goes to the replica with the
fewest outstanding tokens (prompt plus output tokens of the requests it holds and has not
finished) or, with ``replica_routing: least-kv``, the most free KV cache. An idle replica with
work starts an iteration, scheduled as vLLM's scheduler does with chunked prefill:

1. the running sequences in admission order, each with what it still has to process: one token
   when decoding, or the rest of its prompt (a chunk of it when the token budget runs out, with
   ``chunked_prefill``). A sequence that needs a KV-cache block when none is free preempts the
   newest running sequence (its blocks are freed; it goes back to the head of the waiting queue
   and is recomputed later, prompt and generated tokens together), itself if it is the newest;
2. then, if nothing was preempted, waiting requests in FIFO order while the iteration has fewer
   than ``max_num_seqs`` sequences, budget left of ``max_batched_tokens`` tokens and free blocks
   for the prompt (or its first chunk; for a preempted sequence, for all it must recompute) beyond
   a watermark of 1% of the blocks (vLLM's default). The head of the queue blocks those behind it.

Without ``chunked_prefill`` the order is vLLM's default scheduler's instead: when the head of the
queue can be admitted whole, the iteration admits waiting prompts only (the same rules, the whole
budget; running sequences skip it), else it is the running sequences' as in 1.

The iteration takes ``LLMReplicaModel.seconds(tokens, samples, attn_pairs, kv_tokens)`` from the
shared service-time model (`lepton_sim.servicetime.llm`). At its end every sequence whose cache
now holds all its known tokens samples one more token: the first one goes back to the demand
site at once (`Simulation._first_token`), and the last one finishes the request
(`Simulation._llm_done`). A request that could never fit the replica's KV cache, even alone, is
dropped on arrival.

How it stays fast without changing a decision (the tests compare every metric, bit for bit, with
``LLMPool.COHORT = False``: every sequence scheduled one by one, one event per iteration):

- the decode cohort (`Replica`): the leading running sequences that are all decoding are kept in
  aggregate, so an iteration costs the same whatever its batch;
- planned runs (`LLMPool._plan`): when an iteration holds only the cohort and nothing waiting can
  be admitted, the iterations after it are known until a member finishes or the cache runs short;
  up to ``PLAN_MAX`` of them are timed at once and carried out in one event (`_apply`), cut short at
  the iteration running when a request arrives or the replica fails (`_cut`, `fail`).
"""
from __future__ import annotations

import bisect
import heapq
import itertools
from heapq import heappush
from collections import deque
from typing import TYPE_CHECKING, Any

import simpy

from lepton_sim.scenario.schema import LognormalTokens, Replicas, Tokens, UniformTokens
from lepton_sim.servicetime.llm import attention_terms
from lepton_sim.sim.common import BIN_SURE, NORMAL, TIME_BINS, Call, Request

if TYPE_CHECKING:
    from lepton_sim.sim.engine import Simulation


class Seq:
    """One LLM request's sequence on its replica (mutable, engine-internal)."""

    __slots__ = ("req", "prompt", "output", "kv", "gen", "blocks", "done", "t_first_back", "preemptions", "lost",
                 "t0", "join")

    def __init__(self, req: Request, prompt: int, output: int) -> None:
        self.req = req
        self.prompt, self.output = prompt, output
        self.kv = 0  # tokens whose K and V are in the cache
        self.gen = 0  # output tokens sampled so far
        self.blocks = 0  # KV-cache blocks held
        self.done = False
        self.t_first_back = -1.0  # when the first token reached the demand site
        self.preemptions = 0
        self.lost = False  # a part of its output was lost on a failed link: the request failed
        # In its replica's decode cohort (see `Replica`): kv, gen and blocks are as they were when it
        # joined, at cohort step t0; `join` is its join serial (-1 outside the cohort).
        self.t0 = 0
        self.join = -1


class Replica:
    """One replica's scheduler state.

    Its running sequences, in admission order, are ``coh + tail``. ``coh`` is the decode cohort: a
    prefix of sequences that are all decoding (prompt cached, at least one token sampled), so that
    every iteration each of them processes one token and samples one. Their state is kept in
    aggregate and read off on demand: after ``t`` cohort steps a member has ``kv + t - t0`` tokens
    cached and ``gen + t - t0`` sampled, the members' cached tokens sum to ``s0 + len(coh) t``,
    ``res[k]`` members need a new KV block at a step t with t mod block_tokens = k, and ``heap``
    orders them by the step after which they finish. An iteration thus costs the same whatever the
    cohort's size; ``tail`` (prefilling, recomputing or behind one that is) is scheduled one
    sequence at a time. Decisions are those of scheduling every sequence one by one, which the
    cohort falls back to (`LLMPool._dissolve`) whenever they could differ: when its members need
    more blocks than are free (preemption) or more tokens than the budget.
    """

    __slots__ = ("index", "coh", "tail", "waiting", "free", "busy", "sched", "tokens_out", "live", "gen", "end",
                 "levels", "t", "s0", "res", "heap", "stepped", "plan", "wants", "applied", "pending", "run_len")

    def __init__(self, index: int, blocks: int, block_tokens: int) -> None:
        self.index = index
        self.live = True
        # The event of the running iteration's end (or its plan's): one that is not is ignored (a
        # plan cut short, or the replica failed: then None).
        self.pending: Call | None = None
        self.end = 0.0  # when the running iteration ends
        self.levels = (0, 0)  # the running iteration's sequences running and KV blocks in use
        self.coh: list[Seq] = []
        self.tail: list[Seq] = []
        self.waiting: deque[Seq] = deque()
        self.free = blocks
        self.busy = False
        self.sched: list[tuple[Seq, int]] = []  # the running iteration's tail and admitted sequences
        self.stepped = 0  # cohort members in the running iteration
        self.tokens_out = 0  # prompt + output tokens of the requests it holds and has not finished
        self.t = 0  # cohort steps taken
        self.s0 = 0  # sum over the cohort of kv - t0
        self.res = [0] * block_tokens
        self.heap: list[tuple[int, int, Seq]] = []  # (step after which it finishes, join serial, member)
        # A planned run of cohort-only iterations (`LLMPool._plan`): their end times, the blocks each
        # takes at its start, and how many have started.
        self.plan: list[float] | None = None
        self.wants: list[int] = []
        self.applied = 0
        self.run_len = 8.0  # iterations a plan ran before its end or a cut, smoothed: how far to plan


def mean_tokens(tokens: Tokens) -> tuple[float, float]:
    """The mean prompt and output tokens of a service's requests (a trace's over its rows)."""
    if tokens.trace is not None:
        pairs = tokens.trace.pairs
        return sum(p for p, _ in pairs) / len(pairs), sum(o for _, o in pairs) / len(pairs)

    def mean(d: Any) -> float:
        if isinstance(d, UniformTokens):
            return (d.low + d.high) / 2
        if isinstance(d, LognormalTokens):
            return d.mean  # before clipping
        return float(d.n)

    return mean(tokens.prompt), mean(tokens.output)


class LLMPool:
    """`count` replicas of an LLM variant, each with its own continuous-batching scheduler."""

    COHORT = True  # False schedules every running sequence one by one (the tests' reference)
    PLAN_MAX = 64  # cohort-only iterations planned at once (`_plan`)

    def __init__(self, sim: Simulation, index: int, line: Replicas, svc: Any, model: Any, kv_tokens: int,
                 window: int | None = None) -> None:
        self.sim, self.env, self.index, self.line = sim, sim.env, index, line
        self.id = f"{line.service}@{line.site}/{line.hardware}/{line.variant}"
        win = sim.window  # fixed for the run: read once
        self.w_start, self.w_end, self.bin_w = win.start, win.end, win.bin_w
        self.cur = 0  # the time bin the last iteration tallied by `_tally` started in, and below
        self.sure = -1.0  # `sure` an iteration lies inside both it and the window for certain
        sched = svc.scheduler_or_default
        self.model = model  # the replica's `LLMReplicaModel`
        self.seconds = getattr(model, "unchecked_seconds", model.seconds)
        self.decode_seconds = getattr(model, "decode_seconds", None)
        self.batch_times = None
        self.block_tokens = sched.block_tokens
        self.total_blocks = kv_tokens // sched.block_tokens
        self.watermark = -(-self.total_blocks // 100)  # vLLM's default: admissions keep 1% of the blocks free
        self.max_seqs = sched.max_num_seqs
        self.max_tokens = sched.max_batched_tokens
        self.chunked = sched.chunked_prefill
        self.by_kv = sched.replica_routing == "least-kv"
        self.window = window  # sliding-window attention: a token attends to at most this many keys
        n = line.count
        self.replicas = [Replica(i, self.total_blocks, self.block_tokens) for i in range(n)]
        self.cohort = self.COHORT and window is None  # sliding windows cap attention per sequence
        # least-kv routing reads free blocks between iterations
        self.plans = self.cohort and not self.by_kv and self.decode_seconds is not None
        self.joins = 0
        self.rr = 0  # where the next tie-break starts
        # What routing between pools reads (`routing._load`): requests routed here and not finished,
        # times a request's modelled seconds alone on a replica (its mean prompt's prefill, then
        # its mean output's decode steps one at a time), per live replica.
        p, o = mean_tokens(svc.tokens)
        pi, oi = max(1, round(p)), max(1, round(o))
        prefill, kv = 0.0, 0
        while kv < pi:
            chunk = min(pi - kv, self.max_tokens)
            prefill += model.seconds(chunk, int(kv + chunk == pi), chunk * (kv + (chunk + 1) / 2), kv + chunk)
            kv += chunk
        self.per_request_s = prefill + (oi - 1) * model.seconds(1, 1, pi + oi / 2, pi + oi / 2)
        self.outstanding = 0
        self.n_live = n
        # tallies inside the measured window
        self.busy = [0.0] * n
        self.down_s = [0.0] * n
        self.bins = [0.0] * TIME_BINS
        self.run_bins = [0.0] * TIME_BINS  # running sequences x seconds
        self.kv_bins = [0.0] * TIME_BINS  # KV blocks in use x seconds
        self.tok_bins = [0.0] * TIME_BINS  # output tokens sampled
        self.batches = 0  # iterations started
        self.batched = 0  # sequences in them
        self.batch_tokens = 0  # tokens processed in them
        self.running_s = 0.0  # running sequences x seconds, summed over replicas
        self.kv_block_s = 0.0  # KV blocks in use x seconds, summed over replicas
        self.kv_peak = 0  # the most KV blocks any replica had in use at once (over the whole run)
        self.preempted = 0
        self.output_tokens = 0
        self.finished = 0  # requests whose last token was sampled inside the window
        self.too_long = 0  # requests that could never fit a replica's KV cache
        self.failures = 0
        self.retried = 0  # requests moved to another replica because theirs failed (their cache lost)
        self.down_since = [0.0] * n
        self.orphans: list[Seq] = []  # requests of failed replicas while no replica is live

    # --- arrivals ---------------------------------------------------------------------------

    def enqueue(self, req: Request) -> None:
        seq: Seq = req.llm
        if -(-(seq.prompt + seq.output) // self.block_tokens) > self.total_blocks:  # never fits, even alone
            if req.counted:
                self.too_long += 1
            self.outstanding -= 1
            self.sim._drop(req)
            return
        if self.n_live == 0:
            self.orphans.append(seq)  # every replica is down: it waits for a repair
            return
        self._assign(seq)

    def _assign(self, seq: Seq) -> None:
        r = self._pick()
        r.tokens_out += seq.prompt + seq.output
        r.waiting.append(seq)
        if not r.busy:
            self._step(r)
        elif r.plan is not None:
            self._cut(r)

    def _pick(self) -> Replica:
        """The live replica with the fewest outstanding tokens (or the most free KV cache, less what
        its waiting prompts will take); ties go round robin, from the replica after the last one picked."""
        reps = self.replicas
        n = len(reps)
        rr = self.rr
        if self.by_kv:
            order = [r for r in (reps[(rr + k) % n] for k in range(n)) if r.live]
            best = max(order, key=lambda r: r.free * self.block_tokens - sum(s.prompt for s in r.waiting))
        else:
            best = None  # the first live replica with the fewest, in round-robin order (as `min` picks)
            for k in range(n):
                r = reps[(rr + k) % n]
                if r.live and (best is None or r.tokens_out < best.tokens_out):
                    best = r
            assert best is not None
        self.rr = best.index + 1
        return best

    # --- the decode cohort -------------------------------------------------------------------

    def _join(self, r: Replica) -> None:
        """Move the tail's leading decoding sequences into the cohort."""
        tail = r.tail
        k = 0
        bt = self.block_tokens
        t = r.t
        for s in tail:
            if s.gen < 1 or s.kv != s.prompt + s.gen - 1:
                break
            s.t0 = t
            s.join = self.joins
            r.s0 += s.kv - t
            r.res[(t - s.kv) % bt] += 1
            heapq.heappush(r.heap, (t + s.output - s.gen, self.joins, s))
            self.joins += 1
            k += 1
        if k:
            r.coh.extend(tail[:k])
            del tail[:k]

    def _read(self, r: Replica, s: Seq) -> None:
        """Write a member's current kv, gen and blocks into it and take it out of the aggregates."""
        bt = self.block_tokens
        r.s0 -= s.kv - s.t0
        r.res[(s.t0 - s.kv) % bt] -= 1
        d = r.t - s.t0
        s.kv += d
        s.gen += d
        s.blocks = -(-s.kv // bt)
        s.join = -1

    def _dissolve(self, r: Replica) -> None:
        """Every cohort member back to the head of the tail, scheduled one by one."""
        for s in r.coh:
            self._read(r, s)
        r.tail[:0] = r.coh
        r.coh = []
        r.heap = []

    # --- iterations -------------------------------------------------------------------------

    def _preempt(self, r: Replica) -> Seq:
        """Free the newest running sequence's blocks and put it back at the head of the queue."""
        if r.tail:
            victim = r.tail.pop()
        else:
            victim = r.coh.pop()
            self._read(r, victim)
        r.free += victim.blocks
        victim.blocks = 0
        victim.kv = 0
        victim.preemptions += 1
        r.waiting.appendleft(victim)
        if self.w_start <= self.env._now < self.w_end:
            self.preempted += 1
        self.sim._preempted(victim.req)
        return victim

    def _step(self, r: Replica) -> None:
        """Schedule and start one iteration on the idle replica `r`, or leave it idle."""
        r.stepped = 0
        if not r.tail and not r.waiting and r.coh:
            # Only the cohort, and nothing waits (the commonest step): when its blocks and budget
            # suffice, it steps, as the general case below would have it.
            nd = len(r.coh)
            want = r.res[r.t % self.block_tokens]
            if want <= r.free and nd <= self.max_tokens:
                r.free -= want
                r.stepped = nd
                r.sched = []
                kv = float(r.s0 + nd * (r.t + 1))
                self._begin(r, nd, nd, kv, kv, nd, nd, self.plans and bool(r.heap))
                return
        if not self.chunked and r.waiting and self._prefills(r):
            return
        bt = self.block_tokens
        budget = self.max_tokens
        tokens = samples = 0
        pairs = kv_read = 0.0
        nd = len(r.coh)
        if nd:
            want = r.res[r.t % bt]
            if want <= r.free and nd <= budget:
                # every member: one token, one block if its cache is at a block boundary, one sample;
                # it attends to its kv cached tokens and itself
                r.free -= want
                budget -= nd
                tokens = samples = nd
                pairs = kv_read = float(r.s0 + nd * (r.t + 1))
                r.stepped = nd
            else:
                self._dissolve(r)
        running = r.tail
        sched: list[tuple[Seq, int]] = []
        preempted = False
        i = 0
        while i < len(running):
            s = running[i]
            need = s.prompt + s.gen - s.kv
            # Past the budget only a chunk: with chunked_prefill, or a preempted sequence's recompute
            # (prompts themselves fit the budget without chunking: the loader checks it).
            n = need if need <= budget else (budget if self.chunked or s.gen else 0)
            if n <= 0:
                i += 1
                continue
            want = -(-(s.kv + n) // bt) - s.blocks
            gone = False
            while want > r.free:
                preempted = True
                if self._preempt(r) is s:
                    gone = True
                    break
            if gone:
                break
            r.free -= want
            s.blocks += want
            sched.append((s, n))
            budget -= n
            tokens += n
            samples += n == need
            if self.window is None:
                pairs += n * (s.kv + (n + 1) / 2)
                kv_read += s.kv + n
            else:
                a, k = attention_terms(s.kv, n, self.window)
                pairs += a
                kv_read += k
            i += 1
        waiting = r.waiting
        n_running = len(r.coh) + len(running)
        if waiting and not preempted:  # (with nothing waiting `_admit` admits nothing)
            n_running, n, k, a_pairs, a_kv = self._admit(r, sched, budget, n_running, whole=False)
            tokens += n
            samples += k
            pairs += a_pairs
            kv_read += a_kv
        if not sched and not r.stepped:
            if preempted and (n_running or waiting):
                self._step(r)  # everything running was preempted: start again from the queue
                return
            r.busy = False
            return
        r.sched = sched
        # Only the cohort runs, and what waits cannot be admitted before a member finishes (fewer
        # free blocks, the same sequences and budget): plan the iterations that follow.
        self._begin(r, tokens, samples, pairs, kv_read, n_running, len(sched) + r.stepped,
                    self.plans and not sched and not preempted and bool(r.heap))

    def _begin(self, r: Replica, tokens: int, samples: int, pairs: float, kv_read: float, n_running: int,
               n_sched: int, plan: bool) -> None:
        """Start the iteration scheduled on `r` (its sequences in `r.stepped` and `r.sched`): time it,
        tally it from now to its end (`_bins`), plan the iterations after it if `plan`, and schedule
        its end (`_on_iteration`)."""
        r.busy = True
        env = self.env
        now = env._now
        end = now + self.seconds(tokens, samples, pairs, kv_read)
        r.end = end
        used = self.total_blocks - r.free
        r.levels = (n_running, used)
        self.sim.events += 1
        if used > self.kv_peak:
            self.kv_peak = used
        if end < self.sure:
            # inside the window and the time bin `cur` for certain (`_tally`): the whole iteration
            # is tallied, in one segment of that bin
            seg = end - now
            p = n_running * seg
            q = used * seg
            self.busy[r.index] += seg
            self.running_s += p
            self.kv_block_s += q
            i = self.cur
            self.bins[i] += seg
            self.run_bins[i] += p
            self.kv_bins[i] += q
            self.batches += 1
            self.batched += n_sched
            self.batch_tokens += tokens
        elif now < self.w_end:
            self._tally(r, now, end, n_running, used, n_sched, tokens)
        if plan:
            end = self._plan(r, end)
        # `after(env, end - now, self._on_iteration, r)` in line, the event kept as `r.pending`
        r.pending = call = Call(self._on_iteration, r)
        heappush(env._queue, (now + (end - now), NORMAL, next(env._eid), call))

    def _tally(self, r: Replica, now: float, end: float, n_running: int, used: int, n_sched: int,
               tokens: int) -> None:
        """Tally an iteration starting inside the window's end (`_begin`), and where the next ones
        may be tallied the short way: ending below the end of this start's bin and of the window,
        when this one started inside the window (starts only grow)."""
        w_start, w_end = self.w_start, self.w_end
        lo = now if now > w_start else w_start  # `Window.overlap(now, end)`
        hi = end if end < w_end else w_end
        w = hi - lo if hi > lo else 0.0
        self.busy[r.index] += w
        self.running_s += n_running * w
        self.kv_block_s += used * w
        bw = self.bin_w
        i = int(now / bw)
        if end <= (i + 1) * bw and i < TIME_BINS:  # inside one bin: `_bins`' one segment
            seg = end - now
            self.bins[i] += seg
            self.run_bins[i] += n_running * seg
            self.kv_bins[i] += used * seg
        else:
            self._bins(bw, now, end, n_running, used)
        if w_start <= now:
            self.batches += 1
            self.batched += n_sched
            self.batch_tokens += tokens
            if i < TIME_BINS:
                self.cur = i
                self.sure = self.sim.window.sure_below(i)

    def _bins(self, bw: float, now: float, end: float, n_running: int, used: int) -> None:
        """Busy seconds, running sequences x seconds and blocks x seconds of [now, end) per time bin
        (`Window.add_bins`, the three in one pass)."""
        bins, run_bins, kv_bins = self.bins, self.run_bins, self.kv_bins
        i = int(now / bw)
        s = now
        while i < TIME_BINS and s < end:
            edge = (i + 1) * bw
            seg_end = end if end < edge else edge
            seg = seg_end - s
            bins[i] += seg
            run_bins[i] += n_running * seg
            kv_bins[i] += used * seg
            s = seg_end
            i += 1

    # --- planned runs of cohort-only iterations -------------------------------------------------

    def _plan(self, r: Replica, end: float) -> float:
        """The iteration just started holds only the cohort and nothing waits: the iterations after
        it are known until a member finishes, the cache runs short or something arrives. Plan them
        (at most PLAN_MAX) and return when the last ends; `_apply` carries them out, all at that
        end or up to the one running when an arrival or a failure cuts the plan (`_cut`)."""
        nd = r.stepped
        t = r.t
        # the first member finishes in iteration `last`; past about twice what recent plans ran
        # before an arrival cut them, timing iterations is mostly wasted
        last = r.heap[0][0] - t  # min(that, PLAN_MAX, 4 + int(2 run_len))
        if last > self.PLAN_MAX:
            last = self.PLAN_MAX
        cap = 4 + int(2 * r.run_len)
        if last > cap:
            last = cap
        if last < 2:
            return end
        bt = self.block_tokens
        res, free = r.res, r.free
        steps = last - 1
        laps = steps // bt + 1
        if nd * laps <= free:
            # Every bt steps each member takes one block (res sums to the cohort's size): even so
            # many fit, so none of the steps runs short and the wants are res read round from t + 1.
            k0 = (t + 1) % bt
            ring = res[k0:] + res[:k0]
            wants = [0] + (ring * laps if laps > 1 else ring)[:steps]
        else:
            wants = [0]
            for m in range(1, last):
                want = res[(t + m) % bt]
                if want > free:
                    break  # the members need more blocks than are free: scheduled one by one then
                free -= want
                wants.append(want)
        k = len(wants)
        if k < 2:
            return end
        times = self.decode_seconds(nd, r.s0 + nd * (t + 2), k - 1)
        ends = list(itertools.accumulate(times, initial=end))  # each iteration starts as the last ends
        r.plan, r.wants, r.applied = ends, wants, 0
        return ends[-1]

    def _apply(self, r: Replica, upto: int) -> None:
        """Carry out the planned iterations up to index `upto`: each one's end (its samples) and the
        next one's start (its blocks and tallies), as `_on_iteration` and `_step` (`_begin`) would,
        with the same arithmetic in the same order."""
        ends, wants = r.plan, r.wants
        assert ends is not None
        first = r.applied + 1
        if upto < first:
            return
        nd = r.stepped
        w_start, w_end, bw = self.w_start, self.w_end, self.bin_w
        total = self.total_blocks
        free = r.free
        peak = self.kv_peak
        busy, running_s, kv_block_s = self.busy[r.index], self.running_s, self.kv_block_s
        tok_bins = self.tok_bins
        bins, run_bins, kv_bins = self.bins, self.run_bins, self.kv_bins
        n = upto - first + 1
        used = total - free
        end = ends[first - 1]
        if w_start <= end and ends[upto] < w_end:
            # Every iteration lies inside the window (the common case): each is counted and tallied
            # whole. The current time bin's three tallies are kept in locals and written back when
            # the bin changes (the same additions in the same order), its output tokens (whole
            # numbers) added at once; an iteration's seconds x running sequences (x blocks) is one
            # product, added to the window's tally and the bin's alike.
            ndf = float(nd)  # int x float in Python converts the int exactly: the same products
            usedf = float(used)
            now = end
            i = int(now / bw)  # the bin the next iteration starts in
            edge = (i + 1) * bw
            sure = edge * BIN_SURE  # an iteration ending below it ends in bin i, and so starts the next there
            b, rb, kb = bins[i], run_bins[i], kv_bins[i]
            one_bin = True
            for end, want in zip(ends[first:upto + 1], wants[first:upto + 1]):
                if want:  # this one starts: its blocks
                    free -= want
                    used = total - free
                    usedf = float(used)
                    if used > peak:
                        peak = used
                seg = end - now
                p = ndf * seg
                q = usedf * seg
                busy += seg
                running_s += p
                kv_block_s += q
                if end < sure:
                    b += seg
                    rb += p
                    kb += q
                else:
                    if end <= edge:  # inside one bin: `_bins`' one segment
                        b += seg
                        rb += p
                        kb += q
                    else:
                        bins[i], run_bins[i], kv_bins[i] = b, rb, kb
                        self._bins(bw, now, end, nd, used)
                        b, rb, kb = bins[i], run_bins[i], kv_bins[i]
                    j = int(end / bw)
                    if j != i:  # the next iteration starts in a later bin
                        one_bin = False
                        bins[i], run_bins[i], kv_bins[i] = b, rb, kb
                        i = j
                        edge = (i + 1) * bw
                        sure = edge * BIN_SURE
                        if i < TIME_BINS:
                            b, rb, kb = bins[i], run_bins[i], kv_bins[i]
                now = end
            if i < TIME_BINS:
                bins[i], run_bins[i], kv_bins[i] = b, rb, kb
            if one_bin:
                tok_bins[i] += nd * n
            else:  # each iteration's samples in the bin it starts in
                for now in ends[first - 1:upto]:
                    tok_bins[int(now / bw)] += nd
            counted = batches = n
        else:
            counted = batches = 0
            for m in range(first, upto + 1):
                now = end  # the previous iteration ends: its samples
                end = ends[m]
                if now < w_end:
                    tok_bins[int(now / bw)] += nd
                    if now >= w_start:
                        counted += 1
                want = wants[m]  # this one starts: its blocks and tallies
                if want:
                    free -= want
                    used = total - free
                    if used > peak:
                        peak = used
                if now < w_end:
                    lo = now if now > w_start else w_start
                    hi = end if end < w_end else w_end
                    w = hi - lo if hi > lo else 0.0
                    busy += w
                    running_s += nd * w
                    kv_block_s += used * w
                    i = int(now / bw)
                    if end <= (i + 1) * bw and i < TIME_BINS:  # inside one bin: `_bins`' one segment
                        seg = end - now
                        bins[i] += seg
                        run_bins[i] += nd * seg
                        kv_bins[i] += used * seg
                    else:
                        self._bins(bw, now, end, nd, used)
                    if now >= w_start:
                        batches += 1
        r.t += n
        r.free = free
        r.end = end
        r.levels = (nd, used)
        r.applied = upto
        self.kv_peak = peak
        self.busy[r.index], self.running_s, self.kv_block_s = busy, running_s, kv_block_s
        self.output_tokens += counted * nd
        self.batches += batches
        self.batched += batches * nd
        self.batch_tokens += batches * nd
        self.sim.events += n

    def _cut(self, r: Replica) -> None:
        """Something reached the replica during a plan: it runs to the end of the iteration running
        now, then schedules afresh."""
        ends = r.plan
        assert ends is not None
        now = self.env._now
        j = bisect.bisect_right(ends, now)
        if j >= len(ends) - 1:
            return  # the plan's last iteration is running: its end schedules afresh anyway
        self._apply(r, j)
        r.run_len += 0.25 * (j + 1 - r.run_len)
        r.plan = ends[:j + 1]
        r.pending = call = Call(self._on_iteration, r)  # the plan's own event is outdated
        heappush(self.env._queue, (now + (ends[j] - now), NORMAL, next(self.env._eid), call))

    def _admit(self, r: Replica, sched: list[tuple[Seq, int]], budget: int, n_running: int,
               whole: bool) -> tuple[int, int, int, float, float]:
        """Admit waiting requests in FIFO order (step 2 of the module docstring) into `sched` and the
        tail; ``whole``: no prompt in chunks. Returns the running sequences after, and the tokens,
        samples, attention pairs and KV tokens read of those admitted."""
        bt = self.block_tokens
        waiting = r.waiting
        tokens = samples = 0
        pairs = kv_read = 0.0
        while waiting and n_running < self.max_seqs and budget > 0:
            s = waiting[0]
            need = s.prompt + s.gen - s.kv
            if need <= budget:
                n = need
            elif not whole and (self.chunked or s.gen):
                n = budget
            else:
                break
            # A recomputed sequence comes back only when its whole cache fits (else it would be
            # preempted again at once); every admission leaves vLLM's watermark of blocks free.
            want = -(-n // bt)
            if (-(-need // bt) if s.gen else want) > r.free - self.watermark:
                break
            waiting.popleft()
            r.tail.append(s)
            n_running += 1
            r.free -= want
            s.blocks = want
            sched.append((s, n))
            budget -= n
            tokens += n
            samples += n == need
            if self.window is None:  # `attention_terms(0, n)` in line
                pairs += n * ((n + 1) / 2.0)
                kv_read += n
            else:
                a, k = attention_terms(0, n, self.window)
                pairs += a
                kv_read += k
        return n_running, tokens, samples, pairs, kv_read

    def _prefills(self, r: Replica) -> bool:
        """Without chunked prefill, as vLLM's default scheduler: when waiting prompts can be admitted
        whole, the iteration is theirs alone (the running sequences' decode steps wait for the next);
        False, and nothing changed, when the head of the queue cannot be."""
        sched: list[tuple[Seq, int]] = []
        n_running, tokens, _, pairs, kv_read = self._admit(r, sched, self.max_tokens, len(r.coh) + len(r.tail),
                                                           whole=True)
        if not sched:
            return False
        r.sched = sched
        self._begin(r, tokens, len(sched), pairs, kv_read, n_running, len(sched), False)
        return True

    def _finish(self, r: Replica, s: Seq, counted: bool) -> None:
        s.done = True
        r.free += s.blocks
        s.blocks = 0
        r.tokens_out -= s.prompt + s.output
        self.outstanding -= 1
        if counted:
            self.finished += 1
        self.sim._llm_done(s.req)

    def _on_iteration(self, ev: simpy.Event) -> None:
        r = ev._value
        if ev is not r.pending:
            return  # the replica failed during this iteration, or its plan was cut short
        plan = r.plan
        if plan is not None:
            if r.applied < len(plan) - 1:  # (a plan cut short was carried out by `_cut`)
                self._apply(r, len(plan) - 1)
            r.run_len += 0.25 * (len(plan) - r.run_len)
            r.plan = None
        now = self.env._now
        w_end = self.w_end
        counted = self.w_start <= now < w_end
        finished = False
        nd = r.stepped
        if nd:
            r.stepped = 0
            r.t += 1
            if counted:
                self.output_tokens += nd
            if now < self.sure:
                self.tok_bins[self.cur] += nd
            elif now < w_end:
                self.tok_bins[int(now / self.bin_w)] += nd
            heap = r.heap
            if heap and heap[0][0] == r.t:
                while heap and heap[0][0] == r.t:
                    _, serial, s = heapq.heappop(heap)
                    if s.join != serial:
                        continue  # left the cohort since
                    self._read(r, s)
                    self._finish(r, s, counted)
                r.coh = [s for s in r.coh if not s.done]
        if r.sched:
            for s, n in r.sched:
                s.kv += n
                if s.kv == s.prompt + s.gen:
                    s.gen += 1
                    if counted:
                        self.output_tokens += 1
                    if now < w_end:
                        self.tok_bins[int(now / self.bin_w)] += 1
                    if s.gen == 1:
                        self.sim._first_token(s.req)
                    if s.gen >= s.output:
                        finished = True
                        self._finish(r, s, counted)
            r.sched = []
        if finished:
            r.tail = [s for s in r.tail if not s.done]
        if self.cohort and r.tail:
            self._join(r)
        self._step(r)

    # --- what the engine asks of every pool ---------------------------------------------------

    def fail(self, replica: int) -> None:
        """The replica goes down with its KV cache: its requests, running and waiting, move to the
        other live replicas (each recomputes what it had; tokens already sent stay sent), or wait
        for a repair when none is live. The failed iteration's unserved time is not busy time."""
        r = self.replicas[replica]
        now = self.env.now
        win = self.sim.window
        self.n_live -= 1
        r.live = False
        self.down_since[replica] = now
        if win.in_window(now):
            self.failures += 1
        r.pending = None  # the running iteration's end is ignored
        if r.plan is not None:
            self._apply(r, min(bisect.bisect_right(r.plan, now), len(r.plan) - 1))
            r.plan = None
        if r.busy and r.end > now:
            running, used = r.levels
            self.busy[replica] -= win.overlap(now, r.end)
            win.add_bins(self.bins, now, r.end, -1.0)
            self.running_s -= running * win.overlap(now, r.end)
            self.kv_block_s -= used * win.overlap(now, r.end)
            win.add_bins(self.run_bins, now, r.end, -running)
            win.add_bins(self.kv_bins, now, r.end, -used)
        self._dissolve(r)
        moved = r.tail + list(r.waiting)
        r.tail, r.sched, r.stepped, r.busy, r.free, r.tokens_out = [], [], 0, False, self.total_blocks, 0
        r.waiting.clear()
        for s in moved:
            s.kv = s.blocks = 0
            if s.req.counted:
                self.retried += 1
            if self.n_live:
                self._assign(s)
            else:
                self.orphans.append(s)

    def repair(self, replica: int) -> None:
        r = self.replicas[replica]
        self.n_live += 1
        r.live = True
        self.down_s[replica] += self.sim.window.overlap(self.down_since[replica], self.env.now)
        orphans, self.orphans = self.orphans, []
        for s in orphans:
            self._assign(s)

    def close(self, end: float) -> None:
        """Account down time still open, and planned iterations started, when the run ends."""
        for r in self.replicas:
            if r.plan is not None:
                self._apply(r, min(bisect.bisect_left(r.plan, end), len(r.plan) - 1))
                r.plan = None
        for i, r in enumerate(self.replicas):
            if not r.live:
                self.down_s[i] += self.sim.window.overlap(self.down_since[i], end)
