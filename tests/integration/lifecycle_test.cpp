// Process lifecycle, black-box: config checking, sd_notify, reload, drain, bad module files,
// restarts after kill -9.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <thread>

#include "integration/harness.h"

namespace llmops::test {
namespace {

int run_daemon_cmd(const std::vector<std::string>& args, std::string* output) {
  std::vector<std::string> full = {LLMOPSD_PATH};
  full.insert(full.end(), args.begin(), args.end());
  CtlResult r = run_program(full);
  *output = r.out + r.err;
  return r.exit_code;
}

TEST(Lifecycle, CheckConfigNamesTheBadKey) {
  TempDir dir;
  std::string out;
  write_text(dir.file("good.conf"), "[http]\nlisten = 127.0.0.1:9999\n[serving]\n");
  EXPECT_EQ(run_daemon_cmd({"--check-config", "--config", dir.file("good.conf"), "--module-dir", LLMOPS_MODULE_DIR}, &out), 0) << out;
  EXPECT_NE(out.find("configuration OK"), std::string::npos) << out;
  write_text(dir.file("bad.conf"), "[http]\nmax-connections = none\n");
  EXPECT_EQ(run_daemon_cmd({"--check-config", "--config", dir.file("bad.conf")}, &out), 2);
  EXPECT_NE(out.find("max-connections"), std::string::npos) << out;
  write_text(dir.file("mod.conf"), "[serving]\nturbo = yes\n");
  EXPECT_EQ(run_daemon_cmd({"--check-config", "--config", dir.file("mod.conf"), "--module-dir", LLMOPS_MODULE_DIR}, &out), 2);
  EXPECT_NE(out.find("serving.turbo"), std::string::npos) << out;
  write_text(dir.file("numa.conf"), "[placement]\ninference-cpus = numa:42\n");
  EXPECT_EQ(run_daemon_cmd({"--check-config", "--config", dir.file("numa.conf"), "--module-dir", LLMOPS_MODULE_DIR}, &out), 2);
  EXPECT_NE(out.find("placement.inference-cpus"), std::string::npos) << out;
  EXPECT_EQ(run_daemon_cmd({"--version"}, &out), 0);
  EXPECT_NE(out.find("llmopsd " LLMOPS_VERSION_STRING), std::string::npos);
  EXPECT_EQ(run_daemon_cmd({"--help"}, &out), 0);
  EXPECT_NE(out.find("http.max-body-bytes"), std::string::npos);
}

TEST(Lifecycle, BadConfigStopsTheStartNamingTheKey) {
  DaemonProcess d({}, "[admin]\nsocket-grup = x\n");
  EXPECT_EQ(d.start_expect_exit(), 2);
  EXPECT_NE(d.log().find("admin.socket-grup"), std::string::npos) << d.log();
}

// A datagram socket standing in for systemd's $NOTIFY_SOCKET.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    timeval tv{0, 100000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { ::close(fd_); }
  // Collects messages until one contains `needle` or the timeout passes.
  bool wait_for(const std::string& needle, int timeout_ms) {
    return eventually([&] {
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0) messages_.emplace_back(buf, static_cast<size_t>(n));
      for (const auto& m : messages_) {
        if (m.find(needle) != std::string::npos) return true;
      }
      return false;
    }, timeout_ms);
  }
  void clear() { messages_.clear(); }
  std::string all() const {
    std::string s;
    for (const auto& m : messages_) s += m + " | ";
    return s;
  }

 private:
  std::string path_;
  int fd_;
  std::vector<std::string> messages_;
};

TEST(Lifecycle, SdNotifyReadyWatchdogReloadStopping) {
  DaemonProcess d;
  NotifySocket notify(d.dir().file("notify.sock"));
  d.env()["NOTIFY_SOCKET"] = d.dir().file("notify.sock");
  d.env()["WATCHDOG_USEC"] = "200000";
  d.env()["WATCHDOG_PID"] = "$PID";
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_TRUE(notify.wait_for("READY=1", 3000)) << notify.all();
  EXPECT_TRUE(notify.wait_for("STATUS=serving on http://127.0.0.1", 100)) << notify.all();
  notify.clear();
  EXPECT_TRUE(notify.wait_for("WATCHDOG=1", 2000)) << "pings within the interval: " << notify.all();
  notify.clear();
  d.signal(SIGHUP);
  EXPECT_TRUE(notify.wait_for("RELOADING=1", 3000)) << notify.all();
  EXPECT_TRUE(notify.wait_for("MONOTONIC_USEC=", 100)) << notify.all();
  EXPECT_TRUE(notify.wait_for("READY=1", 3000)) << notify.all();
  notify.clear();
  d.signal(SIGTERM);
  EXPECT_TRUE(notify.wait_for("STOPPING=1", 3000)) << notify.all();
  EXPECT_EQ(d.wait_exit(10000), 0);
}

