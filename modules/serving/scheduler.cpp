#include "serving/scheduler.h"

#include <algorithm>
#include <unordered_map>
#include <cmath>

#include "tokenizer/bpe.h"

namespace llmops::serving {

// ---------------------------------------------------------------------------------------------
// Request

bool Request::next(std::vector<Piece>* out, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return finished_ || !pieces_.empty(); });
  out->clear();
  out->swap(pieces_);
  return !finished_;
}

void Request::push(Piece p) {
  {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    if (completion_tokens_.load() == 0) ttft_s_ = std::chrono::duration<double>(now - submitted_).count();
    else gaps_.push_back(std::chrono::duration<float>(now - last_token_).count());
    last_token_ = now;
    completion_tokens_.fetch_add(1);
    pieces_.push_back(std::move(p));
  }
  cv_.notify_all();  // a system call only while a reader waits (see the stream's linger)
}

bool Request::wait_finished(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  return done_cv_.wait_for(lock, wait, [&] { return finished_; });
}

void Request::finish(std::string reason, Status error) {
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    finished_ = true;
    finish_reason_ = std::move(reason);
    error_ = std::move(error);
  }
  cv_.notify_all();
  done_cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Scheduler

struct Scheduler::Seq {
  std::shared_ptr<Request> req;
  std::unique_ptr<engine::Session> session;         // on the CPU
  std::unique_ptr<engine::GpuSession> gpu_session;  // or on the GPU
  engine::Sampler sampler;
  std::vector<int32_t> history;  // prompt, then every sampled token
  size_t prefilled = 0;          // prompt tokens in the cache
  int positions = 0;
  uint64_t kv_bytes = 0;
  std::string pending;           // decoded text not yet handed out (partial UTF-8, a possible stop)
  bool done = false;
  bool failed = false;           // the engine failed: its cache is not to be reused

  Seq(std::shared_ptr<Request> r, const engine::Model& m, int positions_, uint64_t kv_bytes_)
      : req(std::move(r)),
        sampler(m.config().vocab_size, req->params().sampling),
        history(req->prompt()),
        positions(positions_),
        kv_bytes(kv_bytes_) {}
  bool prefilling() const { return prefilled < req->prompt().size(); }
  int length() const { return session ? session->length() : gpu_session ? gpu_session->length() : 0; }
};

Scheduler::Scheduler(std::shared_ptr<const engine::Model> model, std::shared_ptr<const engine::Tokenizer> tokenizer,
                     SchedulerOptions options, std::unique_ptr<GpuExecution> gpu)
    : model_(std::move(model)),
      tok_(std::move(tokenizer)),
      opt_(std::move(options)),
      context_(opt_.context > 0 ? std::min(opt_.context, model_->config().seq_len) : model_->config().seq_len),
      pool_(std::max(1, opt_.threads), opt_.on_thread_start),
      runner_(*model_, &pool_, std::max(1, opt_.prefill_chunk) + std::max(1, opt_.max_sequences)),
      gpu_(std::move(gpu)) {
  if (gpu_) gpu_runner_ = std::make_unique<engine::GpuRunner>(*gpu_->model, std::max(1, opt_.prefill_chunk) + std::max(1, opt_.max_sequences));
  thread_ = std::thread([this] { loop(); });
}

std::string Scheduler::device() const {
  if (!gpu_) return "cpu";
  const auto& info = gpu_->device->info();
  return "cuda:" + std::to_string(gpu_->device->index()) + " " + info.name + " (" + info.pci_bus_id + ")";
}

Result<const float*> Scheduler::run(const std::vector<Row>& rows) {
  if (gpu_runner_) {
    std::vector<engine::GpuBatchToken> batch;
    batch.reserve(rows.size());
    for (const Row& r : rows) batch.push_back({r.seq->gpu_session.get(), r.token, r.pos, r.logits});
    return gpu_runner_->run(batch.data(), batch.size());
  }
  std::vector<engine::BatchToken> batch;
  batch.reserve(rows.size());
  for (const Row& r : rows) batch.push_back({r.seq->session.get(), r.token, r.pos, r.logits});
  return runner_.run(batch.data(), batch.size());
}

