// The i8042 as Linux's i8042 and atkbd drivers drive it: the controller set up through
// the command byte, keyboard bytes read from port 0x60 one per IRQ 1 edge, the AT keyboard
// commands of a probe, and the CPU reset line.
#include "devices/legacy/i8042.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace doppel {
namespace {

class RecordingIrq final : public IrqLine {
 public:
  void set_level(bool high) override {
    if (high && !level) ++edges;
    level = high;
  }
  bool level = false;
  int edges = 0;  // low -> high transitions
};

constexpr uint64_t kData = 0, kStatus = 4, kCommand = 4;
constexpr uint8_t kOutputFull = 0x01, kAuxData = 0x20;
// Command byte: keyboard interrupt on, system flag; what Linux writes once it enables the
// keyboard port on a controller that does not translate.
constexpr uint8_t kKbdInt = 0x01, kSys = 0x04, kKbdDisabled = 0x10, kXlate = 0x40;

const std::vector<uint8_t> kSet2CtrlAltDel = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
                                              0x71, 0xf0, 0x11, 0xf0, 0x14};
const std::vector<uint8_t> kSet1CtrlAltDel = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};

struct I8042Test : ::testing::Test {
  RecordingIrq irq;
  int resets = 0;
  I8042 kbc{irq, [this] { ++resets; }};

  uint8_t status() { return static_cast<uint8_t>(kbc.read(kStatus, 1)); }
  uint8_t data() { return static_cast<uint8_t>(kbc.read(kData, 1)); }
  void command(uint8_t c) { kbc.write(kCommand, 1, c); }
  void write_data(uint8_t v) { kbc.write(kData, 1, v); }
  void set_command_byte(uint8_t v) {
    command(0x60);
    write_data(v);
  }
  // Reads the output buffer as Linux's interrupt handler does, one byte per edge, until the
  // status says it is empty.
  std::vector<uint8_t> drain() {
    std::vector<uint8_t> got;
    while ((status() & kOutputFull) != 0 && got.size() < 64) {
      EXPECT_EQ(status() & kAuxData, 0) << "keyboard bytes are not aux data";
      got.push_back(data());
    }
    return got;
  }
};

TEST_F(I8042Test, CtrlAltDelArrivesInScanCodeSet2OneEdgePerByte) {
  set_command_byte(kKbdInt | kSys);
  EXPECT_EQ(status() & kOutputFull, 0);
  ASSERT_TRUE(kbc.send_ctrl_alt_del().ok());
  EXPECT_EQ(irq.edges, 1) << "the first byte is in the output buffer";
  EXPECT_FALSE(irq.level) << "IRQ 1 is an edge: pulsed, not held";
  EXPECT_EQ(status() & kOutputFull, kOutputFull);
  EXPECT_EQ(drain(), kSet2CtrlAltDel);
  EXPECT_EQ(irq.edges, static_cast<int>(kSet2CtrlAltDel.size())) << "an edge for every byte";
  EXPECT_EQ(status() & kOutputFull, 0);
  EXPECT_EQ(resets, 0);
}

TEST_F(I8042Test, TranslatingControllerHandsOnScanCodeSet1) {
  set_command_byte(kKbdInt | kSys | kXlate);
  ASSERT_TRUE(kbc.send_ctrl_alt_del().ok());
  EXPECT_EQ(drain(), kSet1CtrlAltDel);
}

TEST_F(I8042Test, KeyboardInterruptOffMeansPollingOnly) {
  set_command_byte(kSys);
  ASSERT_TRUE(kbc.send_ctrl_alt_del().ok());
  EXPECT_EQ(status() & kOutputFull, kOutputFull);
  EXPECT_EQ(drain(), kSet2CtrlAltDel);
  EXPECT_EQ(irq.edges, 0);
}

TEST_F(I8042Test, DisabledKeyboardInterfaceHoldsBytesUntilEnabled) {
  set_command_byte(kKbdInt | kKbdDisabled);
  ASSERT_TRUE(kbc.send_ctrl_alt_del().ok());
  EXPECT_EQ(status() & kOutputFull, 0);
  EXPECT_EQ(irq.edges, 0);
  command(0xae);  // enable the keyboard interface
  EXPECT_EQ(irq.edges, 1);
  EXPECT_EQ(drain(), kSet2CtrlAltDel);
  // And through the command byte.
  set_command_byte(kKbdInt | kKbdDisabled);
  ASSERT_TRUE(kbc.send_ctrl_alt_del().ok());
  EXPECT_EQ(status() & kOutputFull, 0);
  set_command_byte(kKbdInt);
  EXPECT_EQ(drain(), kSet2CtrlAltDel);
}

TEST_F(I8042Test, AFullKeyboardBufferRefusesTheWholeSequence) {
  set_command_byte(kKbdInt);
  ASSERT_TRUE(kbc.send_ctrl_alt_del().ok());  // 1 in the output buffer, 10 queued
  const auto second = kbc.send_ctrl_alt_del();  // 11 more do not fit in 15
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message(),
            "i8042: the keyboard buffer has 10 of 15 bytes taken: the guest is not reading its "
            "keyboard");
  EXPECT_EQ(drain(), kSet2CtrlAltDel) << "nothing of the refused sequence got in";
  EXPECT_TRUE(kbc.send_ctrl_alt_del().ok()) << "room again once the guest has read";
}