TEST(Lifecycle, ReloadAppliesGoodConfigAndRefusesBadConfig) {
  DaemonProcess d({}, "log-level = debug\n[testkit]\ngreeting = one\n");
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_EQ(d.admin("GET", "/v1/modules/testkit/echo").json()["greeting"], "one");
  write_text(d.dir().file("llmopsd.conf"), "log-level = info\n[testkit]\ngreeting = two\n");
  d.signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return d.admin("GET", "/v1/modules/testkit/echo").json()["greeting"] == "two"; }, 3000));
  write_text(d.dir().file("llmopsd.conf"), "[testkit]\nworkers = 500\n");
  d.signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return d.log().find("reload refused") != std::string::npos; }, 3000)) << d.log();
  EXPECT_NE(d.log().find("testkit.workers"), std::string::npos);
  EXPECT_EQ(d.admin("GET", "/v1/modules/testkit/echo").json()["greeting"], "two") << "the running configuration stays";
  EXPECT_EQ(d.get("/healthz").status, 200);
}

TEST(Lifecycle, SigtermDrainsInFlightAndRefusesNewRequests) {
  DaemonProcess d({"--drain-timeout=10"});
  ASSERT_TRUE(d.start()) << d.log();
  auto slow = std::async(std::launch::async, [&] { return d.get("/testkit/slow?ms=1500"); });
  ASSERT_TRUE(eventually([&] { return d.get("/metrics").body.find("llmops_http_in_flight{plane=\"data\"} 2") != std::string::npos; }, 3000));
  d.signal(SIGTERM);
  ASSERT_TRUE(eventually([&] { return d.log().find("stopping: new requests get 503") != std::string::npos; }, 3000));
  auto refused = d.get("/healthz");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.json()["error"]["code"], "draining");
  auto finished = slow.get();
  EXPECT_EQ(finished.status, 200) << "the in-flight request finished";
  EXPECT_EQ(finished.json()["slept_ms"], 1500);
  EXPECT_EQ(d.wait_exit(10000), 0);
  EXPECT_FALSE(std::filesystem::exists(d.socket_path())) << "the socket is removed on a clean stop";
}

TEST(Lifecycle, StrayAndCorruptModulesAreSkipped) {
  DaemonProcess d;
  write_text(d.module_dir() + "/llmops_junk.so", std::string(1000, '\x7f'));
  write_text(d.module_dir() + "/libother.so", "x");
  std::filesystem::create_symlink(std::string(LLMOPS_BROKEN_MODULE_DIR) + "/llmops_badmajor.so", d.module_dir() + "/llmops_badmajor.so");
  ASSERT_TRUE(d.start()) << d.log();
  std::string log = d.log();
  EXPECT_NE(log.find("refused " + d.module_dir() + "/llmops_junk.so: not an ELF"), std::string::npos) << log;
  EXPECT_NE(log.find("refused " + d.module_dir() + "/llmops_badmajor.so: built for module ABI 2.0"), std::string::npos) << log;
  EXPECT_NE(log.find("skipped " + d.module_dir() + "/libother.so"), std::string::npos) << log;
  auto mods = Json::parse(d.ctl({"--json", "modules"}).out)["modules"];
  int refused = 0;
  for (const auto& m : mods) refused += m["state"] == "refused";
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(d.get("/healthz").status, 200);
}

TEST(Lifecycle, RequiredModuleThatFailsStopsTheStart) {
  DaemonProcess d({"--required-modules=failinit"});
  std::filesystem::create_symlink(std::string(LLMOPS_BROKEN_MODULE_DIR) + "/llmops_failinit.so", d.module_dir() + "/llmops_failinit.so");
  EXPECT_EQ(d.start_expect_exit(), 1);
  EXPECT_NE(d.log().find("cannot find its model directory"), std::string::npos) << d.log();
  DaemonProcess missing({"--required-modules=nosuch"});
  EXPECT_EQ(missing.start_expect_exit(), 1);
  EXPECT_NE(missing.log().find("required module 'nosuch' is not in"), std::string::npos) << missing.log();
}

TEST(Lifecycle, OneDaemonPerStateDirectory) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  std::string out;
  int rc = run_daemon_cmd({"--config", d.dir().file("llmopsd.conf"), "--state-dir", d.dir().file("state"), "--runtime-dir",
                           d.dir().file("run2"), "--module-dir", d.module_dir(), "--http.listen", "127.0.0.1:0"},
                          &out);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("another llmopsd (pid " + std::to_string(d.pid()) + ")"), std::string::npos) << out;
}

TEST(Lifecycle, KillNineThenRestartKeepsCommittedState) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(d.ctl({"keys", "create", "k" + std::to_string(i)}).exit_code, 0);
  d.kill9();
  ASSERT_TRUE(d.start()) << "restarts over a stale socket and lock: " << d.log();
  auto keys = Json::parse(d.ctl({"--json", "keys", "list"}).out)["keys"];
  EXPECT_EQ(keys.size(), 5u);
  EXPECT_EQ(d.get("/v1/models").status, 401) << "keys still guard the endpoint after the crash";
}

}  // namespace
}  // namespace llmops::test
