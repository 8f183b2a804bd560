"""A model from a stranger's file, loaded and run in a worker process the caller can kill.

The checks in the loaders refuse what a file claims before anything is built (no code from the
file runs, sizes within :mod:`.caps`), but some costs only show when the model runs: a loop whose
trip count is computed, an operator that is slow on these shapes, memory that grows batch by
batch. So the app and the command line load every model in a worker process of its own:

* its address space is limited to what it held after start-up plus ``caps.memory_bytes``
  (``RLIMIT_AS``): an allocation past that fails inside the worker, never in the server;
* every request has a clock (``caps.load_seconds`` for the load, ``caps.forward_seconds`` for one
  batch): past it the worker is killed and the caller gets a "too slow for the app" message;
* :meth:`Worker.kill` ends it at once (the app's Stop button), and it ends by itself when its
  parent goes away;
* what it sends back is JSON and ``.npz`` read with ``allow_pickle=False``: even a worker that a
  file managed to take over cannot send the server a pickle.

:class:`IsolatedModel` is a :class:`~cka_core.models.base.LoadedModel` whose ``feed`` and ``run``
happen in the worker, so :func:`~cka_core.models.base.represent` works on it unchanged.
"""
from __future__ import annotations

import io
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref

import numpy as np

from ..errors import RepresentationError
from ..io import caps as model_caps
from .base import Feed, Layer, LoadedModel
from .inputs import Examples

_LENGTH = struct.Struct("<Q")
#: The most one message may hold (a batch's layers, or a model file sent to the worker).
MAX_MESSAGE_BYTES = 8 * 2**30
#: Seconds the worker may take to start (import torch) before the request's own clock begins.
START_SECONDS = 60.0


# ------------------------------------------------------------------ messages: JSON + .npz, no pickle

def encode(header: dict, arrays: dict[str, np.ndarray] | None = None, blob: bytes = b"") -> bytes:
    """One message: a JSON header, named arrays (an .npz) and raw bytes (a model file)."""
    packed = io.BytesIO()
    if arrays:
        np.savez(packed, **arrays)
    head = json.dumps(header).encode()
    return b"".join((_LENGTH.pack(len(head)), head, _LENGTH.pack(packed.tell()), packed.getvalue(), blob))


def decode(message: bytes) -> tuple[dict, dict[str, np.ndarray], bytes]:
    """The header, arrays and raw bytes of :func:`encode`'s message (arrays read without unpickling)."""
    view = memoryview(message)
    (head_length,) = _LENGTH.unpack_from(view, 0)
    header = json.loads(bytes(view[8:8 + head_length]))
    start = 8 + head_length
    (arrays_length,) = _LENGTH.unpack_from(view, start)
    arrays = {}
    if arrays_length:
        with np.load(io.BytesIO(view[start + 8:start + 8 + arrays_length]), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    return header, arrays, bytes(view[start + 8 + arrays_length:])


def _send(sock: socket.socket, message: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(message)) + message)


def _receive_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes | None:
    """``size`` bytes, or None at end of stream; TimeoutError past ``deadline`` (perf_counter)."""
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = deadline - time.perf_counter()
            if wait <= 0 or not select.select([sock], [], [], wait)[0]:
                raise TimeoutError
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(sock: socket.socket, deadline: float | None = None) -> bytes | None:
    prefix = _receive_exactly(sock, _LENGTH.size, deadline)
    if prefix is None:
        return None
    (size,) = _LENGTH.unpack(prefix)
    if size > MAX_MESSAGE_BYTES:
        raise RepresentationError(f"the model's worker sent a message of {size:,} bytes, over the limit; it is refused.")
    return _receive_exactly(sock, size, deadline)


def examples_message(examples: Examples) -> tuple[dict, dict[str, np.ndarray]]:
    """Examples as a header and arrays (texts in JSON, images and arrays as arrays)."""
    arrays = {f"image_{i}": image for i, image in enumerate(examples.images)}
    arrays.update({f"array_{i}": np.asarray(value) for i, value in enumerate(examples.arrays.values())})
    return {"kind": examples.kind, "texts": list(examples.texts), "array_names": list(examples.arrays),
            "images": len(examples.images), "source": examples.source}, arrays


def examples_from(header: dict, arrays: dict[str, np.ndarray]) -> Examples:
    return Examples(header["kind"], tuple(header["texts"]), tuple(arrays[f"image_{i}"] for i in range(header["images"])),
                    {name: arrays[f"array_{i}"] for i, name in enumerate(header["array_names"])},
                    source=header["source"])


