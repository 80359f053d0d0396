// Black-box harness: starts a real llmopsd on a temporary state directory and a free port, and
// talks to it over HTTP (TCP and the admin Unix socket) and through the real llmopsctl binary.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "json.h"
#include "unit/test_util.h"

namespace llmops::test {

// A file of ../shared, the models and test vectors beside the checkout.
inline std::string shared(const std::string& rel) { return std::string(LLMOPS_SOURCE_DIR) + "/../shared/" + rel; }
inline const std::string kStoriesGguf = "models/stories260K/stories260K.gguf";

// Skips the test, saying why, when ../shared lacks stories260K.
#define LLMOPS_REQUIRE_STORIES(why)                                                                              \
  do {                                                                                                           \
    if (!std::filesystem::exists(::llmops::test::shared(::llmops::test::kStoriesGguf))) {                        \
      GTEST_SKIP() << "../shared is absent (" << ::llmops::test::shared(::llmops::test::kStoriesGguf) << " not found): " << why; \
    }                                                                                                            \
  } while (0)

struct HttpResult {
  int status = 0;  // 0: no HTTP answer (connection closed or refused)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  Json json() const;
};

struct CtlResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class DaemonProcess {
 public:
  // extra: more command-line flags; config: the config file's text (may be empty).
  explicit DaemonProcess(std::vector<std::string> extra = {}, std::string config = "", bool with_testkit = true);
  ~DaemonProcess();

  // Starts and waits until the runtime file appears (the daemon is ready). false on failure.
  bool start(int timeout_ms = 10000);
  // Starts and waits for the process to exit by itself (start failure); returns its exit code.
  int start_expect_exit(int timeout_ms = 10000);
  void signal(int sig);
  int wait_exit(int timeout_ms);  // exit code, 128+signal, or -1 on timeout
  bool running();
  void kill9();

  HttpResult get(const std::string& target, const std::map<std::string, std::string>& headers = {});
  HttpResult request(const std::string& method, const std::string& target, const std::string& body = "",
                     const std::map<std::string, std::string>& headers = {});
  HttpResult admin(const std::string& method, const std::string& target, const std::string& body = "");
  CtlResult ctl(const std::vector<std::string>& args, uid_t as_uid = 0);

  std::string log() const;
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& socket_path() const { return socket_; }
  const TempDir& dir() const { return dir_; }
  std::string module_dir() const { return dir_.file("modules"); }
  std::map<std::string, std::string>& env() { return env_; }
  std::vector<std::string>& extra_args() { return extra_; }

 private:
  bool spawn();
  TempDir dir_;
  std::vector<std::string> extra_;
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string socket_;
};

// Raw TCP for malformed and slow clients: connect, send bytes, read until close or timeout.
int tcp_connect(int port);
std::string read_until_close(int fd, int timeout_ms);
HttpResult parse_http(const std::string& raw);
// Runs argv[0] with argv, optionally as another uid, and captures stdout, stderr and the exit code.
CtlResult run_program(const std::vector<std::string>& argv, uid_t as_uid = 0);
// A byte-level BPE tokenizer.json for a vocabulary of size (llmops-synth's byte-level one).
std::string byte_level_tokenizer_json(int size);
CtlResult run_ctl(const std::string& socket, const std::vector<std::string>& args, uid_t as_uid = 0);
// A synthetic model (llmops-synth --shape --type), made once per build tree and kept under
// build/test-models (parallel test processes race safely: each writes its own temp file and
// renames it). The path, or "" after a test failure saying why.
std::string synthetic_model(const std::string& shape, const std::string& type);
// Waits for pred() up to timeout_ms, polling.
bool eventually(const std::function<bool()>& pred, int timeout_ms);

// llmopsctl --json ARGS, expecting success (the daemon's log tail on failure); null when the
// output is not JSON.
inline Json ctl_json(DaemonProcess& d, std::vector<std::string> args) {
  args.insert(args.begin(), "--json");
  auto r = d.ctl(args);
  const std::string log = d.log();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
  auto j = Json::parse(r.out, nullptr, false);
  return j.is_discarded() ? Json() : j;
}

// The last JSON document of a --json output that prints job progress lines first.
inline Json last_json(const std::string& out) {
  size_t at = out.rfind("\n{");
  auto j = Json::parse(at == std::string::npos ? out : out.substr(at + 1), nullptr, false);
  return j.is_discarded() ? Json() : j;
}

}  // namespace llmops::test
