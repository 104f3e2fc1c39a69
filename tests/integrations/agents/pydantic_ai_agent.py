"""A pydantic-ai agent with one tool and its OpenTelemetry instrumentation on."""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.capabilities import Instrumentation

agent = Agent("openai:gpt-4o-mini", instructions="Answer with the weather tool.", capabilities=[Instrumentation()])


@agent.tool_plain
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}, 21 degrees"


if __name__ == "__main__":
    print(agent.run_sync("What is the weather in Paris?").output)
