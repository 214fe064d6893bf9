// Table tests of the CloudEvent JSON shapes: v2 (DESIGN 6) and the seed's v1,
// v2 decoding (good and bad bodies), and RFC 3339 times.
#include "events/cloud_event_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "events/ptp_events.h"

namespace loophost::events {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr int64_t kTime = 1795323000123456789;  // 2026-11-22T04:50:00.123...

v1::CloudEvent LockStateEvent() {
  v1::CloudEvent e;
  e.set_id("5ce55d17-9234-4fee-a589-d0f10cb32b8e");
  e.set_source(ResourceAddress("node1", kLockStateResource));
  e.set_spec_version("1.0");
  e.set_type(kLockStateEventType);
  e.set_time_unix_nanos(kTime);
  e.mutable_data()->set_version("1.0");
  v1::EventValue* v = e.mutable_data()->add_values();
  v->set_resource_address(e.source() + "/ens1f0");
  v->set_data_type("notification");
  v->set_value_type("enumeration");
  v->set_value("LOCKED");
  v = e.mutable_data()->add_values();
  v->set_resource_address(e.source() + "/ens1f0");
  v->set_data_type("metric");
  v->set_value_type("decimal64.3");
  v->set_value("-12.000");
  return e;
}

TEST(FormatEventTimeTest, Table) {
  struct Case {
    int64_t nanos;
    const char* want;
  };
  const std::vector<Case> cases = {
      {0, "1970-01-01T00:00:00.000000000Z"},
      {kTime, "2026-11-22T04:50:00.123456789Z"},
      {1000000000, "1970-01-01T00:00:01.000000000Z"},
      {1, "1970-01-01T00:00:00.000000001Z"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FormatEventTime(c.nanos), c.want) << c.nanos;
  }
}

TEST(EncodeV2EventTest, DesignShape) {
  const json got = json::parse(EncodeV2Event(LockStateEvent()));
  const json want = json::parse(R"({
    "specversion": "1.0",
    "id": "5ce55d17-9234-4fee-a589-d0f10cb32b8e",
    "source": "/cluster/node/node1/sync/ptp-status/lock-state",
    "type": "event.sync.ptp-status.ptp-state-change",
    "time": "2026-11-22T04:50:00.123456789Z",
    "data": {"version": "1.0", "values": [
      {"ResourceAddress": "/cluster/node/node1/sync/ptp-status/lock-state/ens1f0",
       "data_type": "notification", "value_type": "enumeration",
       "value": "LOCKED"},
      {"ResourceAddress": "/cluster/node/node1/sync/ptp-status/lock-state/ens1f0",
       "data_type": "metric", "value_type": "decimal64.3", "value": "-12.000"}
    ]}})");
  EXPECT_EQ(got, want) << got.dump(2);
}

TEST(EncodeV2EventTest, DefaultsAndEmptyValues) {
  v1::CloudEvent e;
  e.set_id("i");
  e.set_source("/s");
  e.set_type("t");
  const json got = json::parse(EncodeV2Event(e));
  EXPECT_EQ(got["specversion"], "1.0");
  EXPECT_EQ(got["data"]["version"], "1.0");
  EXPECT_EQ(got["data"]["values"], json::array());
  EXPECT_EQ(got["time"], "1970-01-01T00:00:00.000000000Z");
}

TEST(EncodeV2EventTest, InvalidUtf8IsReplacedNotThrown) {
  v1::CloudEvent e = LockStateEvent();
  e.mutable_data()->mutable_values(0)->set_value("bad \xff byte");
  const std::string text = EncodeV2Event(e);
  const json got = json::parse(text);
  EXPECT_EQ(got["data"]["values"][0]["value"], "bad \xEF\xBF\xBD byte");
}

