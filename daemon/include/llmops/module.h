/*
 * llmops module SDK: the C boundary between llmopsd (the host) and a stage module (.so).
 *
 * Version rule: a module is loaded only when its abi_major equals the host's LLMOPS_ABI_MAJOR
 * and the host's minor is >= the module's abi_minor. Structs grow only by appending fields;
 * every struct starts with struct_size so either side can tell which fields the other has.
 * A change that is not an append bumps the major.
 *
 * A module exports exactly one symbol:
 *     const llmops_module_api *llmops_module_get_api(void);
 * returning a pointer to a static struct that lives as long as the .so is loaded. The loader
 * checks it before calling any entry point (see daemon/src/module_loader.cpp).
 *
 * Threads: init, start, reload, stop and fini are called from the host's main thread, in that
 * order, never concurrently. health may be called from any host thread at any time between
 * start and stop; it must be cheap and non-blocking. Route handlers, admin commands and job
 * functions run on host worker threads, possibly several at once.
 *
 * Errors cross as values: entry points return an llmops_code and, on failure, fill the
 * llmops_error they were given. No C++ exception may cross this boundary.
 */
#ifndef LLMOPS_MODULE_H
#define LLMOPS_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLMOPS_ABI_MAJOR 1
#define LLMOPS_ABI_MINOR 5

#define LLMOPS_EXPORT __attribute__((visibility("default")))

/* Same values as llmops::Code (daemon/common/status.h). */
typedef enum llmops_code {
  LLMOPS_OK = 0,
  LLMOPS_INVALID_ARGUMENT = 1,
  LLMOPS_NOT_FOUND = 2,
  LLMOPS_ALREADY_EXISTS = 3,
  LLMOPS_PERMISSION_DENIED = 4,
  LLMOPS_UNAUTHENTICATED = 5,
  LLMOPS_RESOURCE_EXHAUSTED = 6,
  LLMOPS_FAILED_PRECONDITION = 7,
  LLMOPS_ABORTED = 8,
  LLMOPS_CANCELLED = 9,
  LLMOPS_DEADLINE_EXCEEDED = 10,
  LLMOPS_UNAVAILABLE = 11,
  LLMOPS_UNIMPLEMENTED = 12,
  LLMOPS_DATA_LOSS = 13,
  LLMOPS_INTERNAL = 14
} llmops_code;

/* An error value. The callee writes a NUL-terminated message, truncated to fit. */
typedef struct llmops_error {
  llmops_code code;
  char message[512];
} llmops_error;

typedef enum llmops_log_level {
  LLMOPS_LOG_DEBUG = 0,
  LLMOPS_LOG_INFO = 1,
  LLMOPS_LOG_WARNING = 2,
  LLMOPS_LOG_ERROR = 3
} llmops_log_level;

typedef enum llmops_health_state {
  LLMOPS_HEALTH_OK = 0,
  LLMOPS_HEALTH_DEGRADED = 1,
  LLMOPS_HEALTH_FAILING = 2
} llmops_health_state;

typedef struct llmops_health {
  uint32_t struct_size;
  llmops_health_state state;
  char message[256];
} llmops_health;

/* Typed config schema entry. The host validates the module's section of llmopsd.conf
 * ("<module>.<key> = value") against it before init; values reach the module as strings
 * that already parse as their type and lie in [min, max]. */
typedef enum llmops_config_type {
  LLMOPS_CONFIG_STRING = 0,
  LLMOPS_CONFIG_INT = 1,
  LLMOPS_CONFIG_BOOL = 2,
  LLMOPS_CONFIG_DOUBLE = 3
} llmops_config_type;

typedef struct llmops_config_item {
  const char *key;           /* without the module prefix */
  llmops_config_type type;
  const char *default_value; /* NULL: required */
  double min, max;           /* for INT and DOUBLE; ignored when min > max */
  const char *help;
} llmops_config_item;

/* Opaque handle the host gives each loaded module; the module keeps its state on it. */
typedef struct llmops_module_ctx llmops_module_ctx;

/* ABI 1.2: what a labelled metric series is. */
typedef enum llmops_metric_kind {
  LLMOPS_METRIC_COUNTER = 0,
  LLMOPS_METRIC_GAUGE = 1,
  LLMOPS_METRIC_HISTOGRAM = 2
} llmops_metric_kind;

