"""Training compute estimate for costing, with the counting rule spelled out.

A dense matmul with N weights costs about 2·N FLOPs per token forward (one multiply, one add per
weight; Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv 2001.08361,
section 2.1). The backward pass has two parts of the same size each:

- activation gradients (dL/dx = W^T·dL/dy): 2·N per token for *every* weight, frozen or not,
  because the gradient must flow back through frozen layers to reach earlier LoRA layers;
- weight gradients (dL/dW = dL/dy·x^T): 2·N per token, but only for weights that train.

So one training token costs 2·N (forward) + 2·N (activation gradients) + 2·N_trainable (weight
gradients) = (4·N + 2·N_trainable) FLOPs. Full fine-tuning has N_trainable = N, which gives
Kaplan's 6·N·D; LoRA with N_trainable << N costs about 4·N·D. Held-out evaluation is forward
only: 2·N per evaluated token.

N counts every parameter the model holds, embeddings and the adapter included (Kaplan's rule
uses non-embedding parameters; for a 135M model the difference is the embedding table's share,
a deliberate overestimate). D counts non-padding tokens; attention's sequence-length term
(2·n_layer·n_ctx·d_attn per token) is left out, as in the 6·N·D rule.
"""

from __future__ import annotations


def training_flops(
    total_params: int, trainable_params: int, train_tokens: int, eval_tokens: int = 0
) -> float:
    """(4·N + 2·N_trainable)·D_train + 2·N·D_eval, in FLOPs."""
    if trainable_params > total_params:
        raise ValueError(f"trainable_params {trainable_params} > total_params {total_params}")
    per_train_token = 4 * total_params + 2 * trainable_params
    return float(per_train_token) * train_tokens + 2.0 * total_params * eval_tokens
