"""Batch-1 greedy decoding of Llama-architecture models in a few calls per layer.

``model.generate`` spends about 6,000 eager PyTorch operator calls on each token of a 30-layer
model (masks, cache objects, logits processors, rotary halves), each a few microseconds, and
PyTorch's BLAS reads the weights of 1-row products at 11-15 GB/s on AMD CPUs where OpenBLAS's
``sgemv`` reads them at 18-25 GB/s (``python -m bench --only roofline`` measures both). At 135M
parameters both weigh as much as reading the weights. This decoder computes what transformers'
``LlamaForCausalLM`` computes (RMSNorm, the model's own rotary tables, grouped-query attention,
SwiGLU, greedy argmax), with:

- the query/key/value and the gate/up projections each as one product: the model's weights
  are re-stored as row slices of one matrix per layer, so nothing is copied and
  ``model.generate`` (batched answering) keeps working on the same memory;
- one key/value cache per request, allocated once;
- every matrix product in numpy's BLAS (OpenBLAS, on all cores), the prompt as matrix-matrix
  products and the remaining PyTorch operators on one thread (two libraries' thread pools on
  the same cores spin against each other: the first measured attempt, PyTorch's threads for
  the prompt and OpenBLAS's for the steps, slowed both);
- each decode step in numpy: on 576-wide vectors a numpy call costs about a microsecond.

The answers can differ from ``model.generate``'s where two tokens' logits tie to the last bits
(another summation order); tests compare both on tiny models and the default one, and the
default experiment's 160 answers are the same (README "Latency"). Other architectures,
sampling, stop strings, and models on a GPU or in half precision use ``model.generate``
(``unsupported_reason``).
"""

from __future__ import annotations

from collections.abc import Callable

# rotary variants whose tables depend only on the position (not on the sequence length)
_ROPE_TYPES = {"default", "linear", "llama3"}
# generation_config fields that make greedy decoding more than an argmax, and their neutral value
_NEUTRAL_DECODING = {
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "sequence_bias": None,
    "min_new_tokens": 0,
    "min_length": 0,
    "exponential_decay_length_penalty": None,
}


def unsupported_reason(model) -> str | None:
    """Why ``model`` must decode with ``model.generate``, or None when this decoder can."""
    import torch
    from transformers import LlamaForCausalLM

    if type(model) is not LlamaForCausalLM:  # a subclass may compute something else
        return f"{type(model).__name__} is not transformers' LlamaForCausalLM"
    config = model.config
    weight = model.lm_head.weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return f"weights are {weight.dtype} on {weight.device.type}, not float32 on the CPU"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "the projections have biases"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"hidden_act {config.hidden_act!r} is not silu"
    if getattr(config, "pretraining_tp", 1) != 1:
        return "pretraining_tp is not 1"
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in _ROPE_TYPES:
        return f"rope_type {rope_type!r} depends on the sequence length"
    generation = getattr(model, "generation_config", None)
    for key, neutral in _NEUTRAL_DECODING.items():
        value = getattr(generation, key, neutral)
        if value not in (neutral, None):  # None: not set
            return f"generation_config.{key}={value!r} changes greedy decoding"
    return None


def _fuse(modules) -> object:
    """One row-major matrix holding the modules' weights one after another; each module's
    weight becomes a view of its rows (the same values, no second copy)."""
    import torch

    fused = torch.cat([m.weight.detach() for m in modules]).contiguous()
    start = 0
    for module in modules:
        rows = module.weight.shape[0]
        module.weight.data = fused[start : start + rows]
        start += rows
    return fused


def _product(x, array):
    """``x @ array.T`` for ``x`` of shape 1 x n x in, in numpy's BLAS (gemv for one row)."""
    import torch

    rows = x.numpy().reshape(-1, x.shape[-1])
    out = array @ rows[0] if rows.shape[0] == 1 else rows @ array.T
    return torch.from_numpy(out).view(1, rows.shape[0], -1)


def _np_rms(hidden, weight, eps: float):
    import numpy as np

    return weight * (hidden / np.sqrt(hidden @ hidden / hidden.shape[0] + eps))