/* ---- HTTP routes and admin commands ---------------------------------------------------- */

typedef enum llmops_plane {
  LLMOPS_PLANE_DATA = 0,  /* the TCP HTTP endpoint for apps (API keys) */
  LLMOPS_PLANE_ADMIN = 1  /* the Unix socket for llmopsctl (peer credentials, audited) */
} llmops_plane;

/* Borrowed view of a request; valid only during the handler call. */
typedef struct llmops_request {
  uint32_t struct_size;
  const char *method;  /* "GET", "POST", ... */
  const char *path;    /* without the query string */
  const char *query;   /* after '?', "" when none */
  const char *body;    /* not NUL-terminated */
  size_t body_size;
  const char *caller;  /* "uid:1000" on the admin plane, "key:<id>" or "anonymous" on data */
} llmops_request;

/* The handler fills the response through these host calls; the host owns the storage. */
typedef struct llmops_response llmops_response;

typedef llmops_code (*llmops_route_fn)(void *user, const llmops_request *req, llmops_response *resp);

/* ABI 1.1: a response body produced as it goes (chunked; Server-Sent Events, NDJSON). */
typedef struct llmops_stream llmops_stream;
typedef void (*llmops_stream_fn)(void *user, llmops_stream *stream);

/* ---- Jobs -------------------------------------------------------------------------------- */

typedef struct llmops_job llmops_job; /* host-owned handle given to a running job function */

/* ABI 1.4: a blob being written (see blob_begin). */
typedef struct llmops_blob_writer llmops_blob_writer;

/* Runs one job to its end, on a host job worker. Returns LLMOPS_OK when done,
 * LLMOPS_CANCELLED after seeing job_cancelled, LLMOPS_ABORTED when it stopped because the
 * host is shutting down (after writing a checkpoint when the kind is resumable), or an error. */
typedef llmops_code (*llmops_job_fn)(void *user, llmops_job *job, llmops_error *err);

/* ---- What the host gives a module ------------------------------------------------------- */

