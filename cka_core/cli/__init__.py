"""The command-line programs: ``cka compare`` (:mod:`.compare`), distributed CKA under torchrun
(:mod:`.distributed`), and what both print on a terminal (:mod:`.terminal`)."""
from .compare import main
