#include "devices/legacy/sifive_finisher.h"

#include <gtest/gtest.h>

#include <vector>

namespace doppel {
namespace {

struct Seen {
  SifiveFinisher::Action action;
  uint16_t code;
};

TEST(SifiveFinisher, CommandsReachTheMachineWithTheirCode) {
  std::vector<Seen> seen;
  SifiveFinisher dev([&](SifiveFinisher::Action a, uint16_t c) { seen.push_back({a, c}); });
  dev.write(0, 4, 0x5555);
  dev.write(0, 4, 0x7777);
  dev.write(0, 4, (42u << 16) | 0x3333);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].action, SifiveFinisher::Action::kPowerOff);
  EXPECT_EQ(seen[1].action, SifiveFinisher::Action::kReset);
  EXPECT_EQ(seen[2].action, SifiveFinisher::Action::kFail);
  EXPECT_EQ(seen[2].code, 42);
}

TEST(SifiveFinisher, OtherValuesAndOffsetsDoNothing) {
  int calls = 0;
  SifiveFinisher dev([&](SifiveFinisher::Action, uint16_t) { ++calls; });
  dev.write(0, 4, 0x1234);
  dev.write(4, 4, 0x5555);
  dev.write(0, 1, 0x55);
  EXPECT_EQ(dev.read(0, 4), 0u);
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace doppel
