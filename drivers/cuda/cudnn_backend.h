// A thin layer over cuDNN's backend graph API (cudnnBackend* calls, no frontend library),
// opened with dlopen: the entry points, and Graph, which builds one operation graph from
// tensors and operations and picks an execution plan for it. cudnn_sdpa.cu builds attention
// with it.
#pragma once

#include <cudnn_graph.h>

#include <array>
#include <string>
#include <vector>

namespace llmops::cuda::cudnn_backend {

// The cuDNN entry points we call, looked up once per process. The library stays loaded: cuDNN
// does not promise to survive being unloaded, and descriptors may outlive any one CudnnSdpa.
struct Api {
  decltype(&::cudnnGetVersion) GetVersion = nullptr;
  decltype(&::cudnnGetErrorString) GetErrorString = nullptr;
  decltype(&::cudnnGetLastErrorString) GetLastErrorString = nullptr;  // optional
  decltype(&::cudnnCreate) Create = nullptr;
  decltype(&::cudnnDestroy) Destroy = nullptr;
  decltype(&::cudnnSetStream) SetStream = nullptr;
  decltype(&::cudnnBackendCreateDescriptor) CreateDescriptor = nullptr;
  decltype(&::cudnnBackendDestroyDescriptor) DestroyDescriptor = nullptr;
  decltype(&::cudnnBackendSetAttribute) SetAttribute = nullptr;
  decltype(&::cudnnBackendGetAttribute) GetAttribute = nullptr;
  decltype(&::cudnnBackendFinalize) Finalize = nullptr;
  decltype(&::cudnnBackendExecute) Execute = nullptr;
  int version = 0;
  std::string error;  // empty when usable
};

// The entry points, loaded on first use (error says why they cannot be used).
const Api& api();
// A status in words, with cuDNN's last error message when it keeps one.
std::string status_words(cudnnStatus_t st);

inline void say(std::string* why, const std::string& text) {
  if (why != nullptr) *why = text;
}

using Dims = std::array<int64_t, 4>;

// Virtual tensors are numbered from here; real ones (the variant pack names them) below.
constexpr int64_t kFirstVirtualUid = 100;

// One operation graph and the execution plan chosen for it. Owns every descriptor it made and
// keeps them all alive as long as the plan: the plan refers to the graph and engine config, and
// cuDNN does not say it copies them. Construction errors are sticky: after the first failure
// every call does nothing and error() says what failed.
class Graph {
 public:
  explicit Graph(cudnnHandle_t handle) : handle_(handle) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph() {
    const Api& a = api();
    for (auto it = owned_.rbegin(); it != owned_.rend(); ++it) a.DestroyDescriptor(*it);
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  cudnnBackendDescriptor_t plan() const { return plan_; }
  int64_t workspace() const { return workspace_; }

  cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t type, const Dims& dims, const Dims& strides,
                                  bool is_virtual = false, bool by_value = false) {
    cudnnBackendDescriptor_t t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    const int64_t alignment = 16;
    set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid");
    set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor data type");
    set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data(), "tensor dims");
    set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data(), "tensor strides");
    set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, "tensor alignment");
    set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual flag");
    set(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "tensor by-value flag");
    finalize(t, "tensor");
    return t;
  }
  cudnnBackendDescriptor_t virt(cudnnDataType_t type, const Dims& dims, const Dims& strides) {
    return tensor(next_virtual_++, type, dims, strides, true);
  }
  // A float passed by value at execution: the variant pack points at host memory.
  cudnnBackendDescriptor_t scalar(int64_t uid) {
    return tensor(uid, CUDNN_DATA_FLOAT, Dims{1, 1, 1, 1}, Dims{1, 1, 1, 1}, false, true);
  }

  // y = mode(x [, b [, t]]); axis only for GEN_INDEX. Alphas are 1, as the frontend sets them.
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t math, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                 int64_t axis = -1) {
    cudnnBackendDescriptor_t pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise descriptor");
    set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &math, "pointwise precision");
    if (axis >= 0) set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
    finalize(pw, "pointwise descriptor");
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise op");
    link(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, "pointwise op descriptor");
    link(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, "pointwise x");
    if (b != nullptr) link(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, "pointwise b");
    if (t != nullptr) link(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, "pointwise t");
    link(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, "pointwise y");
    const float one = 1.0f;
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, "pointwise alpha1");
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, "pointwise alpha2");
    finalize(op, "pointwise op");
    ops_.push_back(op);
  }

  void reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t rd = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction descriptor");
    const cudnnDataType_t math = CUDNN_DATA_FLOAT;
    set(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, "reduction operator");
    set(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &math, "reduction precision");
    finalize(rd, "reduction descriptor");
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction op");
    link(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, "reduction x");
    link(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, "reduction y");
    link(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, rd, "reduction op descriptor");
    finalize(op, "reduction op");
    ops_.push_back(op);
  }

  void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
    cudnnBackendDescriptor_t md = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul descriptor");
    const cudnnDataType_t math = CUDNN_DATA_FLOAT;
    set(md, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &math, "matmul precision");
    finalize(md, "matmul descriptor");
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul op");
    link(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, "matmul a");
    link(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, "matmul b");
    link(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, "matmul c");
    link(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, md, "matmul op descriptor");
    finalize(op, "matmul op");
    ops_.push_back(op);
  }

  // Same elements seen through other dims/strides (the transposes of the backward).
  void reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "reshape op");
    link(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x, "reshape x");
    link(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y, "reshape y");
    finalize(op, "reshape op");
    ops_.push_back(op);
  }

  // Finalizes the operation graph of the ops added so far (without a handle too: cuDNN then
  // checks the graph alone, which is how it is tested on machines with no GPU).
  void finalize_graph() {
    if (!ok() || graph_ != nullptr) return;
    cudnnBackendDescriptor_t graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    if (handle_ != nullptr) set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_, "graph handle");
    set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, static_cast<int64_t>(ops_.size()),
        ops_.data(), "graph ops");
    finalize(graph, "operation graph");
    if (ok()) graph_ = graph;
  }

  // Finalizes the operation graph and keeps the first engine config, from heuristics mode A
  // and then FALLBACK, whose execution plan finalizes.
  void choose_plan() {
    finalize_graph();
    if (!ok()) return;
    cudnnBackendDescriptor_t graph = graph_;

    const Api& a = api();
    std::string last;  // why the last candidate failed
    int tried = 0;
    for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
      const char* mode_name = mode == CUDNN_HEUR_MODE_A ? "heuristics A" : "heuristics fallback";
      cudnnBackendDescriptor_t heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, mode_name);
      if (!ok()) return;
      cudnnStatus_t st = a.SetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                        1, &graph);
      if (st == CUDNN_STATUS_SUCCESS) st = a.SetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
      if (st == CUDNN_STATUS_SUCCESS) st = a.Finalize(heur);
      int64_t count = 0;
      if (st == CUDNN_STATUS_SUCCESS)
        st = a.GetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr);
      if (st != CUDNN_STATUS_SUCCESS) {
        last = std::string(mode_name) + ": " + status_words(st);
        continue;
      }
      if (count <= 0) continue;
      // Heuristics fill engine configs the caller has created.
      std::vector<cudnnBackendDescriptor_t> configs;
      for (int64_t i = 0; i < count && ok(); ++i) configs.push_back(make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config"));
      if (!ok()) return;
      int64_t returned = 0;
      st = a.GetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned,
                          configs.data());
      if (st != CUDNN_STATUS_SUCCESS) {
        last = std::string(mode_name) + " results: " + status_words(st);
        continue;
      }
      for (int64_t i = 0; i < std::min(returned, count); ++i) {
        ++tried;
        cudnnBackendDescriptor_t plan = nullptr;
        st = a.CreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan);
        if (st != CUDNN_STATUS_SUCCESS) {
          last = "execution plan: " + status_words(st);
          continue;
        }
        st = a.SetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
        if (st == CUDNN_STATUS_SUCCESS)
          st = a.SetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                              &configs[static_cast<size_t>(i)]);
        if (st == CUDNN_STATUS_SUCCESS) st = a.Finalize(plan);
        int64_t bytes = 0, n = 0;
        if (st == CUDNN_STATUS_SUCCESS)
          st = a.GetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &bytes);
        if (st != CUDNN_STATUS_SUCCESS || bytes < 0) {
          last = std::string(mode_name) + " config " + std::to_string(i) + ": " + status_words(st);
          a.DestroyDescriptor(plan);
          continue;
        }
        owned_.push_back(plan);
        plan_ = plan;
        workspace_ = bytes;
        return;
      }
    }
    error_ = "no cuDNN engine takes this graph (" + std::to_string(tried) + " engine configs tried" +
             (last.empty() ? std::string(")") : "; last: " + last + ")");
  }

 private:
  cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t type, const char* what) {
    if (!ok()) return nullptr;
    cudnnBackendDescriptor_t d = nullptr;
    const cudnnStatus_t st = api().CreateDescriptor(type, &d);
    if (st != CUDNN_STATUS_SUCCESS) {
      fail(std::string("create ") + what, st);
      return nullptr;
    }
    owned_.push_back(d);
    return d;
  }
  void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
           int64_t count, const void* values, const char* what) {
    if (!ok()) return;
    const cudnnStatus_t st = api().SetAttribute(d, name, type, count, values);
    if (st != CUDNN_STATUS_SUCCESS) fail(std::string("set ") + what, st);
  }
  void link(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t value,
            const char* what) {
    set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value, what);
  }
  void finalize(cudnnBackendDescriptor_t d, const char* what) {
    if (!ok()) return;
    const cudnnStatus_t st = api().Finalize(d);
    if (st != CUDNN_STATUS_SUCCESS) fail(std::string("finalize ") + what, st);
  }
  void fail(const std::string& what, cudnnStatus_t st) {
    if (error_.empty()) error_ = what + ": " + status_words(st);
  }

  cudnnHandle_t handle_;
  std::vector<cudnnBackendDescriptor_t> owned_;  // every descriptor made, destroyed in reverse
  std::vector<cudnnBackendDescriptor_t> ops_;
  cudnnBackendDescriptor_t graph_ = nullptr;
  cudnnBackendDescriptor_t plan_ = nullptr;
  int64_t workspace_ = 0;
  int64_t next_virtual_ = kFirstVirtualUid;
  std::string error_;
};

}  // namespace llmops::cuda::cudnn_backend
