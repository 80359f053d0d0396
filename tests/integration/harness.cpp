#include "integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>

#include <gtest/gtest.h>
#include <thread>

namespace llmops::test {
namespace {

// A peer that closes first must not kill the test process.
const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string read_fd(int fd) {
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

std::string build_request(const std::string& method, const std::string& target, const std::string& body,
                          const std::map<std::string, std::string>& headers, const std::string& host) {
  std::string req = method + " " + target + " HTTP/1.1\r\n";
  bool has_host = false;
  for (const auto& [k, v] : headers) {
    if (strcasecmp(k.c_str(), "host") == 0) has_host = true;
    req += k + ": " + v + "\r\n";
  }
  if (!has_host) req += "Host: " + host + "\r\n";
  if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\nContent-Type: application/json\r\n";
  req += "Connection: close\r\n\r\n" + body;
  return req;
}

int unix_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string dechunk(const std::string& body) {
  std::string out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t len = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
    if (len == 0) break;
    out += body.substr(eol + 2, len);
    pos = eol + 2 + len + 2;
  }
  return out;
}

}  // namespace

Json HttpResult::json() const {
  auto j = Json::parse(body, nullptr, false);
  return j.is_discarded() ? Json() : j;
}

std::string synthetic_model(const std::string& shape, const std::string& type) {
  namespace fs = std::filesystem;
  const std::string dir = std::string(LLMOPS_BINARY_DIR) + "/test-models";
  const std::string path = dir + "/" + shape + "-" + type + ".gguf";
  if (fs::exists(path)) return path;
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto r = run_program({LLMOPS_SYNTH_PATH, "--shape", shape, "--type", type, "--out", tmp});
  if (r.exit_code != 0) {
    ADD_FAILURE() << "llmops-synth " << shape << " " << type << ": " << r.err;
    return "";
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    ADD_FAILURE() << "cannot move " << tmp << " to " << path << ": " << ec.message();
    return "";
  }
  return path;
}

bool eventually(const std::function<bool()>& pred, int timeout_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

int tcp_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string read_until_close(int fd, int timeout_ms) {
  std::string out;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count());
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) break;
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

HttpResult parse_http(const std::string& raw) {
  HttpResult r;
  size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  size_t pos = raw.find("\r\n") + 2;
  while (pos < head_end) {
    size_t eol = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = line.substr(colon + 2);
    }
    pos = eol + 2;
  }
  r.body = raw.substr(head_end + 4);
  if (r.headers["transfer-encoding"] == "chunked") r.body = dechunk(r.body);
  return r;
}

