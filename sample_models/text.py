"""A small set of English sentences written for this project, and a word-level tokenizer for them.

Nothing is downloaded: the sentences are built deterministically from the word lists below (a
subject, a verb, an object and an ending), so any number of them can be had, always the same ones
in the same order. They are ordinary English, so a real language model's own tokenizer reads them
too; :func:`tokenizer` is for networks built here from a config with random weights (the tests and
benchmarks), whose vocabulary is exactly these words.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

__all__ = ["SPECIAL_TOKENS", "sentences", "vocabulary", "tokenizer"]

SUBJECTS = (
    "the old fisherman", "a young teacher", "my neighbour", "the tired doctor", "a curious child", "the village baker",
    "our new manager", "the quiet student", "a travelling musician", "the night nurse", "my grandmother",
    "the lighthouse keeper", "a clever engineer", "the shy painter", "the ship's captain", "a patient gardener",
)
VERBS = (
    "carried", "repaired", "painted", "found", "described", "borrowed", "cleaned", "studied", "measured", "sold",
    "opened", "forgot", "noticed", "wrapped", "counted", "delivered",
)
OBJECTS = (
    "a wooden box", "the broken clock", "an old map of the coast", "three heavy bags", "the letter from home",
    "a basket of apples", "the red bicycle", "a small blue boat", "the kitchen window", "a pile of notebooks",
    "the garden gate", "a jar of honey", "the silver key", "two loaves of bread", "the school piano", "a warm coat",
)
ENDINGS = (
    "before the rain started", "after a long day at work", "while the children were asleep", "near the harbour",
    "without saying a word", "on a cold winter morning", "in the middle of the market", "because nobody else would",
    "for the first time in years", "at the end of the street", "during the summer festival", "with great care",
    "as the sun went down", "behind the old church", "under the bright lamps", "just in time for dinner",
)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def sentences(count: int = 500, seed: int = 0) -> list[str]:
    """``count`` distinct sentences (up to 65,536), in a fixed order for each ``seed``."""
    combinations = len(SUBJECTS) * len(VERBS) * len(OBJECTS) * len(ENDINGS)
    if not 1 <= count <= combinations:
        raise ValueError(f"count must be between 1 and {combinations}, not {count}.")
    picked = np.random.default_rng(seed).choice(combinations, size=count, replace=False)
    parts = (SUBJECTS, VERBS, OBJECTS, ENDINGS)
    out = []
    for index in picked.tolist():
        words = []
        for options in reversed(parts):
            index, choice = divmod(index, len(options))
            words.append(options[choice])
        subject, verb, obj, ending = reversed(words)
        out.append(f"{subject[0].upper()}{subject[1:]} {verb} {obj} {ending}.")
    return out


def vocabulary() -> list[str]:
    """Every token of the sentences (lower case, punctuation split off) after the special tokens."""
    words = {word.lower() for part in itertools.chain(SUBJECTS, VERBS, OBJECTS, ENDINGS)
             for word in part.replace("'", " ' ").split()}
    return [*SPECIAL_TOKENS, ".", "'", *sorted(words)]


@functools.lru_cache(maxsize=1)
def tokenizer():
    """A BERT-style word-level tokenizer (``tokenizers.Tokenizer``) for :func:`vocabulary`:
    lower case, words and punctuation split, ``[CLS] ... [SEP]``, padding with ``[PAD]`` (id 0)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    vocab = {token: i for i, token in enumerate(vocabulary())}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]")
    return tok