TEST_F(I8042Test, AtkbdProbeGetsItsAnswers) {
  set_command_byte(kKbdInt);
  write_data(0xf2);  // get ID
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xab, 0x83}));
  write_data(0xff);  // reset
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xaa}));
  write_data(0xed);  // LEDs, then their byte
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa}));
  write_data(0x07);
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa}));
  write_data(0xf0);  // scan code set: 0 asks which
  write_data(0x00);
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xfa, 0x02}));
  write_data(0xf4);  // enable scanning
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa}));
  write_data(0xee);  // echo
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0xee}));
  write_data(0x42);  // not a command
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfe}));
  EXPECT_GT(irq.edges, 0);
}

TEST_F(I8042Test, ControllerCommandsAndNoAuxPort) {
  set_command_byte(0x45);
  command(0x20);
  EXPECT_EQ(data(), 0x45);
  command(0xaa);
  EXPECT_EQ(data(), 0x55) << "self test passed";
  command(0xab);
  EXPECT_EQ(data(), 0x00) << "keyboard interface test passed";
  // Linux's aux probe: the loopback byte comes back without the aux status bit, and the
  // aux interface test reports a stuck clock line, so it decides there is no mouse port.
  command(0xd3);
  write_data(0x5a);
  EXPECT_EQ(status() & (kOutputFull | kAuxData), kOutputFull);
  command(0xa9);
  EXPECT_EQ(data(), 0x01);
  // 0xd2: a byte as if the keyboard had sent it.
  set_command_byte(kKbdInt);
  const int edges = irq.edges;
  command(0xd2);
  write_data(0x1c);
  EXPECT_EQ(irq.edges, edges + 1);
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0x1c}));
}

TEST_F(I8042Test, CpuResetByPulseOrOutputPort) {
  command(0xd0);
  EXPECT_EQ(data() & 1, 1) << "reset line inactive";
  command(0xd1);
  write_data(0x03);
  EXPECT_EQ(resets, 0);
  command(0xd1);
  write_data(0x02);
  EXPECT_EQ(resets, 1);
  command(0xfe);
  EXPECT_EQ(resets, 2);
}

TEST_F(I8042Test, SaveRestoreKeepsQueuedKeyboardBytes) {
  set_command_byte(kKbdInt);
  ASSERT_TRUE(kbc.send_ctrl_alt_del().ok());
  EXPECT_EQ(data(), 0x14);
  EXPECT_EQ(data(), 0x11);
  const I8042State saved = kbc.save();
  EXPECT_EQ(saved.version, I8042State::kVersion);
  EXPECT_TRUE(saved.output_full);
  EXPECT_EQ(saved.output, 0xe0);
  EXPECT_EQ(saved.queue_count, 8);

  RecordingIrq irq2;
  I8042 restored(irq2, [] {});
  ASSERT_TRUE(restored.restore(saved).ok());
  std::vector<uint8_t> got;
  while ((restored.read(kStatus, 1) & kOutputFull) != 0)
    got.push_back(static_cast<uint8_t>(restored.read(kData, 1)));
  EXPECT_EQ(got, std::vector<uint8_t>(kSet2CtrlAltDel.begin() + 2, kSet2CtrlAltDel.end()));
  EXPECT_EQ(irq2.edges, 8) << "the byte already in the output buffer had its edge before";
}

TEST_F(I8042Test, RestoresVersion1AndRefusesBadState) {
  I8042State v1;
  v1.version = 1;
  v1.command_byte = kKbdInt;
  v1.output = 0x55;
  v1.output_full = true;
  v1.queue_count = 3;  // not in a version 1 file: ignored
  ASSERT_TRUE(kbc.restore(v1).ok());
  EXPECT_EQ(kbc.save().version, I8042State::kVersion);
  EXPECT_EQ(drain(), (std::vector<uint8_t>{0x55}));

  I8042State bad = kbc.save();
  bad.version = 3;
  EXPECT_FALSE(kbc.restore(bad).ok());
  bad.version = 0;
  EXPECT_FALSE(kbc.restore(bad).ok());
  bad.version = I8042State::kVersion;
  bad.queue_count = 16;
  EXPECT_EQ(kbc.restore(bad).error().message(), "i8042: keyboard queue count 16 is more than 15");
}

TEST_F(I8042Test, HostileWritesNeverBreakIt) {
  std::mt19937 rng(8042);
  for (int i = 0; i < 200000; ++i) {
    const uint64_t offset = rng() % 8;
    const unsigned size = 1u << (rng() % 4);
    const uint64_t value = (static_cast<uint64_t>(rng()) << 32) | rng();
    switch (rng() % 4) {
      case 0: (void)kbc.read(offset, size); break;
      case 1: kbc.write(offset, size, value); break;
      case 2: kbc.write(offset & 4, 1, value); break;  // real ports, any byte
      case 3: (void)kbc.send_ctrl_alt_del(); break;
    }
    ASSERT_LE(kbc.save().queue_count, I8042State::kQueueSize);
  }
  EXPECT_FALSE(irq.level);
}

}  // namespace
}  // namespace doppel