# ------------------------------------------------------------------ the parent's side

class Worker:
    """A worker process, started at once; requests go one at a time (a lock), each with a clock."""

    def __init__(self, caps: model_caps.ModelCaps | None = None, *, threads: int = 0):
        self.caps = caps or model_caps.current()
        parent, child = socket.socketpair()
        environment = {**os.environ, "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MiB of address space per arena
                       "OMP_NUM_THREADS": str(threads or os.cpu_count() or 1)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cka_core.models.worker", str(child.fileno()), str(self.caps.memory_bytes),
             str(threads)],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=environment,
            # what a stranger's model prints (warnings, a crash) is not the user's output; CKA_WORKER_DEBUG=1 shows it
            stderr=None if os.environ.get("CKA_WORKER_DEBUG") == "1" else subprocess.DEVNULL,
            start_new_session=True)  # a signal to the server's process group does not reach it twice
        child.close()
        self.sock, self._lock, self.killed, self._started = parent, threading.Lock(), False, False
        self._finalizer = weakref.finalize(self, _end, self.process, parent)

    def request(self, header: dict, arrays: dict | None = None, blob: bytes = b"", *, seconds: float,
                what: str) -> tuple[dict, dict[str, np.ndarray]]:
        """Send one request and wait at most ``seconds`` (plus start-up, the first time) for its answer."""
        with self._lock:
            if self.killed or self.process.poll() is not None:
                raise RepresentationError(f"{what}: the model's worker process has ended; load the model again.")
            deadline = time.perf_counter() + seconds + (0.0 if self._started else START_SECONDS)
            try:
                _send(self.sock, encode(header, arrays, blob))
                message = _receive(self.sock, deadline)
            except TimeoutError:
                self.kill()
                raise RepresentationError(
                    f"{what} took more than {seconds:g} s, so it was stopped: this model is too slow for the app "
                    f"on these inputs (the limit is {_setting('load_seconds' if header['op'] == 'load' else 'forward_seconds')}"
                    "). Use fewer or shorter inputs or a smaller model, or raise the limit where you host the app."
                ) from None
            except OSError:
                message = None
            self._started = True
            if message is None:
                raise RepresentationError(self._death(what)) from None
        try:
            reply, reply_arrays, _ = decode(message)
        except (ValueError, KeyError, TypeError, OSError, struct.error):  # json, npz or pickled-array refusals
            self.kill()
            raise RepresentationError(f"{what}: the model's worker sent a malformed reply (refused, and the worker "
                                      "stopped); load the model again.") from None
        if "error" in reply:
            raise RepresentationError(reply["error"])
        return reply, reply_arrays

    def _death(self, what: str) -> str:
        """Why the worker ended without answering, for the caller."""
        if self.killed:
            return f"{what} was stopped."
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        cause = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return (f"{what} ended the model's worker process ({cause}): most likely it needed more memory than the "
                f"{self.caps.memory_bytes / 2**20:,.0f} MiB a model may use here ({_setting('memory_bytes')}). "
                "Use a smaller model or fewer inputs per batch, or raise the limit where you host the app.")

    def kill(self) -> None:
        """End the worker at once (a request waiting on it fails with 'stopped')."""
        self.killed = True
        _end(self.process, self.sock)

    @property
    def alive(self) -> bool:
        return not self.killed and self.process.poll() is None


def _setting(name: str) -> str:
    variable, unit = model_caps.ENVIRONMENT[name]
    return f"{variable}" + (" in MiB" if unit == model_caps.MiB else "")


def _end(process: subprocess.Popen, sock: socket.socket) -> None:
    if process.poll() is None:
        try:
            process.kill()
        except OSError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    sock.close()


