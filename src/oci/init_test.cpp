#include "oci/init.h"

#include <gtest/gtest.h>

namespace doppel::oci {
namespace {

Spec with_mounts(std::vector<Mount> mounts) {
  Spec s;
  s.mounts = std::move(mounts);
  return s;
}

TEST(OciInit, DevIsPopulatedUnlessItIsABindMount) {
  // No /dev mount, or a tmpfs there (the default spec's): doppel makes the devices.
  EXPECT_TRUE(needs_dev_setup(with_mounts({})));
  EXPECT_TRUE(needs_dev_setup(with_mounts({{"/dev", "tmpfs", "tmpfs", {"nosuid"}}})));
  EXPECT_TRUE(needs_dev_setup(with_mounts({{"/dev/shm", "bind", "/dev/shm", {"rbind"}}})));
  // A bind mount at /dev, by type or option, however the path is spelt (crun's
  // test_devices.py: a tmpfs first, then the host's /dev over it).
  EXPECT_FALSE(needs_dev_setup(with_mounts({{"/dev", "tmpfs", "tmpfs", {}}, {"/dev", "bind", "/dev", {"rbind", "rw"}}})));
  EXPECT_FALSE(needs_dev_setup(with_mounts({{"/dev", "none", "/dev", {"rbind"}}})));
  EXPECT_FALSE(needs_dev_setup(with_mounts({{"/dev", "", "/srv/dev", {"bind"}}})));
  EXPECT_FALSE(needs_dev_setup(with_mounts({{"//dev/", "bind", "/dev", {}}})));
  EXPECT_FALSE(needs_dev_setup(with_mounts({{"/x/../dev/.", "bind", "/dev", {}}})));
}

}  // namespace
}  // namespace doppel::oci
