"""Load one file the way the product does, in this (fresh) process, and print one JSON line:
{"ok": bool, "message": str}. Anything but a RepresentationError is a failure of the product
(a traceback a user would see), reported with its type so the suite shows it.

    python -m tests.hostile.load model PATH [TOKENIZER]      # the app's upload path, in its worker
    python -m tests.hostile.load model-run PATH INPUTS       # ... and a forward pass on INPUTS
    python -m tests.hostile.load inputs PATH                  # the examples a model reads
    python -m tests.hostile.load representations PATH         # an activations upload
    python -m tests.hostile.load stream PATH                  # the CLI's --stream reader
"""
from __future__ import annotations

import json
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


def main() -> None:
    from cka_core import RepresentationError

    via, *args = sys.argv[1:]
    try:
        result = {"ok": True, "message": _load(via, args)}
    except RepresentationError as error:
        result = {"ok": False, "message": str(error)}
    except BaseException as error:  # noqa: BLE001 - the suite reports what escaped
        result = {"ok": False, "message": f"ESCAPED {type(error).__name__}: {error}",
                  "traceback": traceback.format_exc()[-4000:]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
