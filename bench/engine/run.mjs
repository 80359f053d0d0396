// Engine benchmark: llmops-infer's prefill and decode speed beside llama.cpp on the same GGUF
// files in the same run, with the memory-bandwidth ceiling for decode measured in the same run.
// llama.cpp is its own llama-bench, built by bench/engine/llama_bench.sh from the source that
// node-llama-cpp@3.21.1 carries (run.sh builds it once), at the same thread count; each round
// runs ours and then llama-bench (prefill of the same prompt length; decode of 64 tokens at that
// depth, as ours decodes after the prompt), and the figures are medians over the rounds. Both are
// timed warm: llmops-infer --warmup runs the prompt and a decode step first, llama-bench its own
// warm-up run. Without llama-bench (LLAMA_BENCH unset and not built) it falls back to
// node-llama-cpp at 1 thread and ../shared/baselines/llama.cpp-cpu.md's table at 2. F32 rows
// also give prefill as FLOP/s against sgemm's, both in the same round: bench_sgemm runs one
// layer's products at the same token count and threads through the engine's gemm.
//   node bench/engine/run.mjs [BUILD_DIR]      (env: ROUNDS=3, FULL=1 adds tinyllama-1.1B, THREADS=1,2,
//                                               LLAMA_BENCH=path of llama-bench)
import {execFileSync} from "node:child_process";
import {existsSync, mkdirSync} from "node:fs";
import {dirname, join, resolve} from "node:path";
import {fileURLToPath} from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const build = resolve(process.argv[2] ?? join(here, "../../build"));
const rounds = Number(process.env.ROUNDS ?? 3);
const models = process.env.LLMOPS_BENCH_MODELS ?? "/tmp/llmops-bench-models";
mkdirSync(models, {recursive: true});
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bin = (name) => join(build, "bin", name);

const llamaBench = process.env.LLAMA_BENCH ?? "/tmp/llmops-llama.cpp/build/bin/llama-bench";
const live = existsSync(llamaBench);

const cases = [];
const stories = resolve(here, "../../../shared/models/stories260K/stories260K.gguf");
// Its GGUF declares a 128-token context: 64 prompt tokens leave room for the 64 decoded.
if (existsSync(stories)) cases.push({name: "stories260K", type: "F32", path: stories, prompt: 64});
const synth = [["llama-110M", ["F32", "Q8_0", "Q4_0", "Q4_K"]]];
if (process.env.FULL === "1") synth.push(["tinyllama-1.1B", ["Q8_0", "Q4_0", "Q4_K"]]);
for (const [shape, types] of synth) {
  for (const type of types) {
    const path = join(models, `${shape}-${type}.gguf`);
    if (!existsSync(path)) execFileSync(bin("llmops-synth"), ["--shape", shape, "--type", type, "--out", path], {stdio: "ignore"});
    cases.push({name: shape, type, path});
  }
}

// A prompt of exactly 128 tokens (BOS + 127, fewer where the model's context is short) and 64
// decoded tokens, for both engines.
const PROMPT_TOKENS = 128, GEN = 64;
const promptText = Array.from({length: 400}, (_, i) => "word" + (i % 17)).join(" ");

function ours(path, threads, promptTokens) {
  const out = execFileSync(bin("llmops-infer"), ["--model", path, "--prompt", promptText, "--max-tokens", String(GEN), "--threads",
    String(threads), "--json", "--prompt-tokens", String(promptTokens), "--ignore-eos", "--warmup"]).toString();
  const r = JSON.parse(out);
  if (r.generated_ids.length !== GEN) throw new Error(`llmops-infer generated ${r.generated_ids.length} tokens, not ${GEN}`);
  return r;
}

// llama-bench's mean tok/s of one test (-r 1: one timed run after its warm-up).
function llamaBenchRate(path, threads, args) {
  const out = execFileSync(llamaBench, ["-m", path, "-t", String(threads), "-r", "1", "-o", "json", ...args], {stdio: ["ignore", "pipe", "ignore"]});
  return JSON.parse(out.toString())[0].avg_ts;
}

let nodeLlama = null;
async function theirs(path, threads, promptTokens) {
  if (nodeLlama === null) {
    const {getLlama} = await import(join(here, "node_modules/node-llama-cpp/dist/index.js"));
    nodeLlama = await getLlama({gpu: false, build: "never", logLevel: "error"});
  }
  const model = await nodeLlama.loadModel({modelPath: path});
  const context = await model.createContext({contextSize: 512, threads, batchSize: 512});
  const tokens = [model.tokens.bos, ...model.tokenize(promptText)].slice(0, promptTokens);
  const results = [];
  for (let r = 0; r < rounds + 1; ++r) {  // the first round warms the page cache and is dropped
    const seq = context.getSequence();
    const t0 = performance.now();
    let t1 = 0, n = 0;
    for await (const _ of seq.evaluate(tokens, {temperature: 0})) {
      if (n === 0) t1 = performance.now();
      if (++n >= GEN) break;
    }
    const t2 = performance.now();
    seq.dispose();
    if (r > 0) results.push({prefill: tokens.length / ((t1 - t0) / 1000), decode: (GEN - 1) / ((t2 - t1) / 1000)});
  }
  await context.dispose();
  await model.dispose();
  return {prefill: median(results.map((x) => x.prefill)), decode: median(results.map((x) => x.decode))};
}

console.log("decode ceiling: memory read bandwidth (bench_membw, measured before each round) / weight bytes per token; " +
            "each case's ceiling from the median bandwidth, %ceil the median of the rounds' ratios");