class IsolatedModel(LoadedModel):
    """A model loaded and run in its own :class:`Worker` (see the module docstring). ``worker``: one
    started by the caller (so that it can kill a load that is still running); by default a new one."""

    def __init__(self, source, filename: str | None = None, *, tokenizer: bytes | None = None,
                 allow_hub: bool = False, threads: int = 0, worker: Worker | None = None):
        self.worker = worker or Worker(threads=threads)
        if isinstance(source, (bytes, bytearray)):
            request, blob = {"op": "load", "filename": filename or "model"}, bytes(source)
            what = f"loading {filename or 'the model'}"
        else:
            request, blob = {"op": "load", "path": str(source), "filename": filename}, b""
            what = f"loading {filename or os.path.basename(str(source).rstrip('/')) or source}"
        request.update(allow_hub=allow_hub, threads=threads, tokenizer=tokenizer is not None)
        arrays = {"tokenizer": np.frombuffer(tokenizer, dtype=np.uint8)} if tokenizer is not None else None
        try:
            reply, _ = self.worker.request(request, arrays, blob, seconds=self.worker.caps.load_seconds, what=what)
        except RepresentationError:
            self.worker.kill()
            raise
        for key in ("format", "name", "digest", "input_kind"):
            setattr(self, key, reply[key])
        self.input_names = tuple(reply["input_names"])
        self.layers = tuple(Layer(name, tuple(shape), kind) for name, shape, kind in reply["layers"])
        self.default_layers = tuple(reply["default_layers"])

    def feed(self, examples: Examples) -> Feed:
        """The batch goes to the worker, which turns it into the model's tensors and keeps them for
        :meth:`run`; what comes back is which tokens are real (the mask), for the reductions."""
        header, arrays = examples_message(examples)
        _, reply = self.worker.request({"op": "feed", **header}, arrays, seconds=self.worker.caps.forward_seconds,
                                       what=f"{self.name}: preparing a batch")
        return Feed({}, reply.get("mask"))

    def run(self, feed: Feed, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
        _, outputs = self.worker.request({"op": "run", "layers": list(layers)},
                                         seconds=self.worker.caps.forward_seconds,
                                         what=f"{self.name}: one batch's forward pass")
        return {name: outputs[f"layer_{i}"] for i, name in enumerate(layers)}

    def close(self) -> None:
        self.worker.kill()


# ------------------------------------------------------------------ the worker's side

def _limit_memory(extra_bytes: int) -> None:
    """Cap the address space at what this process holds now plus ``extra_bytes``."""
    import resource

    with open("/proc/self/status") as status:
        size_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = size_kib * 1024 + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _watch_parent(parent: int) -> None:
    """End this worker when the process that started it is gone (it would be adopted by init)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _serve(sock: socket.socket) -> None:
    from . import load_model

    model, feed = None, None
    while True:
        message = _receive(sock)
        if message is None:
            return
        header, arrays, blob = decode(message)
        reply: dict = {}
        out: dict[str, np.ndarray] = {}
        try:
            if header["op"] == "load":
                tokenizer = arrays["tokenizer"].tobytes() if header.get("tokenizer") else None
                source = blob if "path" not in header else header["path"]
                model = load_model(source, header.get("filename"), tokenizer=tokenizer,
                                   allow_hub=header["allow_hub"], threads=header["threads"])
                reply = {"format": model.format, "name": model.name, "digest": model.digest,
                         "input_kind": model.input_kind, "input_names": list(model.input_names),
                         "layers": [[layer.name, list(layer.shape), layer.kind] for layer in model.layers],
                         "default_layers": list(model.default_layers)}
            elif header["op"] == "feed":
                feed = model.feed(examples_from(header, arrays))
                if feed.mask is not None:
                    out["mask"] = np.asarray(feed.mask)
            elif header["op"] == "run":
                outputs = model.run(feed, tuple(header["layers"]))
                out = {f"layer_{i}": np.ascontiguousarray(outputs[name]) for i, name in enumerate(header["layers"])}
        except RepresentationError as error:
            reply = {"error": str(error)}
        except MemoryError:
            reply = {"error": f"{header.get('filename') or getattr(model, 'name', 'the model')} needed more memory "
                              "than a model may use here (the limit is CKA_MODEL_MEMORY_MB); use a smaller model "
                              "or fewer inputs."}
        except Exception as error:  # noqa: BLE001 - a stranger's model fails in any way; one line for the user
            first = str(error).splitlines()[0][:300] if str(error) else ""
            reply = {"error": f"{getattr(model, 'name', None) or header.get('filename') or 'the model'} failed "
                              f"({type(error).__name__}: {first})."}
        try:
            _send(sock, encode(reply, out))
        except MemoryError:
            _send(sock, encode({"error": "the layers of one batch are too large to send back; choose fewer layers "
                                         "or a smaller batch."}))


def main(argv: list[str]) -> None:
    fd, memory_bytes, threads = int(argv[0]), int(argv[1]), int(argv[2])
    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is the parent's to handle
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    # The loaders' imports happen before the limit: they are the worker's start-up, not the model's.
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch

    from . import exported, huggingface, onnx_graph

    if threads:
        torch.set_num_threads(threads)
    _limit_memory(memory_bytes)
    _serve(sock)


if __name__ == "__main__":
    main(sys.argv[1:])
