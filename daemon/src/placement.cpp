#include "placement.h"

#include <sys/syscall.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "log.h"

namespace llmops {

std::string bitmap_list(hwloc_const_bitmap_t b) {
  char* s = nullptr;
  hwloc_bitmap_list_asprintf(&s, b);
  std::string out = s != nullptr ? s : "";
  free(s);
  return out;
}

Topology::~Topology() {
  if (topo_ != nullptr) hwloc_topology_destroy(topo_);
}

Result<std::unique_ptr<Topology>> Topology::load() {
  std::unique_ptr<Topology> t(new Topology());
  if (hwloc_topology_init(&t->topo_) != 0) return internal_error("hwloc_topology_init failed");
  // Keep GPUs and co-processors (CUDA, NVML, OpenCL OS devices) with their PCI ancestry.
  hwloc_topology_set_io_types_filter(t->topo_, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if (hwloc_topology_load(t->topo_) != 0) return internal_error("hwloc could not read the machine topology");
  return t;
}

std::string Topology::numa_nodes_of(hwloc_const_bitmap_t cpus) const {
  Bitmap nodes(hwloc_bitmap_alloc());
  hwloc_cpuset_to_nodeset(topo_, cpus, nodes.get());
  return bitmap_list(nodes.get());
}

int Topology::pu_count() const {
  return hwloc_bitmap_weight(hwloc_topology_get_allowed_cpuset(topo_));
}

Result<Bitmap> Topology::resolve_cpus(const std::string& spec) const {
  hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topo_);
  Bitmap set(hwloc_bitmap_alloc());
  if (spec.empty()) {
    hwloc_bitmap_copy(set.get(), allowed);
  } else if (spec.rfind("numa:", 0) == 0) {
    std::string idx = spec.substr(5);
    if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos) {
      return invalid_argument("'" + spec + "' is not numa:N");
    }
    unsigned os_index = static_cast<unsigned>(std::stoul(idx));
    hwloc_obj_t node = nullptr;
    while ((node = hwloc_get_next_obj_by_type(topo_, HWLOC_OBJ_NUMANODE, node)) != nullptr) {
      if (node->os_index == os_index) break;
    }
    if (node == nullptr) return invalid_argument("there is no NUMA node " + idx + " on this machine (see llmopsctl topology)");
    hwloc_bitmap_and(set.get(), node->cpuset, allowed);
  } else {
    if (spec.find_first_not_of("0123456789,-") != std::string::npos || hwloc_bitmap_list_sscanf(set.get(), spec.c_str()) != 0) {
      return invalid_argument("'" + spec + "' is not a CPU list like 0-3,6 or numa:N");
    }
    if (!hwloc_bitmap_isincluded(set.get(), allowed)) {
      return invalid_argument("CPUs " + spec + " are not all available to this process (allowed: " + bitmap_list(allowed) + ")");
    }
  }
  if (hwloc_bitmap_iszero(set.get())) return invalid_argument("CPU set '" + spec + "' is empty");
  return set;
}

Status Topology::bind_current_thread(hwloc_const_bitmap_t cpus, std::string* note) const {
  if (hwloc_set_cpubind(topo_, cpus, HWLOC_CPUBIND_THREAD | HWLOC_CPUBIND_STRICT) != 0 &&
      hwloc_set_cpubind(topo_, cpus, HWLOC_CPUBIND_THREAD) != 0) {
    return errno_status("binding a worker thread to CPUs " + bitmap_list(cpus), errno);
  }
  Bitmap nodes(hwloc_bitmap_alloc());
  hwloc_cpuset_to_nodeset(topo_, cpus, nodes.get());
  if (hwloc_set_membind(topo_, nodes.get(), HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) != 0) {
    if (note != nullptr) *note = "memory binding to NUMA node(s) " + bitmap_list(nodes.get()) + " refused by the kernel: " + std::strerror(errno);
  }
  return ok_status();
}

Json Topology::describe() const {
  Json numa = Json::array();
  hwloc_obj_t node = nullptr;
  while ((node = hwloc_get_next_obj_by_type(topo_, HWLOC_OBJ_NUMANODE, node)) != nullptr) {
    numa.push_back({{"os_index", node->os_index},
                    {"memory_bytes", node->attr != nullptr ? node->attr->numanode.local_memory : 0},
                    {"cpus", bitmap_list(node->cpuset)}});
  }
  // GPUs: every PCI display/3D controller (Debian's hwloc has no CUDA/NVML plugin, so the PCI
  // device is what is always there), named by the OS devices hwloc found under it (cuda0,
  // nvml0, opencl0d0, card0) when a plugin provides them.
  Json gpus = Json::array();
  hwloc_obj_t pci = nullptr;
  while ((pci = hwloc_get_next_pcidev(topo_, pci)) != nullptr) {
    if ((pci->attr->pcidev.class_id >> 8) != 0x03) continue;
    std::string names, model;
    for (hwloc_obj_t child = pci->io_first_child; child != nullptr; child = child->next_sibling) {
      if (child->type != HWLOC_OBJ_OS_DEVICE) continue;
      if (child->name != nullptr) names += (names.empty() ? "" : ",") + std::string(child->name);
      if (const char* m = hwloc_obj_get_info_by_name(child, "GPUModel"); m != nullptr && model.empty()) model = m;
    }
    if (model.empty()) {
      const char* m = hwloc_obj_get_info_by_name(pci, "PCIDevice");
      model = m != nullptr ? m : "";
    }
    char busid[32];
    std::snprintf(busid, sizeof busid, "%04x:%02x:%02x.%01x", pci->attr->pcidev.domain, pci->attr->pcidev.bus,
                  pci->attr->pcidev.dev, pci->attr->pcidev.func);
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(topo_, pci);
    Bitmap nodes(hwloc_bitmap_alloc());
    if (anc != nullptr) hwloc_cpuset_to_nodeset(topo_, anc->cpuset, nodes.get());
    gpus.push_back({{"name", names.empty() ? std::string("pci:") + busid : names},
                    {"pci", busid},
                    {"vendor", pci->attr->pcidev.vendor_id == 0x10de ? "NVIDIA" : pci->attr->pcidev.vendor_id == 0x1002 ? "AMD" : "other"},
                    {"model", model},
                    {"near_cpus", anc != nullptr ? bitmap_list(anc->cpuset) : ""},
                    {"near_numa", bitmap_list(nodes.get())}});
  }
  return {{"numa_nodes", numa},
          {"packages", hwloc_get_nbobjs_by_type(topo_, HWLOC_OBJ_PACKAGE)},
          {"cores", hwloc_get_nbobjs_by_type(topo_, HWLOC_OBJ_CORE)},
          {"pus", hwloc_get_nbobjs_by_type(topo_, HWLOC_OBJ_PU)},
          {"allowed_cpus", bitmap_list(hwloc_topology_get_allowed_cpuset(topo_))},
          {"gpus", gpus}};
}

