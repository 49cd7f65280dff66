"""Server-side generation controls: top-level fields that llama.cpp's server, vLLM, SGLang, TGI
or Ollama read to change how much is generated or what the server does (a token limit of its
own, a grammar, a chat template, a slot, a LoRA adapter, a priority).

The tolerant contract passes a field ChatWait does not know on as sent; one of these would let a
client make an upstream generate more than ChatWait reserved (llama.cpp reads `n_predict`
before `max_tokens`), so a family refuses it with a 400 naming it, unless an operator allows it
for a server (`allow_fields` in UPSTREAMS_FILE); a server that does not allow it is never sent it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONTROLS = frozenset(
    (
        # How much is generated: a token limit read before max_tokens, or an end held back.
        "n_predict max_new_tokens min_tokens min_new_tokens ignore_eos best_of n_probs use_beam_search "
        "length_penalty early_stopping n_keep n_discard n_cmpl t_max_predict_ms t_max_prompt_ms "
        "prompt_logprobs truncate_prompt_tokens "
        # Ollama's options (num_predict, num_ctx...) and how long it keeps the model loaded.
        "options keep_alive "
        # What shape the output must take: grammars and guided decoding.
        "grammar json_schema regex ebnf structural_tag structured_outputs guided_json guided_regex "
        "guided_choice guided_grammar guided_decoding_backend guided_whitespace_pattern logits_processors "
        "custom_logit_processor "
        # How the prompt is built: chat templates and what they are given.
        "chat_template chat_template_kwargs add_generation_prompt continue_final_message add_special_tokens "
        "echo documents mm_processor_kwargs template raw "
        # What the server does with its own resources: slots, caches, adapters, priorities, sessions.
        "id_slot slot_id cache_prompt cache_salt lora lora_path lora_request priority request_id rid "
        "session_params kv_transfer_params vllm_xargs return_hidden_states speculative samplers"
    ).split()
)


def held_back(fields: Mapping[str, Any], allowed: frozenset[str]) -> list[str]:
    """The controls among `fields` (a body's top-level names) that `allowed` does not let through."""
    return sorted(name for name in fields if name in CONTROLS and name not in allowed)


def allowed_only(fields: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """`fields` without the controls a server does not allow (those it does, as sent)."""
    if not any(name in CONTROLS and name not in allowed for name in fields):
        return fields
    return {name: value for name, value in fields.items() if name not in CONTROLS or name in allowed}
