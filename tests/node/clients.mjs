// The JavaScript clients people use, against ChatWait's chat completions and Responses API, each
// scenario printing what the client reported as one JSON line: node clients.mjs BASE_URL MODEL SCENARIO
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenResponses } from "@ai-sdk/open-responses";
import { generateObject, stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";
import { ResponsesWS } from "openai/resources/responses/ws";
import { z } from "zod";

const [base, model, scenario] = process.argv.slice(2);
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const weatherTools = {
  get_weather: tool({
    description: "The weather in a city.",
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => `clear in ${city}`,
  }),
};

// The Vercel AI SDK: streamText with a tool it executes, then the model's answer (`api`: chat,
// responses, messages: Anthropic's Messages API, or open-responses: its Open Responses provider).
async function vercelStreamTool(api) {
  const providers = {
    messages: () => createAnthropic({ baseURL: `${base}/v1`, apiKey: "unused" })(model),
    "open-responses": () => createOpenResponses({ name: "chatwait", url: `${base}/v1/responses`, apiKey: "unused" })(model),
  };
  const result = streamText({
    model: providers[api]?.() ?? createOpenAI({ baseURL: `${base}/v1`, apiKey: "unused" })[api](model),
    prompt: "Weather in Oslo? @delay_ms=5",
    tools: weatherTools,
    stopWhen: stepCountIs(3),
  });
  const steps = await result.steps;
  return {
    text: await result.text,
    finish: await result.finishReason,
    calls: steps.flatMap((step) => step.toolCalls.map((c) => [c.toolName, c.input])),
  };
}

// The Vercel AI SDK: generateObject with a schema (structured output).
async function vercelGenerateObject(api) {
  const provider = api === "open-responses"
    ? createOpenResponses({ name: "chatwait", url: `${base}/v1/responses`, apiKey: "unused" })
    : createOpenAI({ baseURL: `${base}/v1`, apiKey: "unused" })[api];
  const { object } = await generateObject({
    model: provider(model),
    schema: z.object({ city: z.string(), days: z.number() }),
    prompt: "Forecast for Oslo",
  });
  return { object };
}

const cancelAsk = "Tell me @tokens=300 @delay_ms=20";
const cancel = (id) => fetch(`${base}/v1/responses/${id}/cancel`, { method: "POST" });

const scenarios = {
  // openai-node: a streamed tool call, accumulated by the SDK's stream helper.
  async "openai-tool-stream"() {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
    const stream = client.chat.completions.stream({
      model, messages: [{ role: "user", content: "Weather in Oslo? @tool_calls=2 @delay_ms=5" }], tools: [weather],
    });
    const final = await stream.finalChatCompletion();
    const choice = final.choices[0];
    return { finish: choice.finish_reason, calls: choice.message.tool_calls.map((c) => [c.id, c.function.name, c.function.arguments]) };
  },
  "vercel-stream-tool": () => vercelStreamTool("chat"),
  "vercel-generate-object": () => vercelGenerateObject("chat"),
  "vercel-responses-stream-tool": () => vercelStreamTool("responses"),
  "vercel-messages-stream-tool": () => vercelStreamTool("messages"),
  "vercel-open-responses-stream-tool": () => vercelStreamTool("open-responses"),
  "vercel-responses-generate-object": () => vercelGenerateObject("responses"),
  "vercel-open-responses-generate-object": () => vercelGenerateObject("open-responses"),
  // openai-node: a streamed response cancelled after its third delta, as its stream helper ends it
  // (its final response: what the terminal event, `response.incomplete` here, carries).
  async "openai-responses-cancel"() {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
    const stream = client.responses.stream({ model, input: cancelAsk });
    let deltas = 0;
    let last;
    stream.on("event", (event) => {
      last = event;
      if (event.type === "response.output_text.delta" && ++deltas === 3) cancel(event.item_id.replace("msg_", "resp_"));
    });
    const final = await stream.finalResponse();
    return { final: final.status, last: last.type, status: last.response.status, partial: (final.output_text ?? final.output[0]?.content?.[0]?.text ?? "").length > 0 };
  },
  // The Vercel AI SDK: streamText on the Responses API, its response cancelled after the third delta.
  async "vercel-responses-cancel"() {
    let cancelled = false;
    const watch = async (url, init) => {
      const response = await fetch(url, init);
      const id = response.headers.get("x-stream-id");
      if (id && !cancelled) {
        cancelled = true;
        setTimeout(() => cancel(`resp_${id}`), 200);
      }
      return response;
    };
    const openai = createOpenAI({ baseURL: `${base}/v1`, apiKey: "unused", fetch: watch });
    const result = streamText({ model: openai.responses(model), prompt: cancelAsk });
    const text = await result.text;
    return { finish: await result.finishReason, partial: text.length > 0 && text.length < 300 * 5 };
  },
  // openai-node's WebSocket client of the Responses API: a tool loop of two turns, stored and not.
  async "openai-responses-websocket"() {
    const ws = new ResponsesWS(new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 }));
    const turn = async (body) => {
      ws.send({ type: "response.create", model, tools: [{ type: "function", ...weather.function }], ...body });
      for await (const received of ws.stream()) {
        if (received.type === "error") throw received.error;
        const event = received.type === "message" ? received.message : null;
        if (event && ["response.completed", "response.failed", "error"].includes(event.type)) return event;
      }
      throw new Error("the socket closed mid-turn");
    };
    const loops = {};
    for (const store of [true, false]) {
      const first = await turn({ input: "Weather?", store });
      const [call] = first.response.output;
      const output = { type: "function_call_output", call_id: call.call_id, output: "sunny" };
      const second = await turn({ previous_response_id: first.response.id, input: [output], store });
      loops[store] = [call.type, call.name, second.type, second.response.output[0].content[0].text];
    }
    ws.close({ code: 1000, reason: "done" });
    return loops;
  },
  // openai-node's WebSocket client: a tool loop's turn whose socket is terminated after
  // CHATWAIT_CUT_AFTER events, reattached on a new socket to CHATWAIT_OTHER_URL (another instance)
  // with ChatWait's `chatwait:response.resume`; the messages each socket got, as sent, then the
  // loop's next turn there (CHATWAIT_STORE: its `store`).
  async "openai-responses-websocket-reattach"() {
    const store = process.env.CHATWAIT_STORE === "true";
    const ask = { model, input: "Weather? @tool_calls=2 @argpieces=12 @delay_ms=10", tools: [{ type: "function", ...weather.function }], store };
    const open = (url) => {
      const ws = new ResponsesWS(new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 }));
      const raw = [];
      ws.socket.platformSocket.on("message", (data) => raw.push(String(data)));
      return [ws, raw];
    };
    const untilEnding = async (ws, counted) => {
      for await (const received of ws.stream()) {
        const event = received.type === "message" ? received.message : null;
        if (event && counted(event)) return event;
      }
      return null;
    };
    const [first, before] = open(base);
    first.send({ type: "response.create", ...ask });
    let seen = 0;
    await untilEnding(first, () => ++seen === Number(process.env.CHATWAIT_CUT_AFTER));
    first.socket.terminate(); // the connection drops: no closing handshake
    const had = [...before];
    const [second, after] = open(process.env.CHATWAIT_OTHER_URL);
    const last = JSON.parse(had[had.length - 1]);
    const ending = (event) => ["response.completed", "response.incomplete", "response.failed", "error"].includes(event.type);
    let ended = last; // it may have had the whole turn before the cut: nothing to reattach to
    if (!ending(last)) {
      second.send({ type: "chatwait:response.resume", response_id: JSON.parse(had[0]).response.id, starting_after: last.sequence_number });
      ended = await untilEnding(second, ending);
    }
    const reattached = [...after];
    if (ended?.type !== "response.completed") {
      throw new Error(`the reattached turn ended ${JSON.stringify(ended)?.slice(0, 300)} after ${had.length} + ${reattached.length} messages`);
    }
    const outputs = ended.response.output.map((call) => ({ type: "function_call_output", call_id: call.call_id, output: "sunny" }));
    const goesOn = store
      ? { previous_response_id: ended.response.id, input: outputs }
      : { input: [{ role: "user", content: ask.input }, ...ended.response.output, ...outputs] };
    second.send({ type: "response.create", ...ask, ...goesOn });
    const answer = await untilEnding(second, ending);
    second.close({ code: 1000, reason: "done" });
    return { before: had, after: reattached, answer: [answer.type, answer.response?.output[0].content[0].text] };
  },
  // openai-node: streamed function calls of the Responses API, accumulated by the SDK's stream helper.
  async "openai-responses-tool-stream"() {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
    const stream = client.responses.stream({
      model, input: "Weather in Oslo? @tool_calls=2 @reasoning=2 @delay_ms=5", tools: [{ type: "function", ...weather.function }],
    });
    const final = await stream.finalResponse();
    return { status: final.status, items: final.output.map((item) => [item.type, item.call_id ?? null, item.arguments ?? null]) };
  },
};

try {
  console.log(JSON.stringify({ ok: true, ...(await scenarios[scenario]()) }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error), name: error?.name, stack: error?.stack }));
}
process.exit(0); // a socket a failed scenario left open must not keep Node running