Result<Bitmap> Topology::near_cpus(const std::string& pci_bus_id) const {
  unsigned domain = 0, bus = 0, dev = 0, func = 0;
  char tail = 0;
  if (std::sscanf(pci_bus_id.c_str(), "%x:%x:%x.%x%c", &domain, &bus, &dev, &func, &tail) != 4) {
    return invalid_argument("'" + pci_bus_id + "' is not a PCI address like 0000:41:00.0");
  }
  hwloc_obj_t pci = hwloc_get_pcidev_by_busid(topo_, domain, bus, dev, func);
  if (pci == nullptr) return not_found("no PCI device " + pci_bus_id + " in this machine's topology (llmopsctl topology lists the GPUs)");
  hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(topo_, pci);
  hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topo_);
  Bitmap set(hwloc_bitmap_alloc());
  if (anc != nullptr) hwloc_bitmap_and(set.get(), anc->cpuset, allowed);
  if (hwloc_bitmap_iszero(set.get())) hwloc_bitmap_copy(set.get(), allowed);  // none of its near CPUs is ours: any
  return set;
}

WorkerPool::WorkerPool(std::string name, const Topology& topo, Bitmap cpus, int threads)
    : name_(std::move(name)), topo_(topo), cpus_(std::move(cpus)) {
  if (threads <= 0) threads = std::max(1, hwloc_bitmap_weight(cpus_.get()));
  tids_.assign(static_cast<size_t>(threads), 0);
  notes_.resize(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { worker(i); });
  std::unique_lock lock(mu_);
  started_cv_.wait(lock, [&] {
    for (pid_t t : tids_) {
      if (t == 0) return false;
    }
    return true;
  });
  for (const auto& n : notes_) {
    if (!n.empty()) {
      log_warning("placement", "pool " + name_ + ": " + n);
      break;
    }
  }
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

Status WorkerPool::bind_caller() const {
  std::string note;
  return topo_.bind_current_thread(cpus_.get(), &note);
}

void WorkerPool::worker(int index) {
  std::string note;
  Status st = topo_.bind_current_thread(cpus_.get(), &note);
  if (!st.ok()) note = st.message();
  {
    std::lock_guard lock(mu_);
    tids_[static_cast<size_t>(index)] = static_cast<pid_t>(::syscall(SYS_gettid));
    notes_[static_cast<size_t>(index)] = note;
  }
  started_cv_.notify_all();
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void WorkerPool::submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void WorkerPool::run(size_t n, const std::function<void(size_t, int)>& fn) {
  if (n == 0) return;
  std::mutex done_mu;
  std::condition_variable done_cv;
  std::atomic<size_t> next{0};
  size_t workers = std::min(n, threads_.size());
  size_t finished = 0;
  for (size_t w = 0; w < workers; ++w) {
    submit([&, w] {
      for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i, static_cast<int>(w));
      std::lock_guard lock(done_mu);
      if (++finished == workers) done_cv.notify_one();
    });
  }
  std::unique_lock lock(done_mu);
  done_cv.wait(lock, [&] { return finished == workers; });
}

std::vector<pid_t> WorkerPool::thread_ids() const {
  std::lock_guard lock(mu_);
  return tids_;
}

Json WorkerPool::describe() const {
  return {{"name", name_},
          {"threads", threads_.size()},
          {"cpus", bitmap_list(cpus_.get())},
          {"numa", topo_.numa_nodes_of(cpus_.get())}};
}

Result<std::unique_ptr<Placement>> Placement::create(const Config& config) {
  auto p = std::make_unique<Placement>();
  LLMOPS_ASSIGN_OR_RETURN(p->topology_, Topology::load());
  struct Want {
    const char* name;
    const PoolConfig* cfg;
  };
  for (Want w : {Want{"inference", &config.inference_pool}, Want{"training", &config.training_pool}}) {
    auto cpus = p->topology_->resolve_cpus(w.cfg->cpus);
    if (!cpus.ok()) return cpus.status().with_context(std::string("key 'placement.") + w.name + "-cpus'");
    p->pools_[w.name] = std::make_unique<WorkerPool>(w.name, *p->topology_, std::move(cpus).value(), w.cfg->threads);
  }
  return p;
}

WorkerPool* Placement::pool(const std::string& name) {
  auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : it->second.get();
}

Json Placement::describe() const {
  Json j = topology_->describe();
  Json pools = Json::array();
  for (const auto& [name, pool] : pools_) pools.push_back(pool->describe());
  j["pools"] = pools;
  return j;
}

}  // namespace llmops
