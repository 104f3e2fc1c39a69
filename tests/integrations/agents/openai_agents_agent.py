"""An OpenAI Agents SDK agent with one function tool, on the SDK's default model API (Responses)."""

from __future__ import annotations

from agents import Agent, Runner, function_tool


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}, 21 degrees"


agent = Agent(name="weather-agent", instructions="Answer with the weather tool.", model="gpt-4o-mini",
              tools=[get_weather])

if __name__ == "__main__":
    print(Runner.run_sync(agent, "What is the weather in Paris?").final_output)
