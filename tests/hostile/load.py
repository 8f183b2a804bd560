"""Load one file the way the product does, in this (fresh) process, and print one JSON line:
{"ok": bool, "message": str}. Anything but a RepresentationError is a failure of the product
(a traceback a user would see), reported with its type so the suite shows it.

    python -m tests.hostile.load model PATH [TOKENIZER]      # the app's upload path, in its worker
    python -m tests.hostile.load model-run PATH INPUTS       # ... and a forward pass on INPUTS
    python -m tests.hostile.load inputs PATH                  # the examples a model reads
    python -m tests.hostile.load representations PATH         # an activations upload
    python -m tests.hostile.load stream PATH                  # the CLI's --stream reader
    python -m tests.hostile.load cli ARGS...                  # the cka command (its last error line)

It also reports its peak memory, ``peak_bytes``: the larger of its own high-water mark since it
started (VmHWM) and that of the worker processes it reaped. (The kernel's ru_maxrss of a process
counts the parent it was forked from, up to the exec: measured from outside, every case would weigh
as much as the test process that started it.)
"""
from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import traceback
from pathlib import Path


def _load(via: str, args: list[str]) -> str:
    from cka_core import models
    from cka_core.io import activation_layers, load_representations

    path = Path(args[0])
    if via in ("model", "model-run"):
        tokenizer = Path(args[1]).read_bytes() if via == "model" and len(args) > 1 else None
        source = path if path.is_dir() else path.read_bytes()
        model = models.load_model(source, path.name, tokenizer=tokenizer, isolated=True)
        try:
            if via == "model-run":
                examples = models.read_inputs(args[1])
                reps = models.represent(model, examples, model.default_layers[:2], models.default_reduction(
                    model, model.default_layers[:2]))
                return f"ran: {', '.join(reps.layers)}"
            return f"loaded: {len(model.layers)} layers"
        finally:
            model.close()
    if via == "inputs":
        return f"{len(models.read_inputs(path.read_bytes(), path.name))} examples"
    if via == "representations":
        arrays = activation_layers(load_representations(path.read_bytes(), path.name), path.name)
        return f"{len(arrays)} layers"
    if via == "stream":
        from cka_core.io.streaming import open_layers

        return f"{len(open_layers(path).names)} layers"
    raise SystemExit(f"unknown via {via!r}")


def _cli(args: list[str]) -> dict:
    """The cka command in this process: ok when it exits 0; its message is its last line on stderr."""
    from cka_core.cli import main

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    lines = [line for line in errors.getvalue().splitlines() if line.strip()]
    return {"ok": code == 0, "message": lines[-1] if lines else "", "returncode": code}


def peak_bytes() -> int:
    """This process's resident high-water mark since its exec, or that of a child it reaped."""
    with open("/proc/self/status") as status:
        own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) * 1024
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)


def main() -> None:
    from cka_core import RepresentationError

    via, *args = sys.argv[1:]
    try:
        result = _cli(args) if via == "cli" else {"ok": True, "message": _load(via, args)}
    except RepresentationError as error:
        result = {"ok": False, "message": str(error)}
    except BaseException as error:  # noqa: BLE001 - the suite reports what escaped
        result = {"ok": False, "message": f"ESCAPED {type(error).__name__}: {error}",
                  "traceback": traceback.format_exc()[-4000:]}
    print(json.dumps({**result, "peak_bytes": peak_bytes()}))


if __name__ == "__main__":
    main()
