// Drives a Cocoon mesh client node with the official OpenAI Node SDK and fails loudly on any
// difference from what the SDK expects. Usage: node check.mjs http://127.0.0.1:PORT/v1
import OpenAI from "openai";

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };

const models = await client.models.list();
const ids = models.data.map((m) => m.id);
if (!ids.includes("echo-test@v1:none")) fail("models.list: " + JSON.stringify(ids));

const chat = await client.chat.completions.create({
  model: "echo-test", messages: [{ role: "user", content: "hello sdk" }],
});
if (chat.choices[0].message.content !== "hello sdk") fail("chat: " + JSON.stringify(chat));
if (chat.usage.completion_tokens !== 2) fail("chat usage: " + JSON.stringify(chat.usage));

const stream = await client.chat.completions.create({
  model: "echo-test", stream: true, stream_options: { include_usage: true },
  messages: [{ role: "user", content: "one two three four" }],
});
let text = "", usage = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.choices.length > 0) text += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
if (text !== "one two three four") fail("stream text: " + JSON.stringify(text));
if (!usage || usage.completion_tokens !== 4) fail("stream usage: " + JSON.stringify(usage));

const comp = await client.completions.create({ model: "echo-test", prompt: "alpha beta", max_tokens: 5 });
if (comp.choices[0].text !== "alpha beta") fail("completions: " + JSON.stringify(comp));

try {
  await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
  fail("unknown model did not throw");
} catch (e) {
  if (!(e instanceof OpenAI.NotFoundError)) fail("unknown model: " + e);
}

// Abort a stream after its first token: the SDK must stop cleanly.
const ac = new AbortController();
const long = await client.chat.completions.create(
  { model: "echo-test", stream: true, max_tokens: 50, messages: [{ role: "user", content: "w ".repeat(50) }] },
  { signal: ac.signal });
let got = 0;
try {
  for await (const chunk of long) {
    if (chunk.choices[0]?.delta?.content) { got++; ac.abort(); }
  }
} catch (e) {
  if (!(e instanceof OpenAI.APIUserAbortError)) fail("abort: " + e);
}
if (got !== 1) fail("abort: got " + got + " tokens");

console.log(`OK: models, chat, stream (${chunks} chunks, usage ${usage.total_tokens}), completions, 404, abort`);
