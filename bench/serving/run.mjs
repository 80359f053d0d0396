// Serving benchmark: llmopsd over HTTP against the engine's own llmops-infer on the same model
// and thread count, in one run.
//   node bench/serving/run.mjs [BUILD_DIR]     env: MODELS=stories,llama-110M-Q8_0  THREADS=2
//                                                   ROUNDS=3  GEN=64  SOAK_S=0 (RSS soak seconds)
//                                                   KV=f16 (the KV cache type of both sides)
// Prints, per model: single-stream decode tok/s over HTTP beside llmops-infer's decode tok/s
// (ratio = HTTP / engine; each round runs llmops-infer, with --warmup as the daemon is warm, right
// before the HTTP stream, and the ratio is the median of the rounds' ratios, so a noisy neighbour
// hits both alike); aggregate decode tok/s at 1, 4 and 16 concurrent streams (ratio to 1
// stream); p50/p99 time to first token and inter-token latency at each concurrency; daemon RSS
// before and after (and after a soak).
// Decode rate over HTTP: c streams of GEN tokens take T; c streams of 1 token (prompt, first
// token, HTTP) take T1; rate = c·(GEN − 1) / (T − T1), each a median over the rounds. Wall times
// only, so it does not depend on how many tokens the server puts in one SSE event. The
// inter-token figures are the gaps between SSE events with text.
import {execFileSync, spawn} from "node:child_process";
import {existsSync, mkdtempSync, readFileSync, writeFileSync} from "node:fs";
import http from "node:http";
import {tmpdir} from "node:os";
import {dirname, join, resolve} from "node:path";
import {fileURLToPath} from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const build = resolve(process.argv[2] ?? join(here, "../../build"));
const bin = (n) => join(build, "bin", n);
const rounds = Number(process.env.ROUNDS ?? 5), threads = Number(process.env.THREADS ?? 2), kv = process.env.KV ?? "f16";
// Tokens per stream: as many as stories260K's 128-token context allows, so its milliseconds-long
// streams are not lost in timer noise; GEN overrides for every model.
let GEN = 64;
const soak = Number(process.env.SOAK_S ?? 0);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const models = [];
const wanted = (process.env.MODELS ?? "stories,llama-110M-Q8_0").split(",");
const stories = resolve(here, "../../../shared/models/stories260K/stories260K.gguf");
if (wanted.includes("stories") && existsSync(stories)) models.push({name: "stories260K", path: stories, ctx: 128, gen: 100});
const synthDir = process.env.LLMOPS_BENCH_MODELS ?? "/tmp/llmops-bench-models";
for (const w of wanted.filter((x) => x.startsWith("llama-"))) {
  const type = w.slice(w.lastIndexOf("-") + 1), shapeName = w.slice(0, w.lastIndexOf("-"));
  const path = join(synthDir, `${shapeName}-${type}.gguf`);
  if (!existsSync(path)) execFileSync(bin("llmops-synth"), ["--shape", shapeName, "--type", type, "--out", path], {stdio: "ignore"});
  models.push({name: `${shapeName}-${type}`, path, ctx: 1024, gen: 64});
}

function rssKb(pid) {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) : 0;
}

async function startDaemon(model) {
  const dir = mkdtempSync(join(tmpdir(), "llmops-bench-"));
  writeFileSync(join(dir, "llmopsd.conf"),
                `[serving]\nmodel = ${model.path}\nmodel-name = m\nthreads = ${threads}\nmax-sequences = 16\nmax-queue = 256\nkv-cache-type = ${kv}\n`);
  const child = spawn(bin("llmopsd"), ["--config", join(dir, "llmopsd.conf"), "--state-dir", join(dir, "state"), "--runtime-dir",
                                       join(dir, "run"), "--http.listen", "127.0.0.1:0", "--log-level", "warning"], {stdio: "ignore"});
  for (let i = 0; i < 200 && !existsSync(join(dir, "run/llmopsd.json")); ++i) await sleep(50);
  const info = JSON.parse(readFileSync(join(dir, "run/llmopsd.json"), "utf8"));
  return {child, base: `http://127.0.0.1:${info.http_port}`};
}

