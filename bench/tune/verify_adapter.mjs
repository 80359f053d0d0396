// Checks a LoRA adapter written by the tuning stage (adapter.gguf) in llama.cpp itself
// (node-llama-cpp's CPU build): the base model with the adapter applied must generate, greedily,
// what llama.cpp generates from the merged model our trainer wrote, and differ from the base.
//   node bench/tune/verify_adapter.mjs BASE.gguf ADAPTER.gguf MERGED.gguf PROMPT
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [base, adapter, merged, prompt] = process.argv.slice(2);
const {getLlama} = await import(join(here, "../engine/node_modules/node-llama-cpp/dist/index.js"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const GEN = 48;

async function greedy(modelPath, lora) {
  const model = await llama.loadModel({modelPath});
  const context = await model.createContext({contextSize: 256, threads: 2, ...(lora ? {lora: {adapters: [{filePath: lora, scale: 1}]}} : {})});
  const seq = context.getSequence();
  const ids = [];
  for await (const id of seq.evaluate([model.tokens.bos, ...model.tokenize(prompt)], {temperature: 0})) {
    if (id === model.tokens.eos || ids.push(id) >= GEN) break;
  }
  const text = model.detokenize(ids);
  await context.dispose();
  await model.dispose();
  return text;
}

const withAdapter = await greedy(base, adapter);
const fromMerged = await greedy(merged, null);
const plain = await greedy(base, null);
console.log(JSON.stringify({prompt, base: plain, base_with_adapter: withAdapter, merged: fromMerged}, null, 1));
if (withAdapter !== fromMerged) {
  console.error("FAIL: llama.cpp with the adapter does not generate what the merged model generates");
  process.exit(1);
}
if (withAdapter === plain) {
  console.error("FAIL: the adapter changes nothing");
  process.exit(1);
}
console.log("OK: llama.cpp applies the GGUF adapter as our merge does");
