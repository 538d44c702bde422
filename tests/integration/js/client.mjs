// Drives the official `ollama` npm client against a live openzoo server and prints what it saw as
// JSON, for tests/integration/test_ollama_js_client.py to check.
import { Ollama } from 'ollama'

const host = process.argv[2]
const model = process.argv[3]
const client = new Ollama({ host })
const options = { temperature: 0, seed: 42, num_predict: 8 }

const generated = await client.generate({ model, prompt: 'The sky is', options })
const streamedParts = []
let streamedFinal = null
for await (const part of await client.chat({ model, messages: [{ role: 'user', content: 'Hello' }], options, stream: true })) {
  if (part.done) streamedFinal = part
  else streamedParts.push(part.message.content)
}
const chatWhole = await client.chat({ model, messages: [{ role: 'user', content: 'Hello' }], options })
const list = await client.list()
const show = await client.show({ model })
let missing = null
try {
  await client.generate({ model: 'missing:model', prompt: 'x' })
} catch (err) {
  missing = { name: err.name, status: err.status_code, message: err.error ?? err.message }
}

console.log(JSON.stringify({
  generate: { response: generated.response, done: generated.done, eval_count: generated.eval_count, done_reason: generated.done_reason },
  chat: { streamed: streamedParts.join(''), parts: streamedParts.length, final: streamedFinal && { done: streamedFinal.done, eval_count: streamedFinal.eval_count }, whole: chatWhole.message.content },
  list: list.models.map((m) => m.name),
  show: { family: show.details.family, license: show.license, model_info_arch: show.model_info['general.architecture'] },
  missing,
}))