class LlamaDecoder:
    """Greedy batch-1 generation for one ``LlamaForCausalLM`` (see the module docstring)."""

    def __init__(self, model) -> None:
        import torch

        self.model = model
        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.intermediate = config.intermediate_size
        self.eps = config.rms_norm_eps
        self.scale = self.head_dim**-0.5
        self.layers = []  # per layer: two norm weights, then qkv, output, gate_up, down
        for layer in model.model.layers:
            attention, mlp = layer.self_attn, layer.mlp
            qkv = _fuse([attention.q_proj, attention.k_proj, attention.v_proj])
            gate_up = _fuse([mlp.gate_proj, mlp.up_proj])
            output, down = attention.o_proj.weight.detach(), mlp.down_proj.weight.detach()
            norms = (layer.input_layernorm.weight, layer.post_attention_layernorm.weight)
            self.layers.append(
                tuple(w.detach().contiguous().numpy() for w in (*norms, qkv, output, gate_up, down))
            )
        self.norm = model.model.norm.weight.detach().numpy()
        self.embed = model.model.embed_tokens.weight.detach()
        self.head = model.lm_head.weight.detach().contiguous().numpy()
        self._tables = (torch.empty(1, 0, self.head_dim), torch.empty(1, 0, self.head_dim))

    def _rotary(self, length: int):
        """cos and sign-folded sin tables for positions [0, length), from the model's own
        rotary module (``rotate_half(x) * sin == flip_halves(x) * signed_sin``, exactly)."""
        import torch

        if self._tables[0].shape[1] < length:
            size = max(length, 2 * self._tables[0].shape[1])
            positions = torch.arange(size)[None]
            cos, sin = self.model.model.rotary_emb(self.embed[:1], positions)
            half = self.head_dim // 2
            signed = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
            self._tables = (cos, signed)
            self._np_tables = (cos[0].numpy(), signed[0].numpy())
        return self._tables

    def _rms(self, hidden, weight):
        """transformers' LlamaRMSNorm in float32, the same arithmetic (``weight`` numpy)."""
        import torch

        weight = torch.from_numpy(weight)
        # mean(-1) is sum(-1).div_(n) in PyTorch; spelled out, it skips two dtype conversions
        variance = hidden.pow(2).sum(-1, keepdim=True).div_(hidden.shape[-1])
        return weight * (hidden * torch.rsqrt(variance + self.eps))

    def _rotate(self, x, cos, signed_sin):
        shape = x.shape
        halves = x.view(*shape[:-1], 2, self.head_dim // 2).flip(-2).view(shape)
        return x * cos + halves * signed_sin

    def _forward(self, ids, start: int, keys, values):
        """Logits of the last position of ``ids`` (1 x n) placed at ``start``; fills the cache."""
        import torch.nn.functional as F

        product = _product
        n = ids.shape[1]
        end = start + n
        heads, kv, dim, inter = self.heads, self.kv_heads, self.head_dim, self.intermediate
        cos_table, sin_table = self._rotary(end)
        cos = cos_table[:, start:end, None]
        sin = sin_table[:, start:end, None]
        hidden = F.embedding(ids, self.embed)
        for i, (ln1, ln2, qkv_w, out_w, gu_w, down_w) in enumerate(self.layers):
            qkv = product(self._rms(hidden, ln1), qkv_w).view(1, n, heads + 2 * kv, dim)
            qk = self._rotate(qkv[:, :, : heads + kv], cos, sin).transpose(1, 2)
            keys[i][:, :, start:end] = qk[:, heads:]
            values[i][:, :, start:end] = qkv[:, :, heads + kv :].transpose(1, 2)
            attended = F.scaled_dot_product_attention(
                qk[:, :heads],
                keys[i][:, :, :end],
                values[i][:, :, :end],
                is_causal=n > 1,
                scale=self.scale,
                enable_gqa=True,
            )
            attended = attended.transpose(1, 2).reshape(1, n, heads * dim)
            hidden = hidden + product(attended, out_w)
            gate_up = product(self._rms(hidden, ln2), gu_w)
            activated = F.silu(gate_up[..., :inter]) * gate_up[..., inter:]
            hidden = hidden + product(activated, down_w)
        last = self._rms(hidden[:, -1:], self.norm)
        return product(last, self.head)[0]

    def _step(self, token: int, position: int, keys, values):
        """Logits after one more token at ``position``: the decode step, in numpy (a numpy call
        on a 576-vector costs about a microsecond, a PyTorch operator several)."""
        import numpy as np

        heads, kv, dim, inter = self.heads, self.kv_heads, self.head_dim, self.intermediate
        group = heads // kv
        cos, sin = self._np_tables[0][position], self._np_tables[1][position]
        end = position + 1
        hidden = self.embed[token].numpy().copy()
        for i, (ln1, ln2, qkv_w, out_w, gu_w, down_w) in enumerate(self.layers):
            qkv = qkv_w @ _np_rms(hidden, ln1, self.eps)
            qk = qkv[: (heads + kv) * dim].reshape(heads + kv, dim)
            halves = qk.reshape(heads + kv, 2, dim // 2)[:, ::-1].reshape(heads + kv, dim)
            qk = qk * cos + halves * sin
            keys[i][:, position] = qk[heads:]
            values[i][:, position] = qkv[(heads + kv) * dim :].reshape(kv, dim)
            query = qk[:heads].reshape(kv, group, dim)
            scores = np.matmul(query, keys[i][:, :end].transpose(0, 2, 1))
            scores *= self.scale
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            attended = np.matmul(scores, values[i][:, :end]).reshape(heads * dim)
            hidden += out_w @ attended
            gate_up = gu_w @ _np_rms(hidden, ln2, self.eps)
            gate = gate_up[:inter]
            hidden += down_w @ (gate / (1.0 + np.exp(-gate)) * gate_up[inter:])
        return self.head @ _np_rms(hidden, self.norm, self.eps)

    def generate(
        self,
        input_ids,
        max_new_tokens: int,
        eos_ids: set[int],
        on_token: Callable[[], None] | None = None,
    ) -> tuple[list[int], list]:
        """Greedy continuation of ``input_ids`` (1 x n): the generated ids (up to and including
        the first EOS) and each step's logits (1 x vocab). ``on_token`` is called as soon as
        each token is chosen (the latency clock)."""
        import torch

        length = input_ids.shape[1] + max_new_tokens
        self._rotary(length)
        shape = (1, self.kv_heads, length, self.head_dim)
        keys = [torch.empty(shape) for _ in self.layers]
        values = [torch.empty(shape) for _ in self.layers]
        keys_np = [k.numpy()[0] for k in keys]
        values_np = [v.numpy()[0] for v in values]
        tokens: list[int] = []
        step_logits = []
        threads = torch.get_num_threads()
        with torch.inference_mode():
            try:
                torch.set_num_threads(1)
                logits = self._forward(input_ids, 0, keys, values)
                position = input_ids.shape[1]
                while True:
                    token = int(logits.argmax(-1))
                    if on_token is not None:
                        on_token()
                    tokens.append(token)
                    step_logits.append(logits)
                    if token in eos_ids or len(tokens) >= max_new_tokens:
                        break
                    logits = torch.from_numpy(self._step(token, position, keys_np, values_np)).view(
                        1, -1
                    )
                    position += 1
            finally:
                torch.set_num_threads(threads)
        return tokens, step_logits
