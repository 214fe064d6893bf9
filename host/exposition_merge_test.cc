// Table tests for ParseExposition and MergeExpositions.
#include "host/exposition_merge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace loophost::host {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;

// "name:type:n" per family, n = number of samples.
std::vector<std::string> Shape(const ParsedExposition& p) {
  std::vector<std::string> out;
  for (const ExpositionFamily& f : p.families) {
    out.push_back(f.name + ":" + f.type + ":" +
                  std::to_string(f.samples.size()));
  }
  return out;
}

struct ParseCase {
  std::string label;
  std::string text;
  std::vector<std::string> shape;
  std::vector<std::string> errors;
};

void PrintTo(const ParseCase& c, std::ostream* os) { *os << c.label; }

class ParseTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ParseTest, FamiliesAndErrors) {
  ParsedExposition p = ParseExposition(GetParam().text);
  EXPECT_EQ(Shape(p), GetParam().shape);
  EXPECT_EQ(p.errors, GetParam().errors);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseTest,
    ::testing::Values(
        ParseCase{"empty", "", {}, {}},
        ParseCase{"counter",
                  "# HELP a_total Things.\n# TYPE a_total counter\n"
                  "a_total{x=\"1\"} 3\na_total{x=\"2\"} 4\n",
                  {"a_total:counter:2"},
                  {}},
        ParseCase{
            "histogram groups buckets, sum and count",
            "# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"0.1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n"
            "h_seconds_sum 0.3\nh_seconds_count 2\n",
            {"h_seconds:histogram:4"},
            {}},
        ParseCase{
            "summary groups quantiles, sum and count",
            "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 3\ns_count 2\n",
            {"s:summary:3"},
            {}},
        ParseCase{"untyped samples get a family each",
                  "u 1\nv{a=\"b\"} 2\nu_count 3\n",
                  {"u::1", "v::1", "u_count::1"},
                  {}},
        ParseCase{"gauge _count is not a histogram part",
                  "# TYPE g gauge\ng 1\ng_count 2\n",
                  {"g:gauge:1", "g_count::1"},
                  {}},
        ParseCase{"comments, blank lines, CRLF, timestamps, special values",
                  "# just a comment\r\n#HELPER text\n\n# TYPE g gauge\r\n"
                  "g{a=\"1\"} NaN 1700000000000\r\ng{a=\"2\"} +Inf\ng{a=\"3\"} "
                  "-1.5e3\n",
                  {"g:gauge:3"},
                  {}},
        ParseCase{
            "malformed lines are skipped and reported",
            "# TYPE g gauge\n"
            "g{a=\"1\" 1\n"       // 2: unterminated
            "g{a=\"2\"}\n"        // 3: no value
            "g{a=\"3\"} abc\n"    // 4: bad value
            "g{a=\"4\"} 1 2 3\n"  // 5: trailing
            "g{a=\"5\"} 1 x\n"    // 6: bad timestamp
            "# TYPE g counter\n"  // 7: second TYPE
            "# TYPE k bogus\n"    // 8: unknown type
            "k 1\n"               // fine: untyped
            "# TYPE k gauge\n"    // 10: TYPE after samples
            "{a=\"1\"} 2\n"       // 11: no name
            "g{a=\"6\"} 6\n",
            {"g:gauge:1", "k::1"},
            {"line 2: g: expected ',' or '}' in label set",
             "line 3: g: no value", "line 4: g: bad value \"abc\"",
             "line 5: g: trailing text after the timestamp",
             "line 6: g: bad timestamp \"x\"", "line 7: second TYPE for g",
             "line 8: unknown type \"bogus\" for k",
             "line 10: TYPE for k after its samples",
             "line 11: bad metric name"}}),
    [](const ::testing::TestParamInfo<ParseCase>& p) {
      return "Case" + std::to_string(p.index);
    });

TEST(ParseExpositionTest, UnescapesLabelValuesAndKeepsTheLine) {
  ParsedExposition p = ParseExposition(
      "# HELP m Help with \\\\ and \\n escapes.\n"
      "m{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\",} 1\n");
  ASSERT_THAT(p.families, SizeIs(1));
  EXPECT_THAT(p.errors, IsEmpty());
  EXPECT_EQ(p.families[0].help, "Help with \\\\ and \\n escapes.");
  ASSERT_THAT(p.families[0].samples, SizeIs(1));
  const ExpositionSample& s = p.families[0].samples[0];
  EXPECT_THAT(s.labels,
              ElementsAre(Pair("a", "q\"uote"), Pair("b", "back\\slash"),
                          Pair("c", "new\nline")));
  EXPECT_EQ(s.line,
            "m{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\",} 1");
}

struct MergeCase {
  std::string label;
  std::vector<std::pair<std::string, std::string>> sources;  // name, text
  std::string want;
  std::vector<std::string> conflicts =
      {};  // "family: kept source/type, dropped source/type"
  size_t duplicates = 0;
};

void PrintTo(const MergeCase& c, std::ostream* os) { *os << c.label; }

class MergeTest : public ::testing::TestWithParam<MergeCase> {};

