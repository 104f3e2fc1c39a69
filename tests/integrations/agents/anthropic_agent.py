"""A plain `anthropic` tool loop: the model asks for the weather, the loop runs the tool, the model answers."""

from __future__ import annotations

from anthropic import Anthropic

TOOLS = [{
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]


def get_weather(city: str) -> str:
    """The weather in `city` (a fixed answer)."""
    return f"sunny in {city}, 21 degrees"


def main() -> None:
    client = Anthropic()  # ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY from the environment
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
    while True:
        response = client.messages.create(model="claude-sonnet-4-20250514", max_tokens=512, messages=messages,
                                          tools=TOOLS)
        tool_uses = [block for block in response.content if block.type == "tool_use"]
        if not tool_uses:
            print(response.content[0].text)
            return
        messages.append({"role": "assistant", "content": [block.model_dump() for block in response.content]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": get_weather(**use.input)} for use in tool_uses]})


if __name__ == "__main__":
    main()
