"""transformers' own greedy generation, the reference the in-process decoder is checked against."""

from __future__ import annotations


def reference_greedy_ids(model_dir: str, messages, max_new_tokens: int) -> list[int]:
    """The ids ``model.generate`` (greedy) appends to the chat prompt, on a fresh load of the
    model (no weight re-stored by a generator)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
        )
    return out[0, inputs["input_ids"].shape[1] :].tolist()
