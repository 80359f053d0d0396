// A training run as a durable job: full fine-tuning of a base model, or training its shape from
// random weights (scratch), on a dataset version; validation loss on the dataset's validation
// split every eval_every steps with early stopping; a checkpoint every checkpoint_every steps
// (weights, AdamW moments, the step, from which the data position and the shuffling follow);
// after a restart the job resumes from its checkpoint and, with the same seed and threads,
// computes the same losses as a run that never stopped. The result is a new model version in
// the serving stage's catalogue, with its lineage kept in the run.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cmath>
#include <filesystem>
#include <thread>

#include "common/open_model.h"
#include "common/training_pool.h"
#include "model/export.h"
#include "failpoint.h"
#include "sha256.h"
#include "tuning/adapters.h"
#include "tuning/cost.h"
#include "tuning/checkpoint.h"
#include "tuning/examples.h"
#include "tuning/scratch.h"
#include "tuning/state.h"
#include "tuning/stepper.h"

namespace llmops::tuning {
namespace {

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

struct Hyper {
  std::string method = "full";
  double lr = 3e-4, min_lr = -1, weight_decay = 0.0, clip = 1.0;
  int64_t epochs = 1, steps = 0, warmup = -1;
  int vocab = 0;  // scratch: learn a vocabulary of this size from the training data
  int batch = 8, accumulate = 1, seq_len = 0, eval_every = 50, eval_batches = 8, patience = 0, checkpoint_every = 100;
  uint64_t seed = 0;
  bool packing = true, merge = false, register_model = true;
  std::string long_records = "split", text_field = "text";
  engine::train::LoraConfig lora;

