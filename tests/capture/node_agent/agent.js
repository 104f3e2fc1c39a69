// A Node.js agent instrumented with the OpenTelemetry JS SDK, exporting over OTLP/HTTP protobuf to
// wherever OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) points: one agent turn with two
// model calls and a tool call between them, with known usage.
"use strict";

const { trace } = require("@opentelemetry/api");
const { NodeTracerProvider, BatchSpanProcessor } = require("@opentelemetry/sdk-trace-node");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");

const provider = new NodeTracerProvider({
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
});
provider.register();
const tracer = trace.getTracer("node-agent", "1.0.0");
const conversation = "node-conversation-1";

function chat(inputTokens, outputTokens, cacheRead) {
  const span = tracer.startSpan("chat gpt-4o-mini", {
    kind: 2, // CLIENT
    attributes: {
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.conversation.id": conversation,
      "gen_ai.usage.input_tokens": inputTokens,
      "gen_ai.usage.output_tokens": outputTokens,
      "gen_ai.usage.cache_read.input_tokens": cacheRead,
    },
  });
  span.end();
}

function tool(name) {
  const span = tracer.startSpan(`execute_tool ${name}`, {
    attributes: {
      "gen_ai.operation.name": "execute_tool",
      "gen_ai.tool.name": name,
      "gen_ai.conversation.id": conversation,
    },
  });
  span.end();
}

async function main() {
  await tracer.startActiveSpan(
    "invoke_agent node-agent",
    { attributes: { "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "node-agent",
                    "gen_ai.conversation.id": conversation } },
    async (agent) => {
      chat(1200, 80, 1000);
      tool("search");
      chat(1500, 40, 1200);
      agent.end();
    },
  );
  await provider.shutdown(); // flushes the batch to the receiver before exit
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
