"""The supervisor of the inference worker process (the worker itself: app/ai/worker.py).

Paddle Inference holds the GIL for a whole predictor.run(), so the model runs in a
separate process. The supervisor (a thread of the main process) hands it the newest captured
frame through shared memory whenever it is free, takes back small results over a pipe, and
restarts it with backoff when it crashes, hangs or fails to load. Video never waits for it.

The messages and the worker's configuration are in app/ai/protocol.py; the process, its pipe and
the shared frame are models.core.child's. The rules (load and hang timeouts, DELAYED, failure
window, backoff) come from WorkerConfig.timing (models.core.timing, the ai_* fields).
"""
from __future__ import annotations

import enum
import threading
import time

from app.ai.protocol import FrameError, Infer, Ready, WorkerConfig
from app.ai.worker import worker_main
from app.capture_thread import LatestFrame
from app.stats import RateMeter
from models.core.child import Child, ChildGone, FrameSlots, lent_from
from models.core.costs import STAGES
from models.core.runtime.backends import RuntimeSettings
from models.core.types import Frame, Result

__all__ = ["AIState", "InferenceClient", "WorkerConfig", "worker_config"]


class AIState(enum.Enum):
    OFF = "off"                  # switched off by the user
    LOADING = "loading"
    RUNNING = "running"
    DELAYED = "delayed"          # results arrive, but late
    REJECTED = "output rejected" # the runtime's last output failed the checks (NaN, shape, box)
    RESTARTING = "restarting"    # crashed or hung; coming back after a backoff
    UNAVAILABLE = "unavailable"  # failed too often (or cannot load): off until re-enabled


def worker_config(model_dir: str | None, backend: str = "auto", profile: str | None = None,
                  precision: str = "fp32", **overrides) -> WorkerConfig | None:
    """The worker settings for a model folder (None: no AI). A folder without a readable
    manifest is a one-line error now; file hashes are checked when the worker loads it.
    profile: the endoscope profile YAML the worker applies (None: the default profile).

    backend "auto": models.core.runtime.backends.auto_backend (ONNX Runtime when the model ships
    model.onnx, else Paddle Inference). precision "int8": the folder's model.int8.onnx on ONNX
    Runtime (a folder without one, or another backend, is a one-line error now).
    """
    from models.core.errors import EndoSpineError
    from models.core.runtime.backends import auto_backend, precision_problem
    from models.core.runtime.manifest import load_manifest

    if not model_dir:
        return None
    manifest = load_manifest(model_dir, verify=False)
    if backend == "auto":
        backend = auto_backend(manifest.files)
    problem = precision_problem(manifest.files, model_dir, backend, precision)
    if problem:
        raise EndoSpineError(problem)
    return WorkerConfig(model_dir=str(model_dir), settings=RuntimeSettings(backend=backend, profile=profile,
                                                                           precision=precision), **overrides)


