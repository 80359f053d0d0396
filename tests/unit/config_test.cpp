#include "config.h"
#include "json.h"

#include <gtest/gtest.h>

#include "unit/test_util.h"

namespace llmops {
namespace {

Result<Config> load(std::vector<std::string> args) {
  args.insert(args.begin(), "llmopsd");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  ConfigRequest req;
  return load_config(static_cast<int>(argv.size()), argv.data(), &req);
}

TEST(Config, EmbeddedDefaultsWithoutAFile) {
  test::TempDir dir;
  auto c = load({"--state-dir", dir.file("s")});
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->http.listen_host, "127.0.0.1");
  EXPECT_EQ(c->http.listen_port, 8642);
  EXPECT_EQ(c->admin_socket_path(), c->runtime_dir + "/admin.sock");
}

TEST(Config, FileSectionsAndCommandLineOverride) {
  test::TempDir dir;
  test::write_text(dir.file("c.conf"),
                   "state-dir = " + dir.file("state") + "\nlog-level = debug\n[http]\nlisten = 127.0.0.1:9000\nmax-body-bytes = 4096\n"
                   "[serving]\nmax-batch = 8\n");
  auto c = load({"--config", dir.file("c.conf"), "--http.listen=127.0.0.1:9001"});
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->http.listen_port, 9001) << "the command line wins";
  EXPECT_EQ(c->http.max_body_bytes, 4096u);
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  EXPECT_EQ(c->module_sections["serving"]["max-batch"], "8");
  EXPECT_EQ(c->config_path, dir.file("c.conf"));
}

TEST(Config, BadKeysAreNamed) {
  test::TempDir dir;
  auto expect_error = [&](const std::string& body, const std::string& needle) {
    test::write_text(dir.file("bad.conf"), body);
    auto c = load({"--config", dir.file("bad.conf")});
    ASSERT_FALSE(c.ok()) << body;
    EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status().message();
  };
  expect_error("bogus = 1\n", "bogus");
  expect_error("[http]\nlisten = nowhere\n", "http.listen");
  expect_error("[http]\nlisten = 127.0.0.1:99999\n", "http.listen");
  expect_error("[http]\nthreads = 0\n", "http.threads");
  expect_error("[http]\nthreads = many\n", "threads");
  expect_error("[http]\nfrobnicate = 1\n", "http.frobnicate");
  expect_error("log-level = loud\n", "log-level");
  expect_error("drain-timeout = -5\n", "drain-timeout");
}

TEST(Config, MissingExplicitFileIsAnError) {
  auto c = load({"--config", "/nonexistent/llmopsd.conf"});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kNotFound);
}

TEST(Config, UnknownFlagIsAnError) {
  auto c = load({"--no-such-flag"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--no-such-flag"), std::string::npos);
}

TEST(Config, ListenAddressForms) {
  std::string h;
  uint16_t p = 0;
  EXPECT_TRUE(parse_listen_address("[::1]:80", &h, &p).ok());
  EXPECT_EQ(h, "::1");
  EXPECT_EQ(p, 80);
  EXPECT_TRUE(parse_listen_address("0.0.0.0:0", &h, &p).ok());
  EXPECT_FALSE(parse_listen_address(":80", &h, &p).ok());
  EXPECT_FALSE(parse_listen_address("host:", &h, &p).ok());
  EXPECT_FALSE(parse_listen_address("host:8x", &h, &p).ok());
}

TEST(Config, ShowsAsJson) {
  test::TempDir dir;
  auto c = load({"--state-dir", dir.file("s")});
  auto j = Json::parse(config_to_json(*c));
  EXPECT_EQ(j["http"]["listen"], "127.0.0.1:8642");
  EXPECT_EQ(j["log-level"], "info");
}

}  // namespace
}  // namespace llmops
