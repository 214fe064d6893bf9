// EventLog: sequence numbers that only grow (also across reopen, also once
// everything was acknowledged), held events surviving a reopen until acked,
// a torn last record cut off, the bound, and compaction.
#include "loops/ptp/event_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"

namespace loophost::loops::ptp {
namespace {

using ::loophost::testing::IsOk;
using ::testing::ElementsAre;

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/lh-eventlog-XXXXXX");
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/events.log";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static v1::CloudEvent Event(const std::string& id) {
    v1::CloudEvent e;
    e.set_id(id);
    e.set_type("event.sync.ptp-status.ptp-state-change");
    return e;
  }
  // "seq:id" of every held event.
  static std::vector<std::string> Held(const EventLog& log) {
    std::vector<std::string> out;
    v1::SequencedEvent e;
    for (uint64_t after = 0; log.Next(after, &e); after = e.sequence())
      out.push_back(absl::StrCat(e.sequence(), ":", e.event().id()));
    return out;
  }

  std::string dir_, path_;
};

TEST_F(EventLogTest, SequencesGrowAndSurviveReopenUntilAcked) {
  {
    auto log = EventLog::Open(path_, 100);
    ASSERT_THAT(log, IsOk());
    EXPECT_THAT((*log)->Append(Event("a")), IsOk());
    EXPECT_EQ(*(*log)->Append(Event("b")), 2u);
    EXPECT_EQ(*(*log)->Append(Event("c")), 3u);
    ASSERT_THAT((*log)->Ack(1), IsOk());
    EXPECT_THAT(Held(**log), ElementsAre("2:b", "3:c"));
  }
  auto log = EventLog::Open(path_, 100);
  ASSERT_THAT(log, IsOk());
  EXPECT_THAT(Held(**log), ElementsAre("2:b", "3:c"));
  EXPECT_EQ((*log)->acked_sequence(), 1u);
  v1::SequencedEvent e;
  ASSERT_TRUE((*log)->Next(2, &e));
  EXPECT_EQ(e.event().id(), "c");
  EXPECT_FALSE((*log)->Next(3, &e));
  EXPECT_EQ(*(*log)->Append(Event("d")), 4u);
}

TEST_F(EventLogTest, SequenceKeepsGrowingOnceEverythingWasAcked) {
  {
    auto log = EventLog::Open(path_, 100);
    ASSERT_THAT(log, IsOk());
    for (int i = 0; i < 5; ++i) ASSERT_THAT((*log)->Append(Event("x")), IsOk());
    ASSERT_THAT((*log)->Ack(99), IsOk());  // beyond the last: clamped
    EXPECT_EQ((*log)->held(), 0u);
  }
  auto log = EventLog::Open(path_, 100);
  ASSERT_THAT(log, IsOk());
  EXPECT_EQ((*log)->held(), 0u);
  EXPECT_EQ((*log)->last_sequence(), 5u);
  EXPECT_EQ(*(*log)->Append(Event("y")), 6u);
}

TEST_F(EventLogTest, TornLastRecordIsCutOff) {
  {
    auto log = EventLog::Open(path_, 100);
    ASSERT_THAT(log, IsOk());
    ASSERT_THAT((*log)->Append(Event("a")), IsOk());
    ASSERT_THAT((*log)->Append(Event("b")), IsOk());
  }
  auto size = std::filesystem::file_size(path_);
  std::filesystem::resize_file(path_, size - 3);  // a crash mid-write
  {
    auto log = EventLog::Open(path_, 100);
    ASSERT_THAT(log, IsOk());
    EXPECT_THAT(Held(**log), ElementsAre("1:a"));
    EXPECT_EQ(*(*log)->Append(Event("c")), 2u);
  }
  auto log = EventLog::Open(path_, 100);
  ASSERT_THAT(log, IsOk());
  EXPECT_THAT(Held(**log), ElementsAre("1:a", "2:c"));
}

TEST_F(EventLogTest, GarbageFileIsReplacedNotFatal) {
  std::ofstream(path_) << "not a log at all";
  auto log = EventLog::Open(path_, 100);
  ASSERT_THAT(log, IsOk());
  EXPECT_EQ((*log)->held(), 0u);
  EXPECT_EQ(*(*log)->Append(Event("a")), 1u);
}

TEST_F(EventLogTest, BoundDropsTheOldestAndCountsThem) {
  auto log = EventLog::Open(path_, 3);
  ASSERT_THAT(log, IsOk());
  for (const char* id : {"a", "b", "c", "d", "e"})
    ASSERT_THAT((*log)->Append(Event(id)), IsOk());
  EXPECT_THAT(Held(**log), ElementsAre("3:c", "4:d", "5:e"));
  EXPECT_EQ((*log)->dropped(), 2u);
  v1::SequencedEvent e;
  ASSERT_TRUE((*log)->Next(1, &e));  // behind the oldest: the oldest
  EXPECT_EQ(e.sequence(), 3u);
  log->reset();
  auto reopened = EventLog::Open(path_, 3);
  ASSERT_THAT(reopened, IsOk());
  EXPECT_THAT(Held(**reopened), ElementsAre("3:c", "4:d", "5:e"));
}

TEST_F(EventLogTest, CompactionKeepsTheFileSmall) {
  auto log = EventLog::Open(path_, 100);
  ASSERT_THAT(log, IsOk());
  std::string big(20000, 'x');
  for (int i = 0; i < 50; ++i) {
    auto seq = (*log)->Append(Event(big));
    ASSERT_THAT(seq, IsOk());
    ASSERT_THAT((*log)->Ack(*seq), IsOk());
  }
  EXPECT_LT(std::filesystem::file_size(path_), 200u * 1024);
  log->reset();
  auto reopened = EventLog::Open(path_, 100);
  ASSERT_THAT(reopened, IsOk());
  EXPECT_EQ((*reopened)->held(), 0u);
  EXPECT_EQ((*reopened)->last_sequence(), 50u);
}

TEST_F(EventLogTest, MemoryOnlyWithoutPath) {
  auto log = EventLog::Open("", 10);
  ASSERT_THAT(log, IsOk());
  EXPECT_EQ(*(*log)->Append(Event("a")), 1u);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

}  // namespace
}  // namespace loophost::loops::ptp