# -- the supervisor (main process) -------------------------------------------------------------
class InferenceClient:
    """Feeds the newest frame of `store` to a supervised worker process; keeps the newest result."""

    def __init__(self, cfg: WorkerConfig, store: LatestFrame):
        self.cfg = cfg
        self.timing = cfg.timing
        self.store = store
        self._lock = threading.Lock()
        self._result: Result | None = None
        self._answered = -1           # frame id of the last answer (mask or error)
        self._state = AIState.OFF
        self.message = ""
        self.model_id = ""
        self.rate = RateMeter()
        self.latency_ms = 0.0          # frame capture -> result received, last result
        self.model_ms = 0.0            # worker's own preprocess + predict + postprocess, last result
        self.restarts = 0
        self.errors = 0
        self.frames_done = 0         # results received
        self.last_failure = ""       # why the worker last crashed, hung or failed to load
        self.last_rejection = ""     # why the worker last refused a runtime output
        self._failures: list[float] = []
        self._enabled = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._slots: FrameSlots | None = None  # the one shared frame, grown when a larger frame comes
        self._child: Child | None = None
        self._last_sent = -1
        self._off_count = 0
        self._bad_run = 0            # rejected outputs in a row

    # -- public ------------------------------------------------------------------------------
    @property
    def state(self) -> AIState:
        return self._state

    @property
    def worker_pid(self) -> int | None:
        """The worker process's pid while one runs (for the bench's CPU figures)."""
        child = self._child
        return child.pid if child is not None else None

    def latest(self) -> Result | None:
        with self._lock:
            return self._result

    def answered(self, frame_id: int) -> bool:
        """Has the worker answered for this frame (or is there no running AI to wait for)?"""
        return self._answered >= frame_id or self._state not in (AIState.RUNNING, AIState.DELAYED, AIState.LOADING)

    def start(self) -> None:
        self._enabled.set()
        self._set_state(AIState.LOADING, f"loading {self.cfg.model_dir}")  # before any frame can ask
        self._thread = threading.Thread(target=self._supervise, name="inference-supervisor", daemon=True)
        self._thread.start()

    def set_enabled(self, on: bool) -> None:
        """Switch the AI off (worker stopped) or on again (also after UNAVAILABLE)."""
        if on:
            self._failures.clear()
            self._enabled.set()
        else:
            self._off_count += 1  # the supervisor notices even if re-enabled at once
            self._enabled.clear()
            self._set_state(AIState.OFF, "switched off")
            self._clear_result()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._enabled.set()  # wake the supervisor if it waits to be enabled
        if self._thread is not None:
            self._thread.join(timeout)
        self._kill_worker()
        if self._slots is not None:
            self._slots.close()
            self._slots = None

    # -- supervisor loop -----------------------------------------------------------------------
    def _supervise(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            if not self._enabled.is_set():
                self._kill_worker()
                self._enabled.wait()
                attempt = 0
                continue
            outcome = self._launch()
            if outcome == "ok":
                served_from = time.monotonic()
                outcome = self._serve()
                if time.monotonic() - served_from > self.timing.ai_failure_window_s:
                    attempt = 0  # it ran well for a long while: start the backoff over
            self._kill_worker()
            if self._stopping.is_set() or outcome == "disabled":
                continue
            self._clear_result()
            self.last_failure = self.message
            now = time.monotonic()
            self._failures = [t for t in self._failures if now - t < self.timing.ai_failure_window_s] + [now]
            if outcome == "failed" or len(self._failures) >= self.timing.ai_max_failures:
                # a model that cannot load will not load on retry; a worker that keeps dying stays off
                why = "" if outcome == "failed" else f" (AI off after {len(self._failures)} failures)"
                self._set_state(AIState.UNAVAILABLE, f"{self.message}{why}")
                self._enabled.clear()
                continue
            backoff = self.timing.ai_backoff_s
            delay = backoff[min(attempt, len(backoff) - 1)]
            attempt += 1
            self.restarts += 1
            self._set_state(AIState.RESTARTING, f"{self.message}; restarting in {delay:g} s")
            self._stopping.wait(delay)

    def _launch(self) -> str:
        """Start a worker and wait for it to load: "ok", "failed", "crashed" or "disabled"."""
        self._set_state(AIState.LOADING, f"loading {self.cfg.model_dir}")
        child = self._child = Child(worker_main, (self.cfg,), name="endospine-inference")
        deadline = time.monotonic() + self.timing.ai_load_timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set() and self._enabled.is_set():
            try:
                msg = child.receive(0.1)
            except ChildGone:
                break
            if isinstance(msg, Ready):
                self.model_id = msg.model_id
                self._set_state(AIState.RUNNING, f"model {self.model_id}")
                return "ok"
            if msg is not None:  # Failed
                self.message = msg.message
                return "failed"
        if not self._enabled.is_set() or self._stopping.is_set():
            return "disabled"
        if not child.alive():
            child.wait(0.5)
            self.message = f"worker exited with code {child.exitcode} while loading"
        else:
            self.message = f"worker did not load in {self.timing.ai_load_timeout_s:g} s"
        return "crashed"

    def _serve(self) -> str:
        """Feed frames until the worker fails ('crashed', 'hung') or we stop/disable.

        The last frame sent is remembered across restarts: a frame that killed a worker is never
        sent again, and a restarted worker starts on fresh frames only.
        """
        off_count = self._off_count
        while not self._stopping.is_set():
            if not self._enabled.is_set() or self._off_count != off_count:
                return "disabled"
            frame = self.store.wait_newer(self._last_sent, timeout=0.1)
            if frame is None:
                if not self._child.alive():
                    self.message = f"worker died (exit code {self._child.exitcode})"
                    return "crashed"
                continue
            self._last_sent = frame.frame_id
            try:
                self._send_frame(frame)
                outcome = self._await_answer(frame)
            except (ChildGone, OSError):  # OSError: no shared memory for the frame, handled alike
                self._child.wait(0.5)
                self.message = f"worker died (exit code {self._child.exitcode})"
                return "crashed"
            if outcome != "ok":
                return outcome
        return "stopped"

    def _send_frame(self, frame: Frame) -> None:
        """The frame to the worker: a frame lent from the decoder child's slots in place (the
        worker attaches that memory; `frame`, held until the answer, keeps the slot), any other
        copied into this supervisor's own slot (6 MB at 1080p: 1.4 ms of CPU)."""
        image = frame.image
        h, w = image.shape[:2]
        with STAGES.measure("ai_send"):
            lent = lent_from(image)
            if lent is not None:
                self._child.send(Infer(lent[0], frame.frame_id, w, h, lent[1]))
                return
            if self._slots is None or not self._slots.fits(w, h):
                if self._slots is not None:
                    self._slots.close()
                self._slots = FrameSlots.create(image.nbytes)
            self._slots.write(0, image)
        self._child.send(Infer(self._slots.name, frame.frame_id, w, h))

    def _await_answer(self, frame: Frame) -> str:
        hang = self.timing.ai_hang_timeout_s
        deadline = time.monotonic() + hang
        while (msg := self._child.receive(0.05)) is None:  # ChildGone if it died
            if time.monotonic() > deadline:
                self.message = f"worker hung (no answer in {hang:g} s)"
                return "hung"
            if self._stopping.is_set():
                return "stopped"
        now = time.monotonic()
        if isinstance(msg, FrameError):
            self.errors += 1
            self._bad_run += 1
            self.last_rejection = msg.message
            with self._lock:
                self._result = None
                self._answered = msg.frame_id
            if self._bad_run >= self.cfg.max_bad_outputs:  # a broken model, not a bad frame: restart it
                self.message = f"{self._bad_run} outputs rejected in a row, last: {msg.message}"
                self._bad_run = 0
                return "faulty"
            self._set_state(AIState.REJECTED, f"frame {msg.frame_id}: {msg.message}")
            return "ok"
        self._bad_run = 0
        frame_id, mask, timings = msg.frame_id, msg.mask, msg.timings
        result = Result(frame_id, mask, self.model_id, timings, box=tuple(msg.box), capture_time=frame.capture_time,
                        score=msg.score, unsure=msg.unsure)
        self.latency_ms = (now - frame.capture_time) * 1e3
        self.model_ms = float(sum(timings.values()))
        self.rate.tick(now)
        self.frames_done += 1
        with self._lock:
            self._result = result
            self._answered = frame_id
        late = now - frame.capture_time > self.timing.ai_delayed_after_s
        self._set_state(AIState.DELAYED if late else AIState.RUNNING, f"model {self.model_id}")
        return "ok"

    # -- helpers ------------------------------------------------------------------------------
    def _set_state(self, state: AIState, message: str) -> None:
        with self._lock:
            self._state, self.message = state, message

    def _clear_result(self) -> None:
        with self._lock:
            self._result = None

    def _kill_worker(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.kill(wait=2.0)
