"""Usage extraction from real OpenAI and Anthropic response objects, built locally."""

from __future__ import annotations

import pytest

from instrumentation.usage import MAX_TOKENS_PER_CALL, extract_usage

openai_types = pytest.importorskip("openai.types")
anthropic_types = pytest.importorskip("anthropic.types")


def test_openai_chat_completion_with_cache_and_reasoning() -> None:
    from openai.types.chat import ChatCompletion

    response = ChatCompletion.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "o3-2025-04-16",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                  "prompt_tokens_details": {"cached_tokens": 1024},
                  "completion_tokens_details": {"reasoning_tokens": 256}},
    })
    usage = extract_usage(response)
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.reasoning_tokens) == (
        1200, 300, 1024, 256)
    assert usage.model == "o3-2025-04-16" and usage.provider == "openai" and usage.response_id == "chatcmpl-1"


def test_openai_responses_api() -> None:
    from openai.types.responses import Response

    response = Response.model_validate({
        "id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-4.1", "output": [],
        "parallel_tool_calls": False, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": 900, "output_tokens": 50, "total_tokens": 950,
                  "input_tokens_details": {"cached_tokens": 512, "cache_write_tokens": 64},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    })
    usage = extract_usage(response)
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        900, 50, 512, 64)
    assert usage.provider == "openai"


def test_anthropic_message_input_made_inclusive_of_cache() -> None:
    from anthropic.types import Message

    message = Message.model_validate({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 40, "cache_read_input_tokens": 3000,
                  "cache_creation_input_tokens": 500},
    })
    usage = extract_usage(message)
    assert usage is not None
    assert usage.input_tokens == 12 + 3000 + 500
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.output_tokens) == (3000, 500, 40)
    assert usage.provider == "anthropic" and usage.model == "claude-sonnet-4-5"


@pytest.mark.parametrize("response", [None, {}, {"usage": None}, {"usage": {"weird": 1}}, "text", 42,
                                      {"usage": {"prompt_tokens": "many", "completion_tokens": -3}}])
def test_wrong_shapes_give_no_usage_or_none_counts(response: object) -> None:
    usage = extract_usage(response)
    if usage is not None:
        assert usage.input_tokens is None and usage.output_tokens is None


def test_plain_dicts_of_either_shape() -> None:
    openai_dict = {"model": "gpt-4o", "usage": {"prompt_tokens": 10, "completion_tokens": 2}}
    anthropic_dict = {"model": "claude-haiku-4-5", "usage": {"input_tokens": 10, "output_tokens": 2,
                                                              "cache_read_input_tokens": 5}}
    assert extract_usage(openai_dict).input_tokens == 10  # type: ignore[union-attr]
    assert extract_usage(anthropic_dict).input_tokens == 15  # type: ignore[union-attr]


@pytest.mark.parametrize("impossible", [float("inf"), float("nan"), 1e30, 2**63 - 1, -5, "inf"])
def test_a_count_that_cannot_be_real_is_left_out_and_the_rest_kept(impossible: object) -> None:
    # inf raised OverflowError here, and the whole call's usage (the span, in a decorator) was lost.
    usage = extract_usage({"model": "gpt-4o", "usage": {"prompt_tokens": impossible, "completion_tokens": 10}})
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.model) == (None, 10, "gpt-4o")


def test_the_ceiling_itself_is_a_count() -> None:
    usage = extract_usage({"usage": {"input_tokens": MAX_TOKENS_PER_CALL, "output_tokens": MAX_TOKENS_PER_CALL + 1}})
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (MAX_TOKENS_PER_CALL, None)