CtlResult run_program(const std::vector<std::string>& args, uid_t as_uid) {
  int out[2], err[2];
  if (::pipe(out) != 0 || ::pipe(err) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::close(out[0]);
    ::close(err[0]);
    if (as_uid != 0) {
      if (::setgid(as_uid) != 0 || ::setuid(as_uid) != 0) ::_exit(99);
    }
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  CtlResult r;
  std::thread t([&] { r.err = read_fd(err[0]); });
  r.out = read_fd(out[0]);
  t.join();
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

CtlResult run_ctl(const std::string& socket, const std::vector<std::string>& args, uid_t as_uid) {
  std::vector<std::string> full = {LLMOPSCTL_PATH};
  if (!socket.empty()) {
    full.push_back("--socket");
    full.push_back(socket);
  }
  full.insert(full.end(), args.begin(), args.end());
  return run_program(full, as_uid);
}

DaemonProcess::DaemonProcess(std::vector<std::string> extra, std::string config, bool with_testkit) : extra_(std::move(extra)) {
  namespace fs = std::filesystem;
  fs::create_directories(module_dir());
  for (const auto& e : fs::directory_iterator(LLMOPS_MODULE_DIR)) {
    fs::create_symlink(e.path(), module_dir() + "/" + e.path().filename().string());
  }
  if (with_testkit) fs::create_symlink(std::string(LLMOPS_FIXTURE_MODULE_DIR) + "/llmops_testkit.so", module_dir() + "/llmops_testkit.so");
  write_text(dir_.file("llmopsd.conf"), config);
  socket_ = dir_.file("run/admin.sock");
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0 && running()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

bool DaemonProcess::spawn() {
  ::unlink(dir_.file("run/llmopsd.json").c_str());
  pid_ = ::fork();
  if (pid_ < 0) return false;
  if (pid_ == 0) {
    int log = ::open(dir_.file("log.txt").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(log, 1);
    ::dup2(log, 2);
    for (const auto& [k, v] : env_) ::setenv(k.c_str(), v == "$PID" ? std::to_string(::getpid()).c_str() : v.c_str(), 1);
    std::vector<std::string> args = {LLMOPSD_PATH,   "--config",    dir_.file("llmopsd.conf"), "--state-dir",   dir_.file("state"),
                                     "--runtime-dir", dir_.file("run"), "--module-dir",         module_dir(),    "--http.listen",
                                     "127.0.0.1:0",   "--log-level", "debug"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return true;
}

bool DaemonProcess::start(int timeout_ms) {
  if (!spawn()) return false;
  bool up = eventually([&] { return std::filesystem::exists(dir_.file("run/llmopsd.json")) || !running(); }, timeout_ms);
  if (!up || !running()) return false;
  Json info = Json::parse(read_text(dir_.file("run/llmopsd.json")));
  port_ = info["http_port"].get<int>();
  socket_ = info["admin_socket"].get<std::string>();
  return true;
}

int DaemonProcess::start_expect_exit(int timeout_ms) {
  if (!spawn()) return -1;
  return wait_exit(timeout_ms);
}

void DaemonProcess::signal(int sig) { ::kill(pid_, sig); }

bool DaemonProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return r == 0;
}

int DaemonProcess::wait_exit(int timeout_ms) {
  if (pid_ <= 0) return -1;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

void DaemonProcess::kill9() {
  ::kill(pid_, SIGKILL);
  wait_exit(5000);
}

HttpResult DaemonProcess::get(const std::string& target, const std::map<std::string, std::string>& headers) {
  return request("GET", target, "", headers);
}

HttpResult DaemonProcess::request(const std::string& method, const std::string& target, const std::string& body,
                                  const std::map<std::string, std::string>& headers) {
  int fd = tcp_connect(port_);
  if (fd < 0) return {};
  std::string req = build_request(method, target, body, headers, "127.0.0.1:" + std::to_string(port_));
  (void)::write(fd, req.data(), req.size());
  std::string raw = read_until_close(fd, 15000);
  ::close(fd);
  return parse_http(raw);
}

HttpResult DaemonProcess::admin(const std::string& method, const std::string& target, const std::string& body) {
  int fd = unix_connect(socket_);
  if (fd < 0) return {};
  std::string req = build_request(method, target, body, {}, "localhost");
  (void)::write(fd, req.data(), req.size());
  std::string raw = read_until_close(fd, 15000);
  ::close(fd);
  return parse_http(raw);
}

CtlResult DaemonProcess::ctl(const std::vector<std::string>& args, uid_t as_uid) { return run_ctl(socket_, args, as_uid); }

std::string DaemonProcess::log() const { return read_text(dir_.file("log.txt")); }

// A byte-level BPE tokenizer.json for a vocabulary of `size`: the 256 byte symbols of GPT-2's
// byte-to-unicode map, <|endoftext|>, then three-letter pieces (no merges: they decode, and
// prompts encode to bytes).
std::string byte_level_tokenizer_json(int size) {
  Json vocab = Json::object();
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = printable ? b : 256 + extra++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    vocab[s] = b;
  }
  vocab["<|endoftext|>"] = 256;
  for (int id = 257, k = 0; id < size; ++id, ++k) {
    vocab[std::string{static_cast<char>('a' + k / 676), static_cast<char>('a' + k / 26 % 26), static_cast<char>('a' + k % 26)}] = id;
  }
  Json root = {{"version", "1.0"},
               {"added_tokens", Json::array({{{"id", 256}, {"content", "<|endoftext|>"}, {"special", true}}})},
               {"normalizer", nullptr},
               {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
               {"decoder", {{"type", "ByteLevel"}}}};
  root["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
                   {"vocab", vocab}, {"merges", Json::array()}};
  return root.dump();
}

}  // namespace llmops::test