typedef struct llmops_host_api {
  uint32_t struct_size;
  uint16_t abi_major, abi_minor;

  /* Logging with the module's tag. Any thread. */
  void (*log)(llmops_module_ctx *ctx, llmops_log_level level, const char *message);

  /* Config: the validated value of "<module>.<key>", or NULL for an unknown key. The string
   * lives until the next reload returns. Main thread only. */
  const char *(*config_get)(llmops_module_ctx *ctx, const char *key);

  /* Module state hangs off the handle. Any thread. */
  void (*set_state)(llmops_module_ctx *ctx, void *state);
  void *(*get_state)(llmops_module_ctx *ctx);

  /* The module's own named LMDB database. Each call is one short transaction. Any thread.
   * kv_get calls `found` with a view valid only during the callback. kv_scan visits keys
   * with the prefix in byte order until `visit` returns non-zero. */
  llmops_code (*kv_put)(llmops_module_ctx *ctx, const void *key, size_t key_size, const void *value,
                        size_t value_size, llmops_error *err);
  llmops_code (*kv_get)(llmops_module_ctx *ctx, const void *key, size_t key_size,
                        void (*found)(void *user, const void *value, size_t size), void *user,
                        llmops_error *err);
  llmops_code (*kv_del)(llmops_module_ctx *ctx, const void *key, size_t key_size, llmops_error *err);
  llmops_code (*kv_scan)(llmops_module_ctx *ctx, const void *prefix, size_t prefix_size,
                         int (*visit)(void *user, const void *key, size_t key_size, const void *value,
                                      size_t value_size),
                         void *user, llmops_error *err);

  /* Content-addressed blobs (sha256). blob_put_file copies a file in and takes a reference;
   * hex_out receives 65 bytes. blob_path writes the blob's read-only path. Any thread. */
  llmops_code (*blob_put_file)(llmops_module_ctx *ctx, const char *path, char *hex_out, llmops_error *err);
  llmops_code (*blob_path)(llmops_module_ctx *ctx, const char *hex, char *path_out, size_t path_size,
                           llmops_error *err);
  llmops_code (*blob_ref)(llmops_module_ctx *ctx, const char *hex, int delta, llmops_error *err);

  /* Metrics: a counter or gauge named "llmops_<module>_<name>", registered during init. */
  uint32_t (*metric_register)(llmops_module_ctx *ctx, const char *name, const char *help, int is_gauge);
  void (*metric_add)(llmops_module_ctx *ctx, uint32_t metric, double delta);
  void (*metric_set)(llmops_module_ctx *ctx, uint32_t metric, double value);

  /* Routes, registered during init. Data-plane paths must start with "/v1/" or "/<module>/";
   * admin-plane paths are mounted under "/v1/modules/<module>". A segment "{name}" matches one
   * path segment and a last segment "*" any rest. Handlers run on a worker pool, not on the
   * network threads. */
  llmops_code (*route_register)(llmops_module_ctx *ctx, llmops_plane plane, const char *method,
                                const char *path, llmops_route_fn fn, void *user, llmops_error *err);
  void (*response_set_status)(llmops_response *resp, int http_status);
  void (*response_set_header)(llmops_response *resp, const char *name, const char *value);
  void (*response_append_body)(llmops_response *resp, const char *data, size_t size);

  /* Jobs: a kind is registered during init; submit stores the job in LMDB before it runs.
   * params is JSON text. job_id_out receives the new id. */
  llmops_code (*job_kind_register)(llmops_module_ctx *ctx, const char *kind, int resumable,
                                   llmops_job_fn fn, void *user, llmops_error *err);
  llmops_code (*job_submit)(llmops_module_ctx *ctx, const char *kind, const char *params_json,
                            uint64_t *job_id_out, llmops_error *err);

  /* Calls a running job makes on its handle (job worker thread only). */
  const char *(*job_params)(llmops_job *job);      /* JSON text, lives as long as the job call */
  const char *(*job_checkpoint)(llmops_job *job);  /* last saved checkpoint JSON, or NULL */
  llmops_code (*job_save_checkpoint)(llmops_job *job, const char *json, llmops_error *err);
  void (*job_progress)(llmops_job *job, double done, double total, const char *message);
  int (*job_cancelled)(llmops_job *job);  /* non-zero: cancelled by a user */
  int (*job_stopping)(llmops_job *job);   /* non-zero: the host is shutting down */
  uint64_t (*job_id)(llmops_job *job);

  /* ABI 1.1. response_stream makes the body a stream: after the handler returns, the status
   * and headers set so far are sent and fn(user, stream) runs on a worker thread, writing the
   * body with stream_write; the response ends when fn returns. fn owns `user` from this call
   * on (it frees it, also when stream_write reports the client gone). stream_write blocks while
   * the client is slow and returns 0 once the client has gone: stop producing then.
   * stream_client_gone polls the same without writing. Both: fn's thread only. */
  void (*response_stream)(llmops_response *resp, llmops_stream_fn fn, void *user);
  int (*stream_write)(llmops_stream *stream, const char *data, size_t size);
  int (*stream_client_gone)(llmops_stream *stream);

  /* ABI 1.1. Placement: how many threads the named pinned pool ("inference", "training") has
   * (0 for an unknown pool), and binding the calling thread (one the module made, such as an
   * engine worker) to that pool's CPUs and NUMA node. Any thread. */
  int (*placement_threads)(llmops_module_ctx *ctx, const char *pool);
  llmops_code (*placement_bind)(llmops_module_ctx *ctx, const char *pool, llmops_error *err);

  /* ABI 1.2. Labelled series, made at any time from any thread (when a model loads, say):
   * a counter, gauge or histogram named "llmops_<module>_<name>" with n_labels label names
   * and values. A histogram takes its buckets' upper bounds, ascending (NULL: latency buckets
   * in seconds, 0.5 ms to 60 s). Returns the series id, or UINT32_MAX for a bad call (a name
   * already used with another kind); the same name and labels give the same id. metric_add
   * and metric_set take these ids too; metric_observe records one histogram sample. */
  uint32_t (*metric_series)(llmops_module_ctx *ctx, const char *name, const char *help, llmops_metric_kind kind,
                            const char *const *label_names, const char *const *label_values, size_t n_labels,
                            const double *bounds, size_t n_bounds);
  void (*metric_observe)(llmops_module_ctx *ctx, uint32_t series, double value);

  /* ABI 1.2. Several puts and deletes in the module's database as one transaction (one disk
   * sync): a NULL value deletes its key (absent keys are fine). Any thread. */
  llmops_code (*kv_write_batch)(llmops_module_ctx *ctx, size_t n, const void *const *keys, const size_t *key_sizes,
                                const void *const *values, const size_t *value_sizes, llmops_error *err);

  /* ABI 1.3. Binds the calling thread to the CPUs nearest a PCI device (a GPU's
   * "0000:41:00.0") and its memory to their NUMA node: the thread that drives a GPU, and the
   * pinned buffers it allocates, sit next to it. LLMOPS_NOT_FOUND for a device the topology
   * does not list. Any thread. */
  llmops_code (*placement_bind_device)(llmops_module_ctx *ctx, const char *pci_bus_id, llmops_error *err);

  /* ABI 1.4. A blob streamed in without a staging file (dataset shards, uploads): blob_begin
   * makes a writer, blob_write appends (hashing as it goes), blob_commit makes it durable under
   * its sha256 with one reference taken (hex_out: 65 bytes; an identical blob gains the
   * reference) and frees the writer, blob_abort drops it and its temp file. Exactly one of
   * commit or abort per writer, also after a failed write. One thread at a time per writer. */
  llmops_code (*blob_begin)(llmops_module_ctx *ctx, llmops_blob_writer **out, llmops_error *err);
  llmops_code (*blob_write)(llmops_blob_writer *w, const void *data, size_t size, llmops_error *err);
  llmops_code (*blob_commit)(llmops_blob_writer *w, char *hex_out, uint64_t *size_out, llmops_error *err);
  void (*blob_abort)(llmops_blob_writer *w);

  /* ABI 1.5. Calls another stage's route in-process, as llmopsctl (admin plane) or an app (data
   * plane, no API key needed) would, so stages use each other's published API and never each
   * other's storage. path is the full path with any query ("/v1/modules/data/versions/x@2").
   * The response body goes to on_body in order: once, or once per chunk of a streamed body; a
   * non-zero return from on_body stops a stream. *http_status_out receives the status (the
   * error body of a 4xx/5xx still goes to on_body). LLMOPS_NOT_FOUND when no route matches.
   * The caller is "module:<name>". Blocking: call from a job or a route handler, never with a
   * lock the other stage may need. */
  llmops_code (*peer_call)(llmops_module_ctx *ctx, llmops_plane plane, const char *method, const char *path,
                           const void *body, size_t body_size, int *http_status_out,
                           int (*on_body)(void *user, const char *data, size_t size), void *user, llmops_error *err);
} llmops_host_api;

