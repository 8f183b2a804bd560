"""Linear CKA itself: kernels and HSIC, the accumulator over row batches, the one-call matrix, its
memory plan, the drill-down of one cell, the differentiable map, and the reduction across
torch.distributed ranks."""