Result<std::vector<int32_t>> Scheduler::run_on_device(const std::vector<Row>& rows, const std::vector<Seq*>& wants) {
  std::vector<engine::GpuBatchToken> batch;
  batch.reserve(rows.size());
  for (const Row& r : rows) batch.push_back({r.seq->gpu_session.get(), r.token, r.pos, r.logits});
  if (std::all_of(wants.begin(), wants.end(), [](const Seq* s) { return s->req->params().sampling.plain_greedy(); })) {
    return gpu_runner_->run_greedy(batch.data(), batch.size());
  }
  // Each row's cuts and draw; the seen tokens (prompt and generated) with their counts for
  // the penalties. The draw's counter is the token's index in the generation, so a seeded
  // request repeats on the device whatever it is batched with.
  std::vector<llmops_drv_sampling> sampling;
  std::vector<int32_t> tokens, counts;
  std::unordered_map<int32_t, int32_t> seen;
  for (const Seq* s : wants) {
    const engine::SamplingParams& q = s->req->params().sampling;
    llmops_drv_sampling r{};
    r.temperature = q.temperature, r.top_p = q.top_p, r.min_p = q.min_p, r.top_k = q.top_k;
    r.repetition_penalty = q.repetition_penalty, r.frequency_penalty = q.frequency_penalty, r.presence_penalty = q.presence_penalty;
    r.seed = q.seed, r.counter = s->history.size() - s->req->prompt().size();
    r.penalty_first = static_cast<int32_t>(tokens.size());
    if (q.has_penalties()) {
      seen.clear();
      for (int32_t t : s->history) ++seen[t];
      for (auto [t, n] : seen) tokens.push_back(t), counts.push_back(n);
    }
    r.penalty_count = static_cast<int32_t>(tokens.size()) - r.penalty_first;
    sampling.push_back(r);
  }
  return gpu_runner_->run_sampled(batch.data(), batch.size(), sampling, tokens, counts);
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& r : waiting_) r->finish("cancelled", unavailable("the model was unloaded"));
}

uint64_t Scheduler::kv_bytes(int positions) const {
  return engine::Session::kv_cache_bytes(model_->config(), positions, gpu_ ? engine::KvType::kF32 : opt_.kv_type);
}

Status Scheduler::submit(const std::shared_ptr<Request>& r) {
  const int prompt = r->prompt_tokens();
  if (prompt <= 0) return invalid_argument("the prompt has no tokens");
  if (prompt >= context_) {
    return invalid_argument("the prompt has " + std::to_string(prompt) + " tokens; this model's context holds " + std::to_string(context_) +
                            " with room for at least one generated token: shorten the prompt");
  }
  const int positions = std::min(context_, prompt + std::max(1, r->params().max_tokens));
  const uint64_t need = kv_bytes(positions);
  if (need > opt_.kv_budget_bytes) {
    return invalid_argument("this request needs " + std::to_string(need >> 20) + " MiB of KV cache, more than the server's budget of " +
                            std::to_string(opt_.kv_budget_bytes >> 20) + " MiB: lower max_tokens or shorten the prompt");
  }
  std::shared_ptr<Request> bumped;
  {
    std::lock_guard lock(mu_);
    if (stop_) return unavailable("the model is being unloaded; retry");
    // Free sequence slots take requests at once; past them, max_queue may wait.
    const int free_slots = std::max(0, opt_.max_sequences - stats_.running);
    const int prio = r->params().priority;
    if (static_cast<int>(waiting_.size()) >= opt_.max_queue + free_slots) {
      // The queue is ordered by priority, so its last entry is the newest of the lowest.
      if (waiting_.empty() || waiting_.back()->params().priority >= prio) {
        return resource_exhausted("the model's queue is full (" + std::to_string(opt_.max_queue) + " requests waiting); retry shortly");
      }
      bumped = waiting_.back();
      waiting_.pop_back();
    }
    auto at = std::find_if(waiting_.begin(), waiting_.end(), [&](const auto& w) { return w->params().priority < prio; });
    waiting_.insert(at, r);
    stats_.waiting = static_cast<int>(waiting_.size());
  }
  if (bumped) bumped->finish("error", resource_exhausted("the model's queue is full and a higher-priority request took this one's place; retry shortly"));
  cv_.notify_all();
  return ok_status();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Result<std::vector<float>> Scheduler::embed(const std::vector<int32_t>& tokens) {
  if (tokens.empty()) return invalid_argument("the input has no tokens");
  if (static_cast<int>(tokens.size()) > context_) {
    return invalid_argument("the input has " + std::to_string(tokens.size()) + " tokens; this model's context holds " +
                            std::to_string(context_));
  }
  auto done = std::make_shared<std::promise<Result<std::vector<float>>>>();
  auto result = done->get_future();
  {
    std::lock_guard lock(mu_);
    if (stop_) return unavailable("the model is being unloaded; retry");
    exclusive_.push_back([this, &tokens, done] {
      engine::Session session(*model_, static_cast<int>(tokens.size()), &pool_);
      std::vector<engine::BatchToken> batch;
      for (size_t i = 0; i < tokens.size(); ++i) batch.push_back({&session, tokens[i], static_cast<int>(i), true});
      auto hidden = runner_.run(batch.data(), batch.size(), engine::Runner::Output::kHidden);
      if (!hidden.ok()) return done->set_value(hidden.status());
      const size_t dim = static_cast<size_t>(model_->config().dim);
      std::vector<float> mean(dim, 0.0f);
      for (size_t i = 0; i < tokens.size(); ++i) {
        for (size_t j = 0; j < dim; ++j) mean[j] += (*hidden)[i * dim + j];
      }
      double norm = 0;
      for (float v : mean) norm += static_cast<double>(v) * v;
      const float inv = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.0f;
      for (float& v : mean) v *= inv;
      done->set_value(std::move(mean));
    });
  }
  cv_.notify_all();
  return result.get();
}

void Scheduler::loop() {
  if (gpu_ && opt_.on_gpu_thread_start) {
    opt_.on_gpu_thread_start(gpu_->device->info().pci_bus_id);
  } else if (opt_.on_thread_start) {
    opt_.on_thread_start(0);
  }
  for (;;) {
    std::deque<std::function<void()>> tasks;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !waiting_.empty() || !running_.empty() || !exclusive_.empty(); });
      if (stop_) break;
      tasks.swap(exclusive_);
    }
    for (auto& task : tasks) task();
    admit();
    step();
  }
  std::deque<std::function<void()>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(exclusive_);
  }
  for (auto& task : left) task();  // embeddings queued before the stop still get their answer
  for (auto& s : running_) s->req->finish("cancelled", unavailable("the model was unloaded"));
  running_.clear();
}

