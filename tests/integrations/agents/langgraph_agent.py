"""A LangGraph agent: a model node over `langchain-openai`'s ChatOpenAI and a tool node, in a loop."""

from __future__ import annotations

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}, 21 degrees"


model = ChatOpenAI(model="gpt-4o-mini").bind_tools([get_weather])


def call_model(state: MessagesState) -> dict:
    """Ask the model for the next step."""
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("agent", call_model)
builder.add_node("tools", ToolNode([get_weather]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile()

if __name__ == "__main__":
    result = graph.invoke({"messages": [("user", "What is the weather in Paris?")]})
    print(result["messages"][-1].content)
