// Stage module 'eval': evaluation runs on held-out data — BLEU and chrF (sacreBLEU), ROUGE
// (rouge-score), exact match and F1 (SQuAD), perplexity — and run-vs-run comparison with a
// paired bootstrap. This file is the lifecycle and the job kinds; the admin routes are in
// routes.cpp, the jobs in jobs.cpp.
#include "eval/state.h"

namespace {

using namespace llmops::eval;

llmops_code init(llmops_module_ctx* ctx, const llmops_host_api* host, llmops_error* err) {
  if (host->struct_size < offsetof(llmops_host_api, peer_call) + sizeof host->peer_call) {
    return llmops::sdk::fail(err, LLMOPS_FAILED_PRECONDITION, "the eval stage needs a host with ABI 1.5 (peer calls to the data and serving stages)");
  }
  auto* s = new State();
  s->host = host;
  s->ctx = ctx;
  host->set_state(ctx, s);
  s->runs = std::make_unique<RunStore>(s->sdk(), "eval");
  const llmops::sdk::Host sdk = s->sdk();
  s->threads = std::stoi(sdk.config("threads", "0"));
  s->max_examples = std::stoi(sdk.config("max-examples", "1000000"));
  s->m_runs = host->metric_register(ctx, "runs_completed_total", "Eval runs that finished", 0);
  s->m_examples = host->metric_register(ctx, "examples_scored_total", "Examples scored by eval runs", 0);
  // Resumable: a run interrupted by a restart continues, skipping the examples it stored.
  for (const char* kind : {"score", "run", "probe"}) {
    if (host->job_kind_register(ctx, kind, 1, run_eval_job, s, err) != LLMOPS_OK) return err->code;
  }
  llmops_code c = LLMOPS_OK;
  add_routes([&](const char* method, const char* path, llmops_route_fn fn) {
    if (c == LLMOPS_OK) c = host->route_register(ctx, LLMOPS_PLANE_ADMIN, method, path, fn, s, err);
  });
  return c;
}

void fini(llmops_module_ctx*, void* state) { delete static_cast<State*>(state); }

llmops_code health(llmops_module_ctx*, void* state, llmops_health* out) {
  auto* s = static_cast<State*>(state);
  const bool peers = s->sdk().has_peer_call();
  llmops::sdk::set_health(out, peers ? LLMOPS_HEALTH_OK : LLMOPS_HEALTH_DEGRADED, peers ? "ready" : "the host cannot call the data and serving stages");
  return LLMOPS_OK;
}

const llmops_config_item kSchema[] = {
    {"threads", LLMOPS_CONFIG_INT, "0", 0, 1024, "engine threads of an eval run (0: the training pool's size, else all CPUs)"},
    {"max-examples", LLMOPS_CONFIG_INT, "1000000", 0, 1000000000, "largest run without --limit, in examples (0: no limit)"},
};

const llmops_module_api kApi = {
    sizeof(llmops_module_api), LLMOPS_ABI_MAJOR, LLMOPS_ABI_MINOR, "eval", LLMOPS_VERSION, "eval",
    "evaluation runs: BLEU, chrF, ROUGE, EM/F1, perplexity; comparisons with a paired bootstrap", 1, kSchema,
    sizeof kSchema / sizeof kSchema[0], init, nullptr, nullptr, nullptr, fini, health};

}  // namespace

extern "C" LLMOPS_EXPORT const llmops_module_api* llmops_module_get_api(void) { return &kApi; }
