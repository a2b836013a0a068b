#include "coordinator/store/keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace farm::coordinator::keys {
namespace {

TEST(KeysTest, QueueKeysSortByPriorityThenPosition) {
  std::vector<QueueKey> ks = {
      {7, 0, NewJobPosition(1)},     {7, 10, NewJobPosition(5)},  {7, -5, NewJobPosition(2)},
      {7, 10, NewJobPosition(3)},    {7, 0, RequeuePosition(99)}, {7, 1000, NewJobPosition(9)},
      {7, -1000, NewJobPosition(4)},
  };
  std::vector<std::string> encoded;
  for (const auto& k : ks) encoded.push_back(k.Encode());
  std::sort(encoded.begin(), encoded.end());
  std::vector<QueueKey> decoded;
  for (const auto& e : encoded) decoded.push_back(QueueKey::Decode(e));
  // Byte order of the encoding is the dispatch order.
  EXPECT_EQ(decoded[0].priority, 1000);
  EXPECT_EQ(decoded[1].pos, NewJobPosition(3));
  EXPECT_EQ(decoded[2].pos, NewJobPosition(5));
  EXPECT_EQ(decoded[3].pos, RequeuePosition(99));  // a requeued job goes first in its class
  EXPECT_EQ(decoded[4].pos, NewJobPosition(1));
  EXPECT_EQ(decoded[5].priority, -5);
  EXPECT_EQ(decoded[6].priority, -1000);
  EXPECT_TRUE(std::is_sorted(decoded.begin(), decoded.end()));
}

TEST(KeysTest, JobIdsRoundTripAndRejectGarbage) {
  EXPECT_EQ(JobId(42), "42");
  EXPECT_EQ(ParseJobId("42"), 42u);
  EXPECT_FALSE(ParseJobId("").has_value());
  EXPECT_FALSE(ParseJobId("0").has_value());
  EXPECT_FALSE(ParseJobId("-1").has_value());
  EXPECT_FALSE(ParseJobId("12abc").has_value());
  EXPECT_FALSE(ParseJobId("+5").has_value());
  EXPECT_FALSE(ParseJobId("99999999999999999999999").has_value());
}

TEST(KeysTest, LogKeysOrderByStepThenOffset) {
  EXPECT_LT(LogKey(1, 1, 0, 500), LogKey(1, 1, 1, 0));
  EXPECT_LT(LogKey(1, 1, 1, 255), LogKey(1, 1, 1, 256));
  EXPECT_LT(LogKey(1, 2, 0, 0), LogKey(2, 1, 0, 0));
  LogKeyParts p = DecodeLogKey(LogKey(3, 4, 5, 1ull << 40));
  EXPECT_EQ(p.seq, 3u);
  EXPECT_EQ(p.attempt, 4u);
  EXPECT_EQ(p.step, 5u);
  EXPECT_EQ(p.offset, 1ull << 40);
}

TEST(KeysTest, CanonicalLabelsAreOrderIndependent) {
  std::map<std::string, std::string> a = {{"os", "linux"}, {"arch", "amd64"}};
  EXPECT_EQ(CanonicalLabels(a), "arch=amd64\nos=linux\n");
  EXPECT_EQ(ParseCanonicalLabels(CanonicalLabels(a)), a);
  EXPECT_NE(LabelSetId(CanonicalLabels(a)), LabelSetId(CanonicalLabels({})));
}

TEST(KeysTest, PrefixEndBoundsThePrefix) {
  EXPECT_EQ(PrefixEnd("ab"), "ac");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(std::string("\xff\xff", 2)), "");
}

}  // namespace
}  // namespace farm::coordinator::keys