/* ---- What a module gives the host -------------------------------------------------------- */

typedef struct llmops_module_api {
  uint32_t struct_size;
  uint16_t abi_major, abi_minor;
  const char *name;        /* must equal the file name: llmops_<name>.so */
  const char *version;     /* the module's own version, e.g. "0.1.0" */
  const char *stage;       /* one of data prompts tuning eval registry serving monitor pipelines, or "extension" */
  const char *description;
  int implemented;         /* 0: a placeholder that reports only version and health */

  const llmops_config_item *config_schema; /* may be NULL */
  size_t config_schema_size;

  /* Required. Register routes, job kinds and metrics here; no threads of your own. Keep the
   * host table (it lives as long as the process) in the state you set with set_state: every
   * later entry point receives that state. */
  llmops_code (*init)(llmops_module_ctx *ctx, const llmops_host_api *host, llmops_error *err);
  /* Optional. Called once the store and all modules are initialised, before READY. */
  llmops_code (*start)(llmops_module_ctx *ctx, void *state, llmops_error *err);
  /* Optional. Config was re-read; config_get returns new values. */
  llmops_code (*reload)(llmops_module_ctx *ctx, void *state, llmops_error *err);
  /* Optional. Stop accepting work; in-flight work is drained by the host. */
  void (*stop)(llmops_module_ctx *ctx, void *state);
  /* Optional. Free the state set with set_state; nothing of the module runs afterwards. */
  void (*fini)(llmops_module_ctx *ctx, void *state);
  /* Optional (the host reports OK when absent). Cheap, any thread. */
  llmops_code (*health)(llmops_module_ctx *ctx, void *state, llmops_health *out);
} llmops_module_api;

typedef const llmops_module_api *(*llmops_module_get_api_fn)(void);
#define LLMOPS_MODULE_ENTRY "llmops_module_get_api"

#ifdef __cplusplus
}
#endif

#endif /* LLMOPS_MODULE_H */