console.log(`prompt ${PROMPT_TOKENS} tokens, ${GEN} decoded, median of ${rounds} rounds after a warm-up; llama.cpp = ` +
            (live ? `llama-bench (${llamaBench}), same threads, interleaved with ours` : "node-llama-cpp 3.21.1 CPU build (1 thread) and the table (2)"));
// llama-bench at 2 threads from ../shared/baselines/llama.cpp-cpu.md (bandwidth 30.9 GB/s that
// hour): [prefill, decode]. Decode is scaled by the bandwidth measured for the case.
const TABLE_BW2 = 30.9;
const table2 = {"stories260K F32": [10624, 7166], "llama-110M F32": [630, 60.2], "llama-110M Q8_0": [2896, 330],
                "llama-110M Q4_0": [2941, 508], "tinyllama-1.1B Q8_0": [280, 24.6], "tinyllama-1.1B Q4_0": [269, 43.2]};
console.log("model           type  thr | ours prefill  decode | ceiling  %ceil | RSS/(weights+KV) | llama.cpp prefill  decode | ratio prefill  decode");
for (const c of cases) {
  for (const threads of (process.env.THREADS ?? "1,2").split(",").map(Number)) {
    const promptTokens = c.prompt ?? PROMPT_TOKENS;
    ours(c.path, threads, promptTokens);  // warm-up
    const runs = [], lp = [], ld = [], sgemm = [], bw = [];
    // F32 prefill against sgemm: one layer's products at the same token count and threads, each
    // round (bench_sgemm), as FLOP/s of the layers' products per prompt token.
    const sgemmShape = c.type === "F32" && c.name !== "stories260K" ? c.name : null;
    for (let r = 0; r < rounds; ++r) {
      // The bandwidth moves by up to 1.7x within minutes on these VMs: each round's decode is held
      // against the bandwidth measured right before it.
      bw.push(Number(execFileSync(bin("bench_membw"), [String(threads)]).toString()));
      runs.push(ours(c.path, threads, promptTokens));
      if (sgemmShape) {
        sgemm.push(JSON.parse(execFileSync(bin("bench_sgemm"), ["--shape", sgemmShape, "--threads", String(threads), "--tokens",
                                                               String(promptTokens)]).toString()));
      }
      if (live) {
        lp.push(llamaBenchRate(c.path, threads, ["-p", String(promptTokens), "-n", "0"]));
        ld.push(llamaBenchRate(c.path, threads, ["-p", "0", "-n", String(GEN), "-d", String(promptTokens)]));
      }
    }
    const pf = median(runs.map((r) => r.prefill_tokens_per_s)), dc = median(runs.map((r) => r.decode_tokens_per_s));
    const ceiling = median(bw) * 1e9 / runs[0].weight_bytes_per_token;
    const ofCeiling = median(runs.map((r, i) => r.decode_tokens_per_s / (bw[i] * 1e9 / r.weight_bytes_per_token)));
    const rss = median(runs.map((r) => r.peak_rss_bytes)) / (runs[0].weight_bytes + runs[0].kv_cache_bytes);
    const sgemmNote = sgemm.length ? `  (F32 prefill ${(pf * sgemm[0].flops_per_token / 1e9).toFixed(1)} GFLOP/s = ` +
      `${(100 * pf * sgemm[0].flops_per_token / 1e9 / median(sgemm.map((x) => x.gflops))).toFixed(0)}% of sgemm's ` +
      `${median(sgemm.map((x) => x.gflops)).toFixed(1)})` : "";
    const row = table2[`${c.name} ${c.type}`];
    const tableNote = threads === 2 && row ? `  (table, decode scaled to this case's bandwidth: ${(pf / row[0]).toFixed(2)} ` +
                                             `${(dc / (row[1] * median(bw) / TABLE_BW2)).toFixed(2)})` : "";
    let cmp;
    if (live) {
      const tp = median(lp), td = median(ld);
      cmp = `${tp.toFixed(0).padStart(8)} ${td.toFixed(0).padStart(7)} | ${(pf / tp).toFixed(2).padStart(6)} ${(dc / td).toFixed(2).padStart(7)}${tableNote}`;
    } else if (threads === 2) {
      const t = await theirs(c.path, threads, promptTokens);
      const decode = row ? row[1] * median(bw) / TABLE_BW2 : null;
      cmp = `${t.prefill.toFixed(0).padStart(8)} ${decode ? decode.toFixed(0).padStart(7) : "      —"} | ${(pf / t.prefill).toFixed(2).padStart(6)} ` +
            `${decode ? (dc / decode).toFixed(2).padStart(7) : "      —"}  (prefill node-llama-cpp; decode from the table, scaled to this case's bandwidth)`;
    } else {
      const t = await theirs(c.path, threads, promptTokens);
      cmp = `${t.prefill.toFixed(0).padStart(8)} ${t.decode.toFixed(0).padStart(7)} | ${(pf / t.prefill).toFixed(2).padStart(6)} ${(dc / t.decode).toFixed(2).padStart(7)}`;
    }
    console.log(`${c.name.padEnd(15)} ${c.type.padEnd(5)} ${String(threads).padStart(3)} | ${pf.toFixed(0).padStart(12)} ${dc.toFixed(0).padStart(7)} | ` +
                `${ceiling.toFixed(0).padStart(7)} ${(100 * ofCeiling).toFixed(0).padStart(5)}% | ${rss.toFixed(2).padStart(16)} | ${cmp}${sgemmNote}`);
  }
}
