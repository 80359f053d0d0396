// kill -9 during writes: every commit the writer acknowledged must be there after reopening,
// and the store must open clean. The writer is a forked child that reports each committed key
// over a pipe; the parent kills it at a random moment, several times over one store.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <random>

#include "keys.h"
#include "store.h"
#include "unit/test_util.h"

namespace llmops {
namespace {

std::string value_for(uint64_t i) { return "value-" + std::to_string(i) + std::string(i % 5000, 'x'); }

TEST(StoreCrash, KillDuringWritesLosesNoCommittedRecord) {
  test::TempDir dir;
  std::mt19937 rng(42);
  uint64_t next = 0;  // first key the next writer uses
  for (int round = 0; round < 12; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      StoreOptions o;
      o.initial_map_bytes = 1 << 20;  // small, so growth happens under the kill too
      auto store = Store::open(dir.path(), o);
      if (!store.ok()) ::_exit(3);
      auto db = (*store)->database("crash");
      if (!db.ok()) ::_exit(4);
      for (uint64_t i = next;; ++i) {
        Status st = (*store)->write([&](Txn& t) { return t.put(*db, u64_key(i), value_for(i)); });
        if (!st.ok()) ::_exit(5);
        if (::write(fds[1], &i, sizeof i) != sizeof i) ::_exit(6);  // acknowledged only after commit
      }
    }
    ::close(fds[1]);
    // Let it commit a random number of records, then kill it mid-stream.
    int want = std::uniform_int_distribution<int>(5, 200)(rng);
    uint64_t acked = 0;
    bool any = false;
    for (int n = 0; n < want; ++n) {
      uint64_t i = 0;
      if (::read(fds[0], &i, sizeof i) != sizeof i) break;
      acked = i;
      any = true;
    }
    ::kill(child, SIGKILL);
    // Drain acknowledgements already in the pipe: those commits happened too.
    uint64_t i = 0;
    while (::read(fds[0], &i, sizeof i) == sizeof i) {
      acked = i;
      any = true;
    }
    ::close(fds[0]);
    int wstatus = 0;
    ::waitpid(child, &wstatus, 0);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "writer exited by itself with " << WEXITSTATUS(wstatus);
    ASSERT_TRUE(any) << "writer committed nothing in round " << round;

    auto store = Store::open(dir.path(), StoreOptions{});
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    Dbi db = *(*store)->database("crash");
    ASSERT_TRUE((*store)->read([&](Txn& t) -> Status {
      for (uint64_t k = 0; k <= acked; ++k) {
        auto v = t.get(db, u64_key(k));
        EXPECT_TRUE(v.ok() && v->has_value()) << "committed record " << k << " lost in round " << round;
        if (v.ok() && v->has_value()) {
          EXPECT_EQ(**v, value_for(k));
        }
      }
      return ok_status();
    }).ok());
    next = acked + 1;
  }
}

// A reader that dies while another process keeps the environment open leaves its slot taken
// (when nobody has it open, LMDB resets the reader table by itself). Open must clear it.
TEST(StoreCrash, StaleReaderSlotsOfADeadProcessAreClearedAtOpen) {
  test::TempDir dir;
  auto spawn = [&](bool hold_read) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    pid_t child = ::fork();
    if (child == 0) {
      auto store = Store::open(dir.path(), StoreOptions{});
      if (!store.ok()) ::_exit(3);
      char c = 'r';
      if (hold_read) {
        (void)(*store)->read([&](Txn&) {
          (void)::write(fds[1], &c, 1);  // a read transaction is open: its slot is taken
          ::pause();
          return ok_status();
        });
      }
      (void)::write(fds[1], &c, 1);
      ::pause();
      ::_exit(0);
    }
    char c = 0;
    EXPECT_EQ(::read(fds[0], &c, 1), 1);
    ::close(fds[0]);
    ::close(fds[1]);
    return child;
  };
  pid_t holder = spawn(false);
  pid_t reader = spawn(true);
  ::kill(reader, SIGKILL);
  ::waitpid(reader, nullptr, 0);
  auto store = Store::open(dir.path(), StoreOptions{});
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
  ASSERT_TRUE(store.ok());
  EXPECT_GE((*store)->stats().stale_readers_cleared, 1);
}

}  // namespace
}  // namespace llmops
