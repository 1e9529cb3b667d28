#include "base/result.h"

#include <gtest/gtest.h>

namespace doppel {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Error::format("{} is not positive", v);
  return v;
}

Result<int> doubled(int v) {
  const int x = TRY(parse_positive(v));
  return 2 * x;
}

Result<void> check(int v) {
  TRY(parse_positive(v));
  return {};
}

TEST(Result, TryPropagatesTheErrorAndUnwrapsTheValue) {
  EXPECT_EQ(*doubled(21), 42);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "-1 is not positive");
  EXPECT_TRUE(check(1).ok());
  EXPECT_FALSE(check(0).ok());
}

TEST(Result, ErrnoAndContextNameTheThing) {
  const Error e = Error::from_errno("/x.img", ENOENT).context("--disk");
  EXPECT_EQ(e.message(), "--disk: /x.img: No such file or directory");
  EXPECT_EQ(e.errno_value(), ENOENT);
}

}  // namespace
}  // namespace doppel
