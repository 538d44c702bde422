// Pulls references through the official `ollama` npm client (`/api/pull`, streamed) and prints, per
// reference, the progress objects it yielded or the error it threw, as JSON for
// tests/integration/test_transfer_clients.py to check.
import { Ollama } from 'ollama'

const host = process.argv[2]
const references = JSON.parse(process.argv[3])
const client = new Ollama({ host })
const results = []

for (const model of references) {
  const events = []
  try {
    for await (const part of await client.pull({ model, stream: true })) {
      events.push(part)
    }
    results.push({ model, events })
  } catch (err) {
    results.push({ model, events, error: { name: err.name, message: err.error ?? err.message, status: err.status_code ?? null } })
  }
}
const list = await client.list()
console.log(JSON.stringify({ results, list: list.models.map((m) => m.name) }))