TEST(EncodeV1EventTest, SeedShape) {
  const json got = json::parse(EncodeV1Event(LockStateEvent()));
  const json want = json::parse(R"({
    "id": "5ce55d17-9234-4fee-a589-d0f10cb32b8e",
    "type": "event.sync.ptp-status.ptp-state-change",
    "source": "/cluster/node/node1/sync/ptp-status/lock-state",
    "dataContentType": "application/json",
    "time": "2026-11-22T04:50:00.123456789Z",
    "data": {"version": "v1", "values": [
      {"resource": "/cluster/node/node1/sync/ptp-status/lock-state/ens1f0",
       "dataType": "notification", "valueType": "enumeration",
       "value": "LOCKED"},
      {"resource": "/cluster/node/node1/sync/ptp-status/lock-state/ens1f0",
       "dataType": "metric", "valueType": "decimal64.3", "value": "-12.000"}
    ]}})");
  EXPECT_EQ(got, want) << got.dump(2);
}

TEST(DecodeV2EventTest, RoundTrip) {
  const v1::CloudEvent in = LockStateEvent();
  absl::StatusOr<v1::CloudEvent> out = DecodeV2Event(EncodeV2Event(in));
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(out->SerializeAsString(), in.SerializeAsString())
      << out->DebugString();
}

TEST(DecodeV2EventTest, AcceptsNumbersAsValuesAndOffsetTimes) {
  absl::StatusOr<v1::CloudEvent> out = DecodeV2Event(R"({
    "id": "1", "source": "/s", "type": "t",
    "time": "2021-02-05T19:31:00.5+02:00",
    "data": {"version": "1.0", "values": [
      {"ResourceAddress": "/r", "data_type": "metric",
       "value_type": "decimal64.3", "value": 100.3},
      {"ResourceAddress": "/r", "data_type": "metric",
       "value_type": "decimal64.3", "value": 248}]}})");
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(out->spec_version(), "1.0");
  EXPECT_EQ(FormatEventTime(out->time_unix_nanos()),
            "2021-02-05T17:31:00.500000000Z");
  ASSERT_EQ(out->data().values_size(), 2);
  EXPECT_EQ(out->data().values(0).value(), "100.3");
  EXPECT_EQ(out->data().values(1).value(), "248");
}

TEST(DecodeV2EventTest, TimeAndDataAreOptional) {
  absl::StatusOr<v1::CloudEvent> out =
      DecodeV2Event(R"({"id": "1", "source": "/s", "type": "t"})");
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(out->time_unix_nanos(), 0);
  EXPECT_EQ(out->data().values_size(), 0);
}

TEST(DecodeV2EventTest, RejectsBadBodies) {
  struct Case {
    const char* name;
    const char* body;
    const char* want_message;
  };
  const std::vector<Case> cases = {
      {"not json", "{", "not valid JSON"},
      {"array", "[]", "not a JSON object"},
      {"no id", R"({"source": "/s", "type": "t"})", "\"id\""},
      {"empty id", R"({"id": "", "source": "/s", "type": "t"})", "empty"},
      {"numeric source", R"({"id": "1", "source": 3, "type": "t"})",
       "\"source\""},
      {"no type", R"({"id": "1", "source": "/s"})", "\"type\""},
      {"bad specversion",
       R"({"specversion": "0.3", "id": "1", "source": "/s", "type": "t"})",
       "specversion"},
      {"bad time",
       R"({"id": "1", "source": "/s", "type": "t", "time": "yesterday"})",
       "RFC 3339"},
      {"data not object",
       R"({"id": "1", "source": "/s", "type": "t", "data": "x"})", "\"data\""},
      {"values not array",
       R"({"id": "1", "source": "/s", "type": "t", "data": {"values": {}}})",
       "data.values"},
      {"value not object",
       R"({"id": "1", "source": "/s", "type": "t", "data": {"values": [1]}})",
       "not an object"},
      {"value without address",
       R"({"id": "1", "source": "/s", "type": "t", "data": {"values": [
         {"data_type": "notification", "value_type": "enumeration",
          "value": "LOCKED"}]}})",
       "ResourceAddress"},
      {"object value",
       R"({"id": "1", "source": "/s", "type": "t", "data": {"values": [
         {"ResourceAddress": "/r", "data_type": "notification",
          "value_type": "enumeration", "value": {}}]}})",
       "\"value\""},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(
        DecodeV2Event(c.body),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.want_message)))
        << c.name;
  }
}

}  // namespace
}  // namespace loophost::events
