"""Attribute names: the OpenTelemetry GenAI conventions (v1.41) we write, and our own `sessionprof.*`."""

from __future__ import annotations

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
WORKFLOW_NAME = "gen_ai.workflow.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
SERVER_ADDRESS = "server.address"
ERROR_TYPE = "error.type"
PROCESS_PID = "process.pid"  # OTel resource semantic conventions: the process a span ran in

#: Where instrumentations put the session a span belongs to, ours first: a span (or its resource)
#: with any of these keeps it, and the processor stamps the active session only on spans with none.
#: Traceloop's association properties are free-form: besides `session_id`, its LangChain and
#: LangGraph integrations pass on the conversation, thread or chat id the framework was given.
SESSION_KEYS = (CONVERSATION_ID, "session.id", "langfuse.session.id", "gen_ai.session.id",
                "gen_ai.agent.session_id", "traceloop.association.properties.session_id",
                "traceloop.association.properties.conversation_id", "traceloop.association.properties.thread_id",
                "traceloop.association.properties.chat_id", "ai.telemetry.metadata.sessionId", "claude.session.id",
                "github.copilot.interaction_id")

OP_CHAT = "chat"
OP_EXECUTE_TOOL = "execute_tool"
OP_INVOKE_AGENT = "invoke_agent"
OP_INVOKE_WORKFLOW = "invoke_workflow"
OP_STEP = "step"  # not a GenAI operation: our name for any other step

# Our own measurements and markers, each with its unit where it has one.
SESSION_NAME = "sessionprof.session.name"
SESSION_ROOT = "sessionprof.session.root"
STAND_IN_MODEL = "sessionprof.model.stand_in"
STEP_KIND = "sessionprof.step.kind"
#: The event a span was made from, when it came as something other than a span (an OTLP log event).
SOURCE_EVENT = "sessionprof.source.event"

#: The OTel setting that opts in to recording prompts, completions and tool arguments.
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
