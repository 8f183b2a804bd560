"""Linear CKA over data on several processes or machines (the reduction lives in
:mod:`cka_core.cka.distributed`, the ``torchrun ... -m cka_core.distributed`` program in
:mod:`cka_core.cli.distributed`)."""
from .cka.distributed import RankFailure, all_reduce_accumulator, rank_rows
from .cli.distributed import build_parser, main

if __name__ == "__main__":
    raise SystemExit(main())