// Moves waiting requests into the running batch while the sequence limit and the KV budget
// allow; the queue's order (priority, then arrival) is kept: a large request at the head waits
// for room rather than be overtaken indefinitely.
void Scheduler::admit() {
  std::lock_guard lock(mu_);
  uint64_t used = 0;
  for (const auto& s : running_) used += s->kv_bytes;
  while (!waiting_.empty() && static_cast<int>(running_.size()) < opt_.max_sequences) {
    std::shared_ptr<Request> r = waiting_.front();
    if (r->cancelled()) {
      waiting_.pop_front();
      r->finish("cancelled");
      continue;
    }
    const int positions = std::min(context_, r->prompt_tokens() + std::max(1, r->params().max_tokens));
    const uint64_t need = kv_bytes(positions);
    while (used + cache_bytes_ + need > opt_.kv_budget_bytes && !cache_.empty()) evict_lru();  // running sequences come first
    if (used + cache_bytes_ + need > opt_.kv_budget_bytes) break;
    waiting_.pop_front();
    r->queue_s_ = std::chrono::duration<double>(Clock::now() - r->submitted_).count();
    auto seq = std::make_unique<Seq>(std::move(r), *model_, positions, need);
    if (gpu_) {
      auto made = engine::GpuSession::create(*gpu_->model, positions);
      if (!made.ok()) {  // the device's memory is short of what the KV budget allowed
        seq->req->finish("error", made.status());
        continue;
      }
      seq->gpu_session = std::move(*made);
    } else {
      seq->session = std::make_unique<engine::Session>(*model_, positions, &pool_, opt_.kv_type);
    }
    running_.push_back(std::move(seq));
    reuse_prefix(*running_.back());
    stats_.prompt_tokens += running_.back()->req->prompt().size();
    used += need;
  }
  stats_.cached_prefixes = static_cast<int>(cache_.size());
  stats_.prefix_cache_bytes = cache_bytes_;
  stats_.running = static_cast<int>(running_.size());
  stats_.waiting = static_cast<int>(waiting_.size());
  stats_.kv_bytes_in_use = used;
}

// ---- the prefix cache -------------------------------------------------------------------------

void Scheduler::evict_lru() {
  auto oldest = std::min_element(cache_.begin(), cache_.end(), [](const auto& a, const auto& b) { return a.last_used < b.last_used; });
  cache_bytes_ -= oldest->bytes;
  cache_.erase(oldest);
}

