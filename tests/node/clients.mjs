// The JavaScript clients people use, against ChatWait's chat completions, each scenario printing
// what the client reported as one JSON line: node clients.mjs BASE_URL MODEL SCENARIO
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";
import { z } from "zod";

const [base, model, scenario] = process.argv.slice(2);
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

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
  // The Vercel AI SDK: streamText with a tool it executes, then the model's answer.
  async "vercel-stream-tool"() {
    const openai = createOpenAI({ baseURL: `${base}/v1`, apiKey: "unused" });
    const result = streamText({
      model: openai.chat(model),
      prompt: "Weather in Oslo? @delay_ms=5",
      tools: {
        get_weather: tool({
          description: "The weather in a city.",
          inputSchema: z.object({ city: z.string() }),
          execute: async ({ city }) => `clear in ${city}`,
        }),
      },
      stopWhen: stepCountIs(3),
    });
    const steps = await result.steps;
    return {
      text: await result.text,
      finish: await result.finishReason,
      calls: steps.flatMap((step) => step.toolCalls.map((c) => [c.toolName, c.input])),
    };
  },
  // The Vercel AI SDK: generateObject with a schema (structured output).
  async "vercel-generate-object"() {
    const openai = createOpenAI({ baseURL: `${base}/v1`, apiKey: "unused" });
    const { object } = await generateObject({
      model: openai.chat(model),
      schema: z.object({ city: z.string(), days: z.number() }),
      prompt: "Forecast for Oslo",
    });
    return { object };
  },
};

try {
  console.log(JSON.stringify({ ok: true, ...(await scenarios[scenario]()) }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error), name: error?.name }));
}