// One streamed completion: returns time to first token and the gaps between tokens (ms). The
// client is node:http with a keep-alive agent, the lightest Node has: it shares the two cores
// with the daemon, and fetch (undici's web streams) took about twice its CPU time per event.
const agent = new http.Agent({keepAlive: true, maxSockets: 64});
function stream(base, prompt, maxTokens = GEN) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const body = JSON.stringify({model: "m", prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true});
    const req = http.request(`${base}/v1/completions`, {method: "POST", agent, headers: {"content-type": "application/json",
                                                                                          "content-length": Buffer.byteLength(body)}}, (res) => {
      const times = [];
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (part) => {
        buf += part;
        let at;
        while ((at = buf.indexOf("\n\n")) >= 0) {
          const ev = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
          const c = JSON.parse(ev.slice(6));
          if (c.choices?.[0]?.text) times.push(performance.now());
        }
      });
      res.on("end", () => resolve({ttft: times[0] - t0, gaps: times.slice(1).map((t, i) => t - times[i]), tokens: GEN, first: times[0],
                                   last: times.at(-1)}));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const prompt = "Once upon a time, there was a little girl who";  // short: stories260K has a 128-token context
console.log(`threads ${threads}, ${kv} KV cache, median of ${rounds} rounds, streams with ignore_eos`);
for (const model of models) {
  GEN = Number(process.env.GEN ?? model.gen);
  const engineRate = () => JSON.parse(execFileSync(bin("llmops-infer"), ["--model", model.path, "--prompt", prompt, "--max-tokens", String(GEN),
    "--threads", String(threads), "--json", "--ignore-eos", "--kv-type", kv, "--warmup"]).toString()).decode_tokens_per_s;
  const infer = [], paired = [];
  const {child, base} = await startDaemon(model);
  await stream(base, prompt);  // warm-up
  const rss0 = rssKb(child.pid);
  // Single stream end to end: back-to-back requests for 3 s, every generated token over the whole
  // wall time (prompt, first token and HTTP included: stricter than the engine's decode-only rate).
  const sustained = [];
  for (let r = 0; r < rounds; ++r) {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 3000 / rounds * 1 + 200) await stream(base, prompt), ++n;
    sustained.push(n * GEN / ((performance.now() - t0) / 1000));
  }
  const endToEnd = median(sustained);
  const rows = [];
  for (const conc of [1, 4, 16]) {
    const whole = [], first = [], ttft = [], itl = [];
    for (let r = 0; r < rounds; ++r) {
      if (conc === 1) infer.push(engineRate());
      let t0 = performance.now();
      await Promise.all(Array.from({length: conc}, () => stream(base, prompt, 1)));
      first.push(performance.now() - t0);
      t0 = performance.now();
      const results = await Promise.all(Array.from({length: conc}, () => stream(base, prompt)));
      whole.push(performance.now() - t0);
      for (const x of results) ttft.push(x.ttft), itl.push(...x.gaps);
      if (conc === 1) paired.push(((GEN - 1) / ((whole.at(-1) - first.at(-1)) / 1000)) / infer.at(-1));
    }
    const agg = conc * (GEN - 1) / ((median(whole) - median(first)) / 1000);
    rows.push({conc, agg, ttft50: pct(ttft, 0.5), ttft99: pct(ttft, 0.99), itl50: pct(itl, 0.5), itl99: pct(itl, 0.99)});
  }
  let rssSoak = null;
  if (soak > 0) {
    const end = performance.now() + soak * 1000;
    while (performance.now() < end) await Promise.all(Array.from({length: 8}, () => stream(base, prompt)));
    rssSoak = rssKb(child.pid);
  }
  const rss1 = rssKb(child.pid);
  child.kill("SIGTERM");
  await sleep(300);
  const single = rows[0].agg, engine = median(infer);
  console.log(`\n${model.name} (${GEN} tokens per stream): engine (llmops-infer) decode ${engine.toFixed(0)} tok/s; HTTP single stream ` +
              `${single.toFixed(0)} tok/s decode = ${(single / engine).toFixed(2)} of the engine (median of paired rounds ` +
              `${median(paired).toFixed(2)}: ${paired.map((x) => x.toFixed(2)).join(" ")}); back to back end to end ` +
              `${endToEnd.toFixed(0)} tok/s = ${(endToEnd / engine).toFixed(2)}`);
  console.log("streams | aggregate tok/s | × 1 stream | TTFT p50 / p99 ms | inter-token p50 / p99 ms");
  for (const r of rows) {
    console.log(`${String(r.conc).padStart(7)} | ${r.agg.toFixed(0).padStart(15)} | ${(r.agg / single).toFixed(2).padStart(10)} | ` +
                `${r.ttft50.toFixed(1).padStart(7)} / ${r.ttft99.toFixed(1).padEnd(7)} | ${r.itl50.toFixed(2).padStart(8)} / ${r.itl99.toFixed(2)}`);
  }
  console.log(`daemon RSS: ${(rss0 / 1024).toFixed(1)} MiB after warm-up, ${(rss1 / 1024).toFixed(1)} MiB after the runs` +
              (rssSoak ? `, ${(rssSoak / 1024).toFixed(1)} MiB after a ${soak} s soak of 8 streams` : ""));
}