// A finished sequence's cache joins the prefix cache, unless a cached entry already covers it;
// an entry it extends (an earlier turn of the same conversation) makes way for it.
void Scheduler::cache_finished(Seq& s) {
  if (!opt_.prefix_cache || opt_.prefix_cache_entries <= 0 || s.failed) return;
  const int length = s.length();
  if (length < 2) return;
  std::vector<int32_t> tokens(s.history.begin(), s.history.begin() + std::min<size_t>(static_cast<size_t>(length), s.history.size()));
  for (size_t i = 0; i < cache_.size(); ++i) {
    const auto& c = cache_[i].tokens;
    const size_t common = std::mismatch(c.begin(), c.end(), tokens.begin(), tokens.end()).first - c.begin();
    if (common == tokens.size()) return;  // covered
    if (common == c.size()) {             // extended: the new one replaces it
      cache_bytes_ -= cache_[i].bytes;
      cache_.erase(cache_.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  }
  CachedPrefix c;
  c.tokens = std::move(tokens);
  c.bytes = s.kv_bytes;
  c.session = std::move(s.session);
  c.gpu_session = std::move(s.gpu_session);
  c.last_used = ++cache_clock_;
  cache_bytes_ += c.bytes;
  cache_.push_back(std::move(c));
  while (static_cast<int>(cache_.size()) > opt_.prefix_cache_entries) evict_lru();
  uint64_t running = 0;
  for (const auto& r : running_) {
    if (!r->done) running += r->kv_bytes;
  }
  while (running + cache_bytes_ > opt_.kv_budget_bytes && !cache_.empty()) evict_lru();
}

// Starts a new sequence from the longest cached prefix of its prompt (all but the prompt's
// last token, whose logits are needed).
void Scheduler::reuse_prefix(Seq& s) {
  if (cache_.empty()) return;
  const auto& prompt = s.req->prompt();
  size_t best = 0;
  CachedPrefix* from = nullptr;
  for (auto& c : cache_) {
    const size_t common = std::mismatch(c.tokens.begin(), c.tokens.end(), prompt.begin(), prompt.end()).first - c.tokens.begin();
    if (common > best) best = common, from = &c;
  }
  best = std::min(best, prompt.size() - 1);
  if (best < 2 || from == nullptr) return;
  if (s.gpu_session) {
    auto taken = s.gpu_session->copy_prefix(*from->gpu_session, static_cast<int>(best));
    if (!taken.ok()) return;  // computed instead
    s.prefilled = static_cast<size_t>(*taken);
  } else {
    s.prefilled = static_cast<size_t>(s.session->copy_prefix(*from->session, static_cast<int>(best)));
  }
  from->last_used = ++cache_clock_;
  stats_.prefix_hit_tokens += s.prefilled;
}

bool Scheduler::step() {
  const auto now = Clock::now();
  // Sequences whose client went away or whose time is up leave before the batch is built.
  for (auto& s : running_) {
    if (s->req->cancelled()) {
      s->req->finish("cancelled");
      s->done = true;
    } else if (now > s->req->params().deadline) {
      s->req->finish("error", deadline_exceeded("the request ran past its timeout"));
      s->done = true;
    }
  }
  std::vector<Row> batch;
  std::vector<Seq*> wants;  // the sequence of each row of logits, in order
  for (auto& s : running_) {
    if (s->done || s->prefilling()) continue;
    batch.push_back({s.get(), s->history.back(), static_cast<int>(s->history.size()) - 1, true});
    wants.push_back(s.get());
  }
  int budget = std::max(1, opt_.prefill_chunk);
  std::vector<std::pair<Seq*, size_t>> progress;  // prompt tokens in the cache after this batch
  for (auto& s : running_) {
    if (s->done || !s->prefilling() || budget == 0) continue;
    const auto& prompt = s->req->prompt();
    const size_t n = std::min(prompt.size() - s->prefilled, static_cast<size_t>(budget));
    for (size_t i = 0; i < n; ++i) {
      const size_t pos = s->prefilled + i;
      const bool last = pos + 1 == prompt.size();
      batch.push_back({s.get(), prompt[pos], static_cast<int>(pos), last});
      if (last) wants.push_back(s.get());
    }
    budget -= static_cast<int>(n);
    progress.emplace_back(s.get(), s->prefilled + n);
  }
  if (!batch.empty()) {
    // On a GPU, tokens are chosen there (greedy by the host sampler's rule, the first largest
    // logit; sampled by the same cuts, with the device's own draws), so no logits cross the bus;
    // a step with a row that wants logprobs reads the logits and samples on the host.
    const bool on_device =
        gpu_runner_ && std::none_of(wants.begin(), wants.end(), [](const Seq* s) { return s->req->params().top_logprobs >= 0; });
    Status failed = ok_status();
    if (on_device) {
      auto ids = run_on_device(batch, wants);
      if (ids.ok()) {
        for (auto [s, n] : progress) s->prefilled = n;
        for (size_t i = 0; i < wants.size(); ++i) emit(*wants[i], (*ids)[i], nullptr);
      }
      failed = ids.status();
    } else {
      auto logits = run(batch);
      if (logits.ok()) {
        for (auto [s, n] : progress) s->prefilled = n;
        const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
        for (size_t i = 0; i < wants.size(); ++i) {
          Seq& s = *wants[i];
          const float* row = *logits + i * vocab;
          emit(s, s.sampler.sample(row, s.history), row);
        }
      }
      failed = logits.status();
    }
    if (!failed.ok()) {
      // A bad token id or position would be ours, not the client's: fail the batch's requests.
      for (auto& s : running_) {
        if (!s->done) s->req->finish("error", failed), s->done = true, s->failed = true;
      }
    }
    std::lock_guard lock(mu_);
    ++stats_.steps;
  }
  for (auto& s : running_) {
    if (s->done) cache_finished(*s);
  }
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const auto& s) { return s->done; }), running_.end());
  uint64_t used = 0;
  for (const auto& s : running_) used += s->kv_bytes;
  std::lock_guard lock(mu_);
  stats_.running = static_cast<int>(running_.size());
  stats_.kv_bytes_in_use = used;
  stats_.cached_prefixes = static_cast<int>(cache_.size());
  stats_.prefix_cache_bytes = cache_bytes_;
  return !batch.empty();
}

