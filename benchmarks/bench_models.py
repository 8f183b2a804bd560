"""Your own models at research size: two BERT-base-sized encoders, 500 sentences of 32 tokens.

    python -m benchmarks.bench_models [--sentences 500] [--tokens 32] [--out benchmarks/results/models.md]

The encoders have BERT-base's shape (12 layers, hidden 768, 12 heads, FFN 3072) with random weights
built from a config (seeds 0 and 1; the vocabulary is the project's word tokenizer, so nothing is
downloaded), saved as Hugging Face directories. Each measurement runs in a fresh process, so its
peak resident memory (VmHWM) is its own:

* **budget**: load both models, then forward + capture of the 13 hidden states (mean over tokens)
  of both on the same sentences + the 13 x 13 debiased linear CKA heatmap. Budget: <= 30 s on
  2 cores (loading reported apart), peak memory <= 2 GB.
* **formats**: model A as a Hugging Face directory (eager PyTorch), as ONNX (onnxruntime) and as a
  torch.export program, each capturing the same 13 layers on the same sentences. Budget: ONNX and
  torch.export within 1.5x of eager.

Sentences are two of the built-in ones joined, cut to exactly ``--tokens`` tokens by the tokenizer.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import logging
import warnings
from pathlib import Path

from cka_core.models.huggingface import quiet_transformers

ROOT = Path(__file__).resolve().parents[1]
LAYERS = 13
BATCH = 64
HIDDEN, FFN, BLOCKS = 768, 3072, 12


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _quiet():
    warnings.filterwarnings("ignore")
    logging.getLogger("torch").setLevel(logging.ERROR)
    return quiet_transformers()


def build(work: Path, tokens: int) -> None:
    """Two BERT-base-sized encoders with random weights, as Hugging Face directories."""
    import torch

    from sample_models import text

    transformers = _quiet()
    for seed, name in ((0, "bert_a"), (1, "bert_b")):
        torch.manual_seed(seed)
        config = transformers.BertConfig(vocab_size=len(text.vocabulary()), hidden_size=768, num_hidden_layers=12,
                                         num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512)
        transformers.BertModel(config).eval().save_pretrained(work / name)
        transformers.PreTrainedTokenizerFast(
            tokenizer_object=text.tokenizer(), unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]", model_max_length=tokens).save_pretrained(work / name)


def sentences(count: int) -> list[str]:
    from sample_models import text

    pool = text.sentences(2 * count)
    return [f"{pool[2 * i]} {pool[2 * i + 1]}" for i in range(count)]


class _LastHidden:
    """Model A with a plain tensor output, for the exporters (layers stay named model.encoder.layer.k)."""

    def __new__(cls, model):
        import torch

        class LastHidden(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.model = inner

            def forward(self, input_ids, attention_mask):
                return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        return LastHidden(model).eval()


def export(work: Path, tokens: int) -> dict:
    """Model A as ONNX and as a torch.export program (export times are reported, not budgeted)."""
    import io

    import torch

    from sample_models import text

    transformers = _quiet()
    model = _LastHidden(transformers.AutoModel.from_pretrained(work / "bert_a").eval())
    encodings = text.tokenizer().encode_batch(sentences(4))
    example = (torch.tensor([e.ids for e in encodings])[:, :tokens],
               torch.tensor([e.attention_mask for e in encodings])[:, :tokens])
    seconds = {}
    start = time.perf_counter()
    program = torch.export.export(model, example, dynamic_shapes=(
        {0: torch.export.Dim("batch", max=4096), 1: torch.export.Dim("seq", max=512)},
        {0: torch.export.Dim("batch", max=4096), 1: torch.export.Dim("seq", max=512)}))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    (work / "bert_a.pt2").write_bytes(buffer.getvalue())
    seconds["torch.export"] = time.perf_counter() - start
    start = time.perf_counter()
    onnx_program = torch.onnx.export(model, example, input_names=["input_ids", "attention_mask"], dynamo=True,
                                     dynamic_shapes=({0: "batch", 1: "seq"}, {0: "batch", 1: "seq"}), verbose=False)
    onnx_program.save(str(work / "bert_a.onnx"))
    seconds["onnx"] = time.perf_counter() - start
    (work / "tokenizer.json").write_bytes((work / "bert_a" / "tokenizer.json").read_bytes())
    return seconds


def encoder_flops(count: int, tokens: int) -> float:
    """Floating-point operations of one forward pass of one encoder: per token and block, the four
    attention projections (4 h^2 multiply-adds), the feed-forward pair (2 h f) and the attention
    scores and mixing (2 t h); 2 flops per multiply-add."""
    per_token_block = 4 * HIDDEN**2 + 2 * HIDDEN * FFN + 2 * tokens * HIDDEN
    return 2.0 * per_token_block * BLOCKS * count * tokens


def gemm_rate(repeats: int = 20) -> float:
    """This machine's float32 matrix-product rate (flop/s) on the feed-forward's shape, a batch of 64
    sentences of 32 tokens times (768 x 3072), with every core torch uses: the most any forward pass
    of these encoders can reach, since almost all of its work is such products."""
    import torch

    a, b = torch.randn(2048, HIDDEN), torch.randn(HIDDEN, FFN)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2.0 * 2048 * HIDDEN * FFN * repeats / (time.perf_counter() - start)


def child(task: str, work: Path, count: int, tokens: int) -> dict:
    """One measurement, in this (fresh) process."""
    _quiet()
    if task == "floor":
        return {"gemm_flops_per_s": gemm_rate(), "flops_both": 2 * encoder_flops(count, tokens)}
    from cka_core import cka_matrix
    from cka_core import models as own

    examples = own.texts(sentences(count), f"{count} joined sentences")
    tokenizer = (work / "tokenizer.json").read_bytes() if (work / "tokenizer.json").exists() else None
    if task == "budget":
        start = time.perf_counter()
        a, b = own.load_model(work / "bert_a"), own.load_model(work / "bert_b")
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        reps = [own.represent(m, examples, m.default_layers, "mean", batch_size=BATCH) for m in (a, b)]
        forward = time.perf_counter() - start
        heat = cka_matrix(reps[0].layers, reps[1].layers, debiased=True)
        total = time.perf_counter() - start
        return {"load_s": loaded, "forward_s": forward, "total_s": total, "heatmap_shape": list(heat.shape),
                "rows": int(reps[0].example_of_row.size), "tokens": tokens, "peak_mib": _peak_rss_mib()}
    source = {"eager": work / "bert_a", "onnx": work / "bert_a.onnx", "torch.export": work / "bert_a.pt2"}[task]
    start = time.perf_counter()
    model = own.load_model(source, tokenizer=tokenizer)
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    reps = own.represent(model, examples, model.default_layers, "mean", batch_size=BATCH)
    return {"load_s": loaded, "forward_s": time.perf_counter() - start, "layers": len(reps.layers),
            "peak_mib": _peak_rss_mib()}


def _run_child(task: str, work: Path, count: int, tokens: int) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_models", "--child", task, "--work", str(work),
                           "--sentences", str(count), "--tokens", str(tokens)], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(budget: dict, formats: dict, exports: dict, floor: dict, count: int, tokens: int) -> str:
    eager = formats["eager"]["forward_s"]
    floor_s = floor["flops_both"] / floor["gemm_flops_per_s"]
    lines = [
        "# Your own models at research size",
        "",
        f"Two BERT-base-sized encoders (12 layers, hidden 768, random weights), {count} sentences of {tokens} tokens, "
        f"{LAYERS} hidden states each, mean over tokens, batches of {BATCH}; 2 cores; each row a fresh process "
        "(`python -m benchmarks.bench_models`).",
        "",
        "| measurement | time | budget | peak memory | budget |",
        "|---|---|---|---|---|",
        f"| forward + capture of both models + {LAYERS}×{LAYERS} debiased heatmap | {budget['total_s']:.1f} s "
        f"(forward {budget['forward_s']:.1f} s) | ≤ 30 s: {'met' if budget['total_s'] <= 30 else 'NOT met'} | "
        f"{budget['peak_mib'] / 1024:.2f} GB | ≤ 2 GB: {'met' if budget['peak_mib'] <= 2048 else 'NOT met'} |",
        f"| loading both models (not in the budget) | {budget['load_s']:.1f} s | | | |",
        "",
        f"| model A as | load | forward + capture of {LAYERS} layers | vs eager | budget ≤ 1.5× | peak memory |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in formats.items():
        ratio = result["forward_s"] / eager
        lines.append(f"| {name} | {result['load_s']:.1f} s | {result['forward_s']:.1f} s | {ratio:.2f}× | "
                     f"{'—' if name == 'eager' else ('met' if ratio <= 1.5 else 'NOT met')} | "
                     f"{result['peak_mib'] / 1024:.2f} GB |")
    lines += ["", "Export of model A (once, not budgeted): " +
              ", ".join(f"{k} {v:.0f} s" for k, v in exports.items()) + ".",
              "",
              f"**The compute floor.** The two forward passes are {floor['flops_both'] / 1e12:.2f} TFLOP, almost all "
              f"of it float32 matrix products. This machine multiplies float32 matrices of the feed-forward's shape at "
              f"{floor['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s with both cores (measured in the same run), so no float32 "
              f"forward pass can take less than {floor_s:.1f} s here; the measured forward pass ran at "
              f"{floor['flops_both'] / budget['forward_s'] / 1e9:.0f} GFLOP/s, "
              f"{floor_s / budget['forward_s']:.0%} of that rate."
              + (" The 30 s budget is below the floor: it cannot be met on this machine without lower precision, "
                 "which would change the values." if floor_s > 30 else "")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "models.md")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.work, args.sentences, args.tokens)))
        return 0
    with tempfile.TemporaryDirectory(prefix="cka_bench_models_") as tmp:
        work = Path(tmp)
        print("building the two encoders…", file=sys.stderr, flush=True)
        build(work, args.tokens)
        print("budget run…", file=sys.stderr, flush=True)
        budget = _run_child("budget", work, args.sentences, args.tokens)
        floor = _run_child("floor", work, args.sentences, args.tokens)
        print("exporting model A…", file=sys.stderr, flush=True)
        exports = export(work, args.tokens)
        formats = {}
        for task in ("eager", "onnx", "torch.export"):
            print(f"{task}…", file=sys.stderr, flush=True)
            formats[task] = _run_child(task, work, args.sentences, args.tokens)
    text_report = report(budget, formats, exports, floor, args.sentences, args.tokens)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text_report)
    print(text_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
