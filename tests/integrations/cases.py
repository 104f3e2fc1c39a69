"""The agents of the integration suite and what each one's report must show."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class AgentCase:
    """One agent script run one way, and what its report is expected to hold."""

    id: str
    script: str
    tool_runs: int
    """Tool spans the framework writes (a plain SDK loop runs its tool outside any span)."""
    cache_reported: bool = True
    """False where the instrumentation drops the cache counts (the official OpenAI instrumentor)."""
    run_options: tuple[str, ...] = ()
    """`sessionprof run` options before `--`."""
    duplicates: int = 0
    """Spans that describe a call another span already bills (two instrumentations of one call)."""
    known_gap: str = ""
    """Why the report does not yet bill this case as the stub answered (the test then must fail)."""

    def param(self) -> object:
        """This case as a pytest parameter, named by its id, expected to fail while it has a known gap."""
        marks = [pytest.mark.xfail(strict=True, reason=self.known_gap)] if self.known_gap else []
        return pytest.param(self, id=self.id, marks=marks)


#: The official OpenAI instrumentor reports no cache counts on chat completions; OpenLLMetry's and
#: OpenInference's Anthropic instrumentors each describe again the call the anthropic SDK's own span does.
OPENAI = AgentCase("openai+otel-instrumentor", "openai_agent.py", tool_runs=0, cache_reported=False)
ANTHROPIC_SDK = AgentCase("anthropic-sdk-spans", "anthropic_agent.py", tool_runs=0,
                          run_options=("--instrument", "none"))
ANTHROPIC_INSTRUMENTED = AgentCase("anthropic+instrumentors", "anthropic_agent.py", tool_runs=0, duplicates=6)
PYDANTIC_AI = AgentCase("pydantic-ai", "pydantic_ai_agent.py", tool_runs=2)
OPENAI_AGENTS = AgentCase("openai-agents+openinference", "openai_agents_agent.py", tool_runs=2)
#: OpenInference never makes its LangChain spans current, so the OpenAI instrumentor's span of each
#: call is a root of the session: each call described twice, counted once.
LANGGRAPH = AgentCase("langgraph+openinference", "langgraph_agent.py", tool_runs=2, duplicates=3)
#: The same agent with only OpenInference's LangChain instrumentor turned on.
LANGGRAPH_ONLY = AgentCase("langgraph+openinference-only", "langgraph_agent.py", tool_runs=2,
                           run_options=("--instrument", "langchain"))

ALL = (OPENAI, ANTHROPIC_SDK, ANTHROPIC_INSTRUMENTED, PYDANTIC_AI, OPENAI_AGENTS, LANGGRAPH, LANGGRAPH_ONLY)