TEST_P(MergeTest, Merges) {
  std::vector<ExpositionSource> sources;
  for (const auto& [name, text] : GetParam().sources) {
    sources.push_back({name, ParseExposition(text)});
  }
  MergedExposition merged = MergeExpositions(sources);
  EXPECT_EQ(merged.text, GetParam().want);
  std::vector<std::string> conflicts;
  for (const TypeConflict& c : merged.conflicts) {
    conflicts.push_back(c.family + ": " + c.kept_source + "/" + c.kept_type +
                        ", " + c.dropped_source + "/" + c.dropped_type);
  }
  EXPECT_EQ(conflicts, GetParam().conflicts);
  EXPECT_EQ(merged.duplicates_dropped, GetParam().duplicates);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MergeTest,
    ::testing::Values(
        MergeCase{"disjoint families keep source order",
                  {{"host", "# HELP a A.\n# TYPE a gauge\na 1\n"},
                   {"p", "# HELP b B.\n# TYPE b gauge\nb 2\n"}},
                  "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b "
                  "gauge\nb 2\n"},
        MergeCase{
            "one family across sources: one HELP/TYPE, samples concatenated",
            {{"p1",
              "# HELP up_total U.\n# TYPE up_total counter\nup_total{p=\"1\"} "
              "1\n"},
             {"p2",
              "# HELP up_total Other help.\n# TYPE up_total counter\n"
              "up_total{p=\"2\"} 2\n"}},
            "# HELP up_total U.\n# TYPE up_total counter\nup_total{p=\"1\"} 1\n"
            "up_total{p=\"2\"} 2\n"},
        MergeCase{
            "identical series in a later source are dropped",
            {{"p1", "# TYPE g gauge\ng{a=\"1\",b=\"2\"} 1\ng{a=\"9\"} 9\n"},
             {"p2", "# TYPE g gauge\ng{b=\"2\",a=\"1\"} 5\ng{a=\"3\"} 3\n"}},
            "# TYPE g gauge\ng{a=\"1\",b=\"2\"} 1\ng{a=\"9\"} 9\ng{a=\"3\"} "
            "3\n",
            {},
            1},
        MergeCase{"an exact repeat within one source is dropped",
                  {{"p1", "# TYPE g gauge\ng 1\ng 2\n"}},
                  "# TYPE g gauge\ng 1\n",
                  {},
                  1},
        MergeCase{"an empty label value equals an absent label",
                  {{"p1", "x{a=\"\"} 1\n"}, {"p2", "x 2\n"}},
                  "x{a=\"\"} 1\n",
                  {},
                  1},
        MergeCase{"type conflict keeps the first source's family",
                  {{"host", "# HELP m M.\n# TYPE m counter\nm 1\n"},
                   {"p1",
                    "# HELP m Other.\n# TYPE m gauge\nm{x=\"1\"} 7\n"
                    "# TYPE ok gauge\nok 1\n"}},
                  "# HELP m M.\n# TYPE m counter\nm 1\n# TYPE ok gauge\nok 1\n",
                  {"m: host/counter, p1/gauge"}},
        MergeCase{"no TYPE and TYPE untyped are the same type",
                  {{"p1", "u 1\n"},
                   {"p2", "# HELP u U.\n# TYPE u untyped\nu{a=\"b\"} 2\n"}},
                  "# HELP u U.\n# TYPE u untyped\nu 1\nu{a=\"b\"} 2\n"},
        MergeCase{"histogram: a later source's metric with the same labels "
                  "goes whole",
                  {{"p1",
                    "# TYPE h histogram\nh_bucket{m=\"a\",le=\"1\"} 1\n"
                    "h_bucket{m=\"a\",le=\"+Inf\"} 1\nh_sum{m=\"a\"} 0.5\n"
                    "h_count{m=\"a\"} 1\n"},
                   {"p2",
                    "# TYPE h histogram\nh_bucket{m=\"a\",le=\"2\"} 1\n"
                    "h_bucket{m=\"a\",le=\"+Inf\"} 1\nh_sum{m=\"a\"} 1.5\n"
                    "h_count{m=\"a\"} 1\nh_bucket{m=\"b\",le=\"+Inf\"} 0\n"
                    "h_sum{m=\"b\"} 0\nh_count{m=\"b\"} 0\n"}},
                  "# TYPE h histogram\nh_bucket{m=\"a\",le=\"1\"} 1\n"
                  "h_bucket{m=\"a\",le=\"+Inf\"} 1\nh_sum{m=\"a\"} "
                  "0.5\nh_count{m=\"a\"} 1\n"
                  "h_bucket{m=\"b\",le=\"+Inf\"} 0\nh_sum{m=\"b\"} "
                  "0\nh_count{m=\"b\"} 0\n",
                  {},
                  4}),
    [](const ::testing::TestParamInfo<MergeCase>& p) {
      return "Case" + std::to_string(p.index);
    });

TEST(MergeExpositionsTest, NoSourcesGiveEmptyText) {
  EXPECT_EQ(MergeExpositions({}).text, "");
}

}  // namespace
}  // namespace loophost::host
