#include "router.h"

#include <gtest/gtest.h>

namespace llmops {
namespace {

Handler named(const std::string& name) {
  return [name](HttpRequest&) {
    HttpResponse r;
    r.body = name;
    return r;
  };
}

std::string run(const Router::Match& m) {
  HttpRequest req;
  return m.handler ? (*m.handler)(req).body : "";
}

TEST(Router, MatchesLiteralsParamsAndRest) {
  Router r;
  r.add("GET", "/v1/jobs", named("list"));
  r.add("GET", "/v1/jobs/{id}", named("show"));
  r.add("POST", "/v1/jobs/{id}/cancel", named("cancel"));
  r.add("GET", "/files/*", named("files"));
  EXPECT_EQ(run(r.match("GET", "/v1/jobs")), "list");
  EXPECT_EQ(run(r.match("GET", "/v1/jobs/")), "list");
  auto show = r.match("GET", "/v1/jobs/42");
  EXPECT_EQ(run(show), "show");
  EXPECT_EQ(show.params["id"], "42");
  EXPECT_EQ(show.pattern, "/v1/jobs/{id}");
  EXPECT_EQ(run(r.match("POST", "/v1/jobs/42/cancel")), "cancel");
  auto files = r.match("GET", "/files/a/b/c");
  EXPECT_EQ(files.params["*"], "a/b/c");
  EXPECT_EQ(r.match("GET", "/v1/nothing").handler, nullptr);
}

TEST(Router, WrongMethodIsReported) {
  Router r;
  r.add("POST", "/v1/keys", named("create"));
  auto m = r.match("GET", "/v1/keys");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_TRUE(m.method_mismatch);
  EXPECT_EQ(run(r.match("POST", "/v1/keys")), "create");
}

TEST(Router, HeadFallsBackToGet) {
  Router r;
  r.add("GET", "/healthz", named("h"));
  EXPECT_EQ(run(r.match("HEAD", "/healthz")), "h");
}

TEST(Router, QueryParamsAndPathDecoding) {
  HttpRequest req;
  req.query = "state=running&limit=5&name=a%20b+c&flag";
  EXPECT_EQ(req.query_param("state"), "running");
  EXPECT_EQ(req.query_param("name"), "a b c");
  EXPECT_EQ(req.query_param("flag"), "");
  EXPECT_FALSE(req.query_param("missing").has_value());
  EXPECT_EQ(*decode_path("/v1/a%2Fb"), "/v1/a/b");
  EXPECT_FALSE(decode_path("/v1/%00").ok());
  EXPECT_FALSE(decode_path("/v1/%G1").ok());
  EXPECT_FALSE(decode_path("/v1/%4").ok());
}

TEST(Router, ErrorsUseTheOpenAiShape) {
  auto r = error_response(not_found("no job 7"));
  EXPECT_EQ(r.status, 404);
  auto j = Json::parse(r.body);
  EXPECT_EQ(j["error"]["message"], "no job 7");
  EXPECT_EQ(j["error"]["type"], "not_found_error");
  EXPECT_EQ(j["error"]["code"], "not_found");
  EXPECT_TRUE(j["error"]["param"].is_null());
}

}  // namespace
}  // namespace llmops