namespace {

// Bytes at the end of text that could begin one of the stop strings: held back until the next
// tokens show whether a stop follows.
size_t stop_prefix_at_end(const std::string& text, const std::vector<std::string>& stops) {
  size_t keep = 0;
  for (const auto& stop : stops) {
    for (size_t k = std::min(stop.size() - 1, text.size()); k > keep; --k) {
      if (text.compare(text.size() - k, k, stop, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  return keep;
}

}  // namespace

void Scheduler::emit(Seq& s, int32_t token, const float* logits) {
  const GenerationParams& p = s.req->params();
  const int vocab = model_->config().vocab_size;
  Piece piece;
  piece.id = token;
  if (p.top_logprobs >= 0) {
    piece.logprob = engine::token_logprob(logits, vocab, token);
    if (p.top_logprobs > 0) piece.top = engine::top_logprobs(logits, vocab, p.top_logprobs);
  }
  s.history.push_back(token);
  const int generated = static_cast<int>(s.history.size() - s.req->prompt().size());
  {
    std::lock_guard lock(mu_);
    ++stats_.tokens_generated;
  }
  if (tok_->is_eog(token) && !p.ignore_eos) {
    // The end-of-generation token is not text: hand out what was held back and stop.
    piece.text = std::move(s.pending);
    s.req->push(std::move(piece));
    s.req->finish("stop");
    s.done = true;
    return;
  }
  const auto& prompt = s.req->prompt();
  const bool after_bos = generated == 1 && prompt.size() == 1 && prompt[0] == tok_->bos_id();
  s.pending += tok_->decode_piece(token, after_bos);
  for (const auto& stop : p.stop) {
    size_t at = s.pending.find(stop);
    if (at == std::string::npos) continue;
    // The earliest stop wins; the text ends before it.
    for (const auto& other : p.stop) at = std::min(at, s.pending.find(other));
    piece.text = s.pending.substr(0, at);
    s.req->push(std::move(piece));
    s.req->finish("stop");
    s.done = true;
    return;
  }
  const bool last = generated >= p.max_tokens || static_cast<int>(s.history.size()) >= s.positions;
  size_t upto = s.pending.size();
  if (!last) {
    upto -= stop_prefix_at_end(s.pending, p.stop);
    upto = engine::complete_utf8_prefix(std::string_view(s.pending).substr(0, upto));
  }
  piece.text = s.pending.substr(0, upto);
  s.pending.erase(0, upto);
  s.req->push(std::move(piece));
  if (last) {
    s.req->finish("length");
    s.done = true;
  }
}

}  // namespace llmops::serving