  static Result<Hyper> from(const Json& j) {
    Hyper h;
    h.method = j.value("method", h.method);
    if (h.method != "full" && h.method != "scratch" && h.method != "lora") return invalid_argument("--method is lora, full or scratch");
    h.lora.rank = j.value("rank", h.lora.rank);
    h.lora.alpha = j.value("alpha", 2.0 * h.lora.rank);
    h.lora.dropout = j.value("dropout", 0.05);
    if (j.contains("targets")) {
      h.lora.targets.clear();
      const Json& t = j["targets"];
      if (t.is_string()) {
        std::string list = t.get<std::string>();
        for (size_t at = 0; at <= list.size();) {
          size_t comma = list.find(',', at);
          if (comma == std::string::npos) comma = list.size();
          if (comma > at) h.lora.targets.push_back(list.substr(at, comma - at));
          at = comma + 1;
        }
      } else if (t.is_array()) {
        for (const auto& x : t) h.lora.targets.push_back(x.get<std::string>());
      }
    }
    h.merge = j.value("merge", h.method != "lora");
    h.register_model = j.value("register", true);
    if (h.method == "lora" && (h.lora.rank < 1 || h.lora.rank > 4096)) return invalid_argument("--rank must be 1..4096");
    if (h.lora.dropout < 0 || h.lora.dropout >= 1) return invalid_argument("--dropout must be in [0, 1)");
    h.lr = j.value("lr", h.method == "scratch" ? 1e-3 : h.method == "lora" ? 2e-4 * 10 : h.lr);
    h.min_lr = j.value("min_lr", h.lr / 10);
    h.weight_decay = j.value("weight_decay", h.method == "scratch" ? 0.1 : 0.0);
    h.clip = j.value("clip", h.clip);
    h.epochs = j.value("epochs", h.epochs);
    h.steps = j.value("steps", h.steps);
    h.warmup = j.value("warmup", h.warmup);
    h.batch = j.value("batch", h.batch);
    h.accumulate = j.value("accumulate", h.accumulate);
    if (h.accumulate < 1 || h.accumulate > 4096) return invalid_argument("--accumulate must be 1..4096");
    h.seq_len = j.value("seq_len", h.seq_len);
    h.vocab = j.value("vocab", h.vocab);
    if (h.vocab != 0 && (h.vocab < 260 || h.vocab > (1 << 20))) return invalid_argument("--vocab must be 260..1048576 (3 specials and 256 byte tokens come first)");
    if (h.vocab != 0 && h.method != "scratch") return invalid_argument("--vocab learns a new tokenizer, which only --method scratch can use");
    h.eval_every = j.value("eval_every", h.eval_every);
    h.eval_batches = j.value("eval_batches", h.eval_batches);
    h.patience = j.value("patience", h.patience);
    h.checkpoint_every = j.value("checkpoint_every", h.checkpoint_every);
    h.seed = j.value("seed", h.seed);
    h.packing = j.value("packing", h.packing);
    h.long_records = j.value("long_records", h.long_records);
    h.text_field = j.value("text_field", h.text_field);
    if (!(h.lr > 0 && h.lr < 1)) return invalid_argument("--lr must be in (0, 1)");
    if (h.epochs < 1 || h.epochs > 10000) return invalid_argument("--epochs must be 1..10000");
    if (h.steps < 0 || h.batch < 1 || h.batch > 4096) return invalid_argument("--batch must be 1..4096 and --steps at least 0");
    if (h.seq_len < 0) return invalid_argument("--seq-len must be positive");
    if (h.long_records != "split" && h.long_records != "truncate") return invalid_argument("--long is split or truncate");
    if (h.eval_every < 1 || h.checkpoint_every < 1 || h.eval_batches < 1) return invalid_argument("--eval-every, --eval-batches and --checkpoint-every must be positive");
    return h;
  }
  Json to_json() const {
    return {{"method", method}, {"lr", lr}, {"min_lr", min_lr}, {"weight_decay", weight_decay}, {"clip", clip}, {"epochs", epochs},
            {"steps", steps}, {"warmup", warmup}, {"batch", batch}, {"accumulate", accumulate}, {"seq_len", seq_len}, {"eval_every", eval_every},
            {"eval_batches", eval_batches}, {"patience", patience}, {"checkpoint_every", checkpoint_every}, {"seed", seed},
            {"packing", packing}, {"vocab", vocab}, {"long_records", long_records}, {"text_field", text_field}, {"merge", merge}, {"register", register_model},
            {"rank", lora.rank}, {"alpha", lora.alpha}, {"dropout", lora.dropout}, {"targets", lora.targets}};
  }
};

Result<ExampleSet> load_examples(sdk::Host host, const peers::DatasetRef& d, const engine::Tokenizer& tok, const ExampleOptions& opt) {
  ExampleSet set;
  LLMOPS_RETURN_IF_ERROR(peers::read_records(host, d, [&](uint64_t, Json& rec) {
    set.add(rec, tok, opt);
    return true;
  }));
  set.finish(opt, tok.eos_id() >= 0 ? tok.eos_id() : 0);
  return set;
}

// Mean loss over up to `batches` batches of the validation chunks, in order.
Result<double> validation_loss(Stepper& t, const ExampleSet& val, int batch, int batches, int seq) {
  double sum = 0;
  int64_t counted = 0;
  std::vector<int32_t> in, tg;
  for (size_t k = 0; k < val.chunks() && k < static_cast<size_t>(batch * batches); k += static_cast<size_t>(batch)) {
    in.clear();
    tg.clear();
    int rows = 0;
    for (size_t j = k; j < val.chunks() && j < k + static_cast<size_t>(batch); ++j, ++rows) {
      in.insert(in.end(), val.inputs(j).begin(), val.inputs(j).end());
      tg.insert(tg.end(), val.targets(j).begin(), val.targets(j).end());
    }
    LLMOPS_ASSIGN_OR_RETURN(double loss, t.forward(in.data(), tg.data(), rows, seq));
    sum += loss * static_cast<double>(t.counted_targets());
    counted += t.counted_targets();
  }
  return counted > 0 ? sum / static_cast<double>(counted) : 0.0;
}

}  // namespace

Status check_hyperparameters(const Json& request) { return Hyper::from(request).status(); }

Result<Json> prepare_training(State* s, const Json& req, const std::string& caller) {
  if (!req.is_object()) return invalid_argument("the request body must be a JSON object");
  LLMOPS_ASSIGN_OR_RETURN(Hyper h, Hyper::from(req));
  const std::string base = req.value("base", ""), data = req.value("data", "");
  const bool own_shape = req.contains("shape") && !req["shape"].is_null();
  if (own_shape && h.method != "scratch") return invalid_argument("--shape is for --method scratch");
  if (base.empty() && !(own_shape && h.vocab > 0)) {
    return invalid_argument("name the base model: --base NAME (llmopsctl model list shows them); --method scratch without a base needs --shape and --vocab");
  }
  if (data.empty()) return invalid_argument("name the training data: --data DATASET[@V][:SPLIT]");
  if (h.method == "lora") {
    for (const auto& t : h.lora.targets) {
      if (t != "q" && t != "k" && t != "v" && t != "o" && t != "gate" && t != "up" && t != "down") {
        return invalid_argument("unknown LoRA target '" + t + "'; the targets are q, k, v, o, gate, up, down");
      }
    }
  }
  Json shape = nullptr;
  if (own_shape) {
    LLMOPS_ASSIGN_OR_RETURN(ScratchShape sh, parse_shape(req["shape"]));
    shape = sh.to_json();
  }
  Json base_json = {{"requested", ""}, {"name", ""}};
  std::string stem = "scratch";
  if (!base.empty()) {
    LLMOPS_ASSIGN_OR_RETURN(peers::ModelRef model, peers::resolve_model(s->sdk(), base));
    if (h.method == "lora" && model.arch == "gpt2" && std::find(h.lora.targets.begin(), h.lora.targets.end(), "gate") != h.lora.targets.end()) {
      return invalid_argument("'" + model.name + "' is GPT-2, which has no gate projection; its LoRA targets are q, k, v, o, up, down");
    }
    Json files = Json::array();
    for (const auto& f : model.files) files.push_back({{"name", f.name}, {"role", f.role}, {"sha256", f.sha256}});
    base_json = {{"requested", base}, {"name", model.name}, {"format", model.format}, {"files", files}};
    stem = model.name;
  }
  LLMOPS_ASSIGN_OR_RETURN(peers::DatasetRef d, peers::resolve_dataset(s->sdk(), data));
  if (d.records == 0) return invalid_argument(d.ref + " holds no records: there is nothing to train on");
  const bool has_pc = d.schema.contains("prompt") && d.schema.contains("completion");
  if (!has_pc && !d.schema.contains("messages") && !d.schema.contains(h.text_field)) {
    return invalid_argument(d.ref + " has neither prompt + completion, messages, nor a '" + h.text_field + "' field; its fields are " + peers::field_list(d.schema) +
                            " (map them with llmopsctl data map, or name the text with --text-field)");
  }
  // Validation: named, else the dataset's validation split beside a train split.
  std::string val_spec = req.value("validation", "");
  if (val_spec.empty() && d.split == "train") val_spec = data.substr(0, data.rfind(':')) + ":validation";
  Json val = nullptr;
  if (!val_spec.empty()) {
    auto v = peers::resolve_dataset(s->sdk(), val_spec);
    if (v.ok()) val = {{"ref", v->ref}, {"content_hash", v->content_hash}, {"records", v->records}, {"split", v->split}};
    else if (!req.value("validation", "").empty()) return v.status();
  }
  const std::string output = req.value("output", "");
  Json run = {{"kind", "train"}, {"status", "queued"}, {"created_ms", now_ms()}, {"created_by", caller},
              {"base", base_json}, {"shape", shape},
              {"data", {{"spec", data}, {"ref", d.ref}, {"content_hash", d.content_hash}, {"records", d.records}, {"split", d.split}}},
              {"validation", val}, {"hyperparameters", h.to_json()}, {"output", output}, {"code_version", LLMOPS_VERSION}};
  if (req.contains("parent")) run["parent"] = req["parent"];
  LLMOPS_ASSIGN_OR_RETURN(uint64_t id, s->runs->create(run));
  run["id"] = id;
  if (output.empty()) {
    run["output"] = stem + "-" + h.method + "-" + std::to_string(id);
    LLMOPS_RETURN_IF_ERROR(s->runs->put(run));
  }
  return run;
}

template <typename Finish, typename Fail>
llmops_code train_body(State* s, llmops_job* job, llmops_error* err, uint64_t id, Json& run, Finish& finish, Fail& fail);

llmops_code run_training_job(void* user, llmops_job* job, llmops_error* err) {
  auto* s = static_cast<State*>(user);
  const llmops_host_api* hapi = s->host;
  return runs::run_job(*s->runs, hapi->job_params(job), err, [&](uint64_t id, Json& run) -> llmops_code {
    auto fail = [&](const Status& st) { return sdk::fail(err, static_cast<llmops_code>(st.code()), st.message()); };
    auto finish = [&](const std::string& status, const Status& st) { return runs::finish_run(*s->runs, run, status, st, err); };
    return train_body(s, job, err, id, run, finish, fail);
  });
}

template <typename Finish, typename Fail>
llmops_code train_body(State* s, llmops_job* job, llmops_error* err, uint64_t id, Json& run, Finish& finish, Fail& fail) {
  const llmops_host_api* hapi = s->host;
  {
    auto hp = Hyper::from(run["hyperparameters"]);
    if (!hp.ok()) return finish("failed", hp.status());
    Hyper h = *hp;
    run["status"] = "running";
    run["job"] = hapi->job_id(job);
    if (!run.contains("started_ms")) run["started_ms"] = now_ms();
    (void)s->runs->put(run);
    runs::bind_training(s->sdk());

    // The base model, held while the run lasts (a scratch run with its own shape and
    // vocabulary has none).
    std::vector<models::StoredFile> files;
    const bool has_base = !run["base"].value("name", std::string()).empty();
    if (has_base) {
      for (const auto& f : run["base"]["files"]) files.push_back({f["name"], f["role"], f["sha256"]});
    }
    peers::BlobHold hold(s->sdk(), files);
    if (!hold.status().ok()) return finish("failed", hold.status());
    std::optional<models::OpenedModel> opened;
    if (has_base) {
      models::ModelSource src;
      src.name = run["base"]["name"];
      src.format = run["base"]["format"];
      auto o = models::open_stored_model(s->sdk(), src, files, [&](const std::string& m) { s->sdk().warn(m); }, nullptr);
      if (!o.ok()) return finish("failed", o.status());
      opened = std::move(*o);
    }
    peers::DatasetRef d;
    d.ref = run["data"]["ref"];
    d.records = run["data"]["records"];
    ExampleOptions eo;
    eo.packing = h.packing;
    eo.long_records = h.long_records;
    eo.text_field = h.text_field;
    // Chat records render with the base's template, else ChatML's.
    std::optional<engine::ChatTemplate> chatml;
    if (opened && opened->chat) {
      eo.chat = opened->chat.get();
    } else if (auto b = engine::ChatTemplate::builtin("chatml"); b.ok()) {
      chatml = std::move(*b);
      eo.chat = &*chatml;
    }
    // The tokenizer: learned from the training text (--vocab), else the base's.
    std::optional<engine::SpmVocab> vocab;
    std::optional<engine::Tokenizer> own_tok;
    if (h.vocab > 0) {
      auto v = learn_vocabulary(s->sdk(), d, eo, h.vocab);
      if (!v.ok()) return finish("failed", v.status());
      auto spm = engine::SpmTokenizer::create(*v);
      if (!spm.ok()) return finish("failed", spm.status().with_context("the learned vocabulary"));
      own_tok.emplace(std::move(*spm), true);
      vocab = std::move(*v);
      run["tokenizer"] = {{"learned_from", d.ref}, {"size", own_tok->size()}};
    }
    const engine::Tokenizer& tok = own_tok ? *own_tok : *opened->tok;
    // The shape: given (--shape), else the base's.
    std::optional<ScratchShape> shape;
    if (run["shape"].is_object()) {
      auto sh = parse_shape(run["shape"]);
      if (!sh.ok()) return finish("failed", sh.status());
      shape = *sh;
      shape->config.vocab_size = tok.size();
    }
    const engine::ModelConfig& cfg = shape ? shape->config : opened->model->config();
    // A base that is not GGUF gets its result written through GGUF export: refuse now, not
    // after the training, what that cannot carry.
    const bool converted = !vocab && !shape && opened->model->gguf() == nullptr;
    if (converted) {
      if (Status st = can_write_converted(cfg); !st.ok()) return finish("failed", st);
    }
    const int seq = h.seq_len > 0 ? std::min(h.seq_len, cfg.seq_len) : std::min(256, cfg.seq_len);
    eo.seq_len = seq;
    const bool tied = shape ? shape->tied : opened->model->classifier().data == opened->model->token_embedding().data;
    auto trainer = h.method == "scratch" ? Trainer::random(cfg, tied, h.seed) : Trainer::from_model(*opened->model);
    if (!trainer.ok()) return finish("failed", trainer.status());
    Trainer& t = *trainer;
    // Products and loops on the training CPUs, with the thread count the run started with: a
    // resumed run then computes what an uninterrupted one did.
    if (!run["threads"].is_number_integer()) {
      run["threads"] = runs::training_threads(s->sdk(), s->threads);
      (void)s->runs->put(run);
    }
    const std::unique_ptr<engine::ThreadPool> pool = runs::training_pool(s->sdk(), run["threads"].get<int>());
    t.set_pool(pool.get());
    const bool lora = h.method == "lora";
    if (lora) {
      h.lora.seed = h.seed;
      if (Status st = t.enable_lora(h.lora); !st.ok()) return finish("failed", st);
    }
    std::vector<float>& trained = lora ? t.lora_params() : t.params();

    // The data, as chunks.
    auto train_set = load_examples(s->sdk(), d, tok, eo);
    if (!train_set.ok()) return finish("failed", train_set.status());
    if (train_set->chunks() == 0) return finish("failed", invalid_argument(d.ref + " gave no usable training example (see the report)"));
    run["data"]["report"] = train_set->report().to_json();
    std::optional<ExampleSet> val_set;
    if (run["validation"].is_object()) {
      peers::DatasetRef v;
      v.ref = run["validation"]["ref"];
      v.records = run["validation"]["records"];
      auto vs = load_examples(s->sdk(), v, tok, eo);
      if (!vs.ok()) return finish("failed", vs.status());
      if (vs->chunks() > 0) val_set = std::move(*vs);
    }
    const size_t per_step = static_cast<size_t>(h.batch) * static_cast<size_t>(h.accumulate);
    const int64_t per_epoch = static_cast<int64_t>((train_set->chunks() + per_step - 1) / per_step);
    const int64_t total = h.steps > 0 ? h.steps : h.epochs * per_epoch;
    engine::train::AdamWConfig oc;
    oc.lr = h.lr;
    oc.min_lr = h.min_lr;
    oc.weight_decay = h.weight_decay;
    oc.clip_norm = h.clip;
    oc.total_steps = total;
    oc.warmup_steps = h.warmup >= 0 ? h.warmup : std::min<int64_t>(100, total / 10);
    Optimizer opt(oc, trained.size());
    run["plan"] = {{"steps", total}, {"chunks", train_set->chunks()}, {"seq_len", seq}, {"parameters", t.parameter_count()},
                   {"trained_parameters", trained.size()},
                   {"warmup_steps", oc.warmup_steps}, {"validation_chunks", val_set ? val_set->chunks() : 0}};

    // Resume from the job's checkpoint.
    int64_t start = 0;
    double best_val = INFINITY;
    int bad_evals = 0;
    std::string ckpt_blob;
    if (const char* cp = hapi->job_checkpoint(job); cp != nullptr) {
      auto c = parse_json_bounded(cp, 8);
      if (c.ok() && c->contains("blob")) {
        ckpt_blob = (*c)["blob"];
        auto hdr = load_checkpoint(s->sdk(), ckpt_blob, trained, opt);
        if (!hdr.ok()) return finish("failed", hdr.status());
        start = hdr->value("step", int64_t{0});
        best_val = (*hdr)["best_val"].is_number() ? (*hdr)["best_val"].get<double>() : INFINITY;
        bad_evals = hdr->value("bad_evals", 0);
        run["resumed_from_step"] = start;
      }
    }
    (void)s->runs->put(run);
    std::vector<Json> curve;
    auto flush_curve = [&]() -> Status {
      Status st = s->runs->put_examples(id, curve);
      curve.clear();
      return st;
    };
    std::unique_ptr<Stepper> stepper;  // where the steps run, made below
    auto checkpoint = [&](int64_t step) -> Status {
      LLMOPS_RETURN_IF_ERROR(flush_curve());
      Json hdr = {{"step", step}, {"best_val", std::isfinite(best_val) ? Json(best_val) : Json(nullptr)}, {"bad_evals", bad_evals}};
      if (stepper) {
        LLMOPS_RETURN_IF_ERROR(stepper->to_host());
      }
      LLMOPS_ASSIGN_OR_RETURN(std::string blob, save_checkpoint(s->sdk(), trained, opt, hdr));
      llmops_error e{};
      Json rec = {{"blob", blob}, {"step", step}};
      if (hapi->job_save_checkpoint(job, dump_json(rec).c_str(), &e) != LLMOPS_OK) {
        hapi->blob_ref(s->ctx, blob.c_str(), -1, &e);
        return Status(static_cast<Code>(e.code), std::string("recording the checkpoint: ") + e.message);
      }
      if (!ckpt_blob.empty() && ckpt_blob != blob) hapi->blob_ref(s->ctx, ckpt_blob.c_str(), -1, &e);
      ckpt_blob = blob;
      run["checkpoint"] = {{"step", step}, {"blob", blob}};
      return ok_status();
    };

    // Where the steps run (tuning.device): made after the resume, so a GPU starts from the
    // checkpoint's state.
    Status why_cpu = ok_status();
    const int math = s->gpu_precision == "bf16" ? LLMOPS_MATH_BF16 : s->gpu_precision == "tf32" ? LLMOPS_MATH_TF32 : LLMOPS_MATH_F32;
    auto made = Stepper::make(s->device, s->gpus, math, t, opt, lora, [s](const std::string& pci) {
      if (s->host->struct_size < offsetof(llmops_host_api, placement_bind_device) + sizeof(void*)) return;
      llmops_error e{};
      if (s->host->placement_bind_device(s->ctx, pci.c_str(), &e) != LLMOPS_OK) {
        s->host->log(s->ctx, LLMOPS_LOG_WARNING, ("could not pin the thread of GPU " + pci + ": " + e.message).c_str());
      }
    }, &why_cpu);
    if (!made.ok()) return finish("failed", made.status());
    stepper = std::move(*made);
    Stepper& runner = *stepper;
    run["device"] = runner.device();
    if (runner.device() != "cpu") run["gpu_precision"] = s->gpu_precision;
    if (!why_cpu.ok()) {
      run["device_note"] = why_cpu.message();
      // A server without a GPU is the ordinary case; a GPU that could not take the run is news.
      if (why_cpu.code() != Code::kUnavailable) {
        s->host->log(s->ctx, LLMOPS_LOG_INFO, ("run " + std::to_string(id) + " trains on the CPU: " + why_cpu.message()).c_str());
      }
    }
    (void)s->runs->put(run);
    const auto t0 = std::chrono::steady_clock::now();
    CostMeter meter;
    uint64_t tokens_seen = 0;
    double last_loss = NAN, last_val = NAN;
    bool stopped_early = false;
    std::vector<int32_t> in, tg;
    for (int64_t step = start; step < total; ++step) {
      if (hapi->job_cancelled(job)) {
        (void)flush_curve();
        return finish("cancelled", cancelled("cancelled at step " + std::to_string(step) + "; the checkpoint of step " +
                                             std::to_string(run.contains("checkpoint") ? run["checkpoint"]["step"].get<int64_t>() : 0) + " is kept"));
      }
      if (hapi->job_stopping(job)) {
        Status st = checkpoint(step);
        run["status"] = "interrupted";
        (void)s->runs->put(run);
        if (!st.ok()) return fail(st);
        return sdk::fail(err, LLMOPS_ABORTED, "llmopsd is stopping; training resumes from step " + std::to_string(step));
      }
      // One optimiser step over `accumulate` micro-batches: each adds the gradient of its own mean
      // loss, and their average is the step's gradient.
      if (Status z = runner.zero_grads(); !z.ok()) return finish("failed", z);
      double loss_sum = 0;
      int64_t counted = 0;
      for (int micro = 0; micro < h.accumulate; ++micro) {
        const uint64_t first = (static_cast<uint64_t>(step) * h.accumulate + static_cast<uint64_t>(micro)) * static_cast<uint64_t>(h.batch);
        in.clear();
        tg.clear();
        for (int j = 0; j < h.batch; ++j) {
          const size_t c = train_set->chunk_at(first + static_cast<uint64_t>(j), h.seed);
          in.insert(in.end(), train_set->inputs(c).begin(), train_set->inputs(c).end());
          tg.insert(tg.end(), train_set->targets(c).begin(), train_set->targets(c).end());
        }
        runner.set_dropout_stream(static_cast<uint64_t>(step) * h.accumulate + static_cast<uint64_t>(micro));
        auto micro_loss = runner.forward(in.data(), tg.data(), h.batch, seq);
        if (!micro_loss.ok()) return finish("failed", micro_loss.status());
        if (failpoint("tune.nan_loss") == step) *micro_loss = NAN;  // tests of the NaN path
        if (!std::isfinite(*micro_loss)) {
          (void)flush_curve();
          return finish("failed", failed_precondition("the training loss became " + std::string(std::isnan(*micro_loss) ? "NaN" : "infinite") +
                                                      " at step " + std::to_string(step) + " (learning rate " +
                                                      std::to_string(engine::train::learning_rate(oc, step)) +
                                                      "); lower --lr or raise --warmup. The last good checkpoint (step " +
                                                      std::to_string(run.contains("checkpoint") ? run["checkpoint"]["step"].get<int64_t>() : 0) + ") is kept"));
        }
        if (Status b = runner.backward(); !b.ok()) return finish("failed", b);
        loss_sum += *micro_loss;
        counted += runner.counted_targets();
      }
      const Result<double> loss = loss_sum / h.accumulate;
      const double lr = engine::train::learning_rate(oc, step);
      auto stepped = runner.step(oc, h.accumulate);
      if (!stepped.ok()) return finish("failed", stepped.status());
      const double gnorm = *stepped;
      if (!std::isfinite(gnorm)) return finish("failed", failed_precondition("the gradients became non-finite at step " + std::to_string(step) + "; lower --lr"));
      tokens_seen += static_cast<uint64_t>(counted);
      last_loss = *loss;
      Json point = {{"i", step}, {"step", step + 1}, {"loss", *loss}, {"lr", lr}, {"grad_norm", gnorm}, {"tokens", counted}};
      const bool eval_now = val_set && ((step + 1) % h.eval_every == 0 || step + 1 == total);
      if (eval_now) {
        runner.set_training(false);
        auto vl = validation_loss(runner, *val_set, h.batch, h.eval_batches, seq);
        runner.set_training(true);
        if (!vl.ok()) return finish("failed", vl.status());
        last_val = *vl;
        point["val_loss"] = *vl;
        point["val_ppl"] = std::exp(*vl);
        if (*vl < best_val - 1e-4) best_val = *vl, bad_evals = 0;
        else ++bad_evals;
      }
      curve.push_back(point);
      hapi->metric_add(s->ctx, s->m_steps, 1);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      char msg[200];
      char val[64] = "";
      if (std::isfinite(last_val)) std::snprintf(val, sizeof val, " val %.4f (ppl %.2f)", last_val, std::exp(last_val));
      std::snprintf(msg, sizeof msg, "step %lld/%lld loss %.4f%s %.0f tok/s", static_cast<long long>(step + 1), static_cast<long long>(total), *loss, val,
                    secs > 0 ? static_cast<double>(tokens_seen) / secs : 0.0);
      hapi->job_progress(job, static_cast<double>(step + 1), static_cast<double>(total), msg);
      if (curve.size() >= 20) {
        if (Status st = flush_curve(); !st.ok()) return finish("failed", st);
      }
      if ((step + 1) % h.checkpoint_every == 0 && step + 1 < total) {
        if (Status st = checkpoint(step + 1); !st.ok()) return finish("failed", st);
        (void)s->runs->put(run);
      }
      if (h.patience > 0 && bad_evals >= h.patience) {
        stopped_early = true;
        run["stopped_early_at_step"] = step + 1;
        break;
      }
    }
    if (Status fl = flush_curve(); !fl.ok()) return finish("failed", fl);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The result is written from the host trainer: the trained weights come back from the GPU.
    if (Status back = runner.to_host(); !back.ok()) return finish("failed", back);
    stepper.reset();  // the GPU is given back before the result is written
    hapi->metric_add(s->ctx, s->m_tokens, static_cast<double>(tokens_seen));
    const Cost cost = meter.read(s->watts_per_core);
    run["results"] = {{"final_train_loss", last_loss}, {"final_validation_loss", std::isfinite(last_val) ? Json(last_val) : Json(nullptr)},
                      {"final_validation_perplexity", std::isfinite(last_val) ? Json(std::exp(last_val)) : Json(nullptr)},
                      {"best_validation_loss", std::isfinite(best_val) ? Json(best_val) : Json(nullptr)},
                      {"stopped_early", stopped_early}, {"seconds", secs}, {"tokens", tokens_seen},
                      {"tokens_per_s", secs > 0 ? static_cast<double>(tokens_seen) / secs : 0.0}, {"cpu_seconds", cost.cpu_seconds},
                      {"energy_joules", cost.joules}, {"energy_source", cost.source},
                      {"gpu_energy_joules", cost.has_gpu ? Json(cost.gpu_joules) : Json(nullptr)}, {"model", nullptr}};
    auto done = [&]() {
      llmops_error e{};
      if (!ckpt_blob.empty()) hapi->blob_ref(s->ctx, ckpt_blob.c_str(), -1, &e);  // the result is stored; the checkpoint is done with
      run.erase("checkpoint");
      hapi->metric_add(s->ctx, s->m_runs, 1);
      return finish("done", ok_status());
    };
    if (!h.register_model) return done();  // a search trial: its losses and cost are the result

    std::error_code ec;
    std::filesystem::create_directories(s->work_dir, ec);
    const engine::GgufFile* base_gguf = opened ? opened->model->gguf() : nullptr;
    const bool own_metadata = vocab || shape;
    if (lora) {
      // The adapters, in PEFT's and llama.cpp's formats, kept as blobs of the run.
      const std::string dir = s->work_dir + "/run-" + std::to_string(id) + "-adapter";
      std::filesystem::create_directories(dir, ec);
      // llama.cpp's adapter names the base's GGUF architecture; from a base that is not GGUF,
      // the one its conversion gets (and the q/k rows in that conversion's order).
      std::string arch = "llama";
      std::function<uint64_t(uint64_t)> gguf_qk_row;
      if (base_gguf != nullptr) {
        if (auto a = base_gguf->get_string("general.architecture"); a.ok()) arch = *a;
      } else if (auto layout = engine::gguf_layout(cfg); layout.ok()) {
        arch = layout->arch;
        gguf_qk_row = layout->qk_row;
      }
      if (Status st = write_adapters(t, run["base"]["name"], arch, dir, gguf_qk_row); !st.ok()) return finish("failed", st.with_context("writing the adapters"));
      Json adapter = Json::object();
      for (const char* f : {"adapter_model.safetensors", "adapter_config.json", "adapter.gguf"}) {
        char hex[65];
        llmops_error e{};
        if (hapi->blob_put_file(s->ctx, (dir + "/" + f).c_str(), hex, &e) != LLMOPS_OK) {
          std::filesystem::remove_all(dir, ec);
          return finish("failed", Status(static_cast<Code>(e.code), std::string("storing ") + f + ": " + e.message));
        }
        char path[4096];
        adapter[f] = {{"sha256", hex}};
        if (hapi->blob_path(s->ctx, hex, path, sizeof path, &e) == LLMOPS_OK) adapter[f]["path"] = path;
      }
      std::filesystem::remove_all(dir, ec);
      run["results"]["adapter"] = adapter;
      if (!h.merge) return done();
      t.merge_lora();
    }
    // The result: GGUF with the base's metadata (or, from a base that is not GGUF, what GGUF
    // export writes for it), imported by the serving stage as a new version.
    const std::string out_path = s->work_dir + "/run-" + std::to_string(id) + ".gguf";
    Status written = own_metadata ? write_scratch_gguf(t, vocab ? &*vocab : nullptr, base_gguf, run["output"], out_path)
                     : base_gguf != nullptr
                         ? write_gguf(t, *base_gguf, out_path)
                         : write_converted_gguf(t, *opened->model, tok, opened->chat ? std::string_view(opened->chat->source()) : std::string_view(),
                                                run["output"], out_path);
    if (!written.ok()) return finish("failed", written.with_context("writing the trained model"));
    // The version keeps where it came from.
    Json lineage = {{"stage", "tuning"}, {"run", id}, {"base", run["base"].value("name", "")}, {"data", run["data"]},
                    {"method", h.method}, {"hyperparameters", run["hyperparameters"]}, {"code_version", run["code_version"]},
                    {"final_train_loss", run["results"]["final_train_loss"]}, {"final_validation_loss", run["results"]["final_validation_loss"]}};
    if (run.contains("shape") && !run["shape"].is_null()) lineage["shape"] = run["shape"];
    if (run.contains("tokenizer")) lineage["tokenizer"] = run["tokenizer"];
    if (run["data"].contains("report")) lineage["data"].erase("report");
    Json import = {{"path", out_path}, {"name", run["output"]}, {"lineage", lineage}};
    int status = 0;
    std::string body;
    llmops_error e{};
    const llmops_code rc = s->sdk().peer(LLMOPS_PLANE_ADMIN, "POST", "/v1/modules/serving/models", dump_json(import), &status, &body, &e);
    std::filesystem::remove(out_path, ec);
    if (rc != LLMOPS_OK || status >= 300) {
      return finish("failed", unavailable("the serving stage did not import the trained model (" + (rc != LLMOPS_OK ? std::string(e.message) : body.substr(0, 300)) + ")"));
    }
    run["results"]["model"] = run["output"];
    hapi->job_progress(job, static_cast<double>(total), static_cast<double>(total), ("made model " + run["output"].get<std::string>()).c_str());
    return done();
  }
}

}  // namespace llmops::tuning
