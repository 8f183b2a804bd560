"""A tokenizer given as ``tokenizer.json`` (the ``tokenizers`` library's format: JSON, nothing
executes) for ONNX and torch.export language models, whose files carry no tokenizer of their own."""
from __future__ import annotations

import numpy as np

from ..errors import RepresentationError

MAX_TOKENS = 512


class WordTokenizer:
    """Texts -> (input_ids, attention_mask), (n, t) int64, padded to the longest text of the batch."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        if tokenizer.padding is None:
            tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0)
        tokenizer.enable_truncation(MAX_TOKENS)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask


def load_tokenizer(data: bytes, what: str) -> WordTokenizer:
    """A :class:`WordTokenizer` from the bytes of a tokenizer.json."""
    from tokenizers import Tokenizer

    try:
        return WordTokenizer(Tokenizer.from_str(data.decode("utf-8")))
    except (UnicodeDecodeError, Exception) as error:  # noqa: BLE001 - tokenizers raises a plain Exception
        raise RepresentationError(f"the tokenizer given with {what} is not a readable tokenizer.json "
                                  f"({type(error).__name__}); save it with tokenizer.save('tokenizer.json') or "
                                  "take the one in the model's Hugging Face directory.") from None
