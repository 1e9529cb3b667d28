#include "devices/legacy/uart_16550.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace doppel {
namespace {

class RecordingIrq final : public IrqLine {
 public:
  void set_level(bool high) override {
    level = high;
    changes.push_back(high);
  }
  bool level = false;
  std::vector<bool> changes;
};

// Register offsets with reg_shift 0.
constexpr uint64_t kRbr = 0, kThr = 0, kDll = 0, kIer = 1, kDlm = 1, kIir = 2, kFcr = 2, kLcr = 3,
                   kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;

struct UartTest : ::testing::Test {
  RecordingIrq irq;
  std::string out;
  Uart16550 uart{irq, 0, [this](uint8_t b) { out.push_back(static_cast<char>(b)); }};

  uint8_t rd(uint64_t off) { return static_cast<uint8_t>(uart.read(off, 1)); }
  void wr(uint64_t off, uint8_t v) { uart.write(off, 1, v); }
  // What Linux's 8250 driver does when a tty opens the port: DTR, RTS and OUT2 (the PC's
  // IRQ gate), then the interrupt enables.
  void listen(uint8_t ier) {
    wr(kMcr, 0x0b);
    wr(kIer, ier);
  }
  size_t feed(std::string_view s) {
    return uart.receive({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
};

TEST_F(UartTest, PowerOnStateIsIdleTransmitterEmptyNoInterrupt) {
  EXPECT_EQ(rd(kIer), 0);
  EXPECT_EQ(rd(kIir), 0x01);  // no interrupt pending, FIFOs off
  EXPECT_EQ(rd(kLsr), 0x60);  // THRE | TEMT, no data
  EXPECT_EQ(rd(kLcr), 0);
  EXPECT_FALSE(irq.level);
}

TEST_F(UartTest, BytesWrittenToThrReachTheHost) {
  for (char c : std::string("hi\r\n")) wr(kThr, static_cast<uint8_t>(c));
  EXPECT_EQ(out, "hi\r\n");
  EXPECT_EQ(rd(kLsr) & 0x60, 0x60);
}

TEST_F(UartTest, DivisorLatchIsBehindDlab) {
  wr(kLcr, 0x83);  // DLAB, 8N1
  wr(kDll, 0x01);
  wr(kDlm, 0x00);
  EXPECT_EQ(rd(kDll), 0x01);
  wr(kLcr, 0x03);
  wr(kThr, 'A');  // with DLAB clear offset 0 is THR again
  EXPECT_EQ(out, "A");
  EXPECT_EQ(rd(kIer), 0);  // writing DLM did not touch IER
  wr(kLcr, 0x83);
  EXPECT_EQ(rd(kDll), 0x01);
  EXPECT_EQ(rd(kDlm), 0x00);
}

TEST_F(UartTest, ScratchRegisterHoldsAValue) {
  wr(kScr, 0x5a);
  EXPECT_EQ(rd(kScr), 0x5a);
}

TEST_F(UartTest, ReceivedByteRaisesDataReadyAndInterruptUntilRead) {
  listen(0x01);  // RDA
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(feed("x"), 1u);
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(rd(kLsr) & 0x01, 0x01);
  EXPECT_EQ(rd(kIir) & 0x0f, 0x04);
  EXPECT_EQ(rd(kRbr), 'x');
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(rd(kLsr) & 0x01, 0);
  EXPECT_EQ(rd(kIir), 0x01);
}

TEST_F(UartTest, WithoutFifoOnlyOneByteIsTakenAndRoomIsSignalled) {
  int room_calls = 0;
  uart.set_rx_room_callback([&] { ++room_calls; });
  listen(0x01);
  EXPECT_EQ(feed("abc"), 1u);
  EXPECT_EQ(rd(kRbr), 'a');
  EXPECT_EQ(room_calls, 1);
  EXPECT_EQ(feed("bc"), 1u);
  EXPECT_EQ(rd(kRbr), 'b');
  EXPECT_EQ(room_calls, 2);
}

TEST_F(UartTest, FifoHoldsSixteenBytesInOrderAndNothingIsLost) {
  int room_calls = 0;
  uart.set_rx_room_callback([&] { ++room_calls; });
  wr(kFcr, 0x07);  // enable + clear both FIFOs, trigger level 1
  listen(0x01);
  EXPECT_EQ(rd(kIir) & 0xc0, 0xc0);
  std::string input;
  for (int i = 0; i < 40; ++i) input.push_back(static_cast<char>('A' + i % 26));
  size_t offered = feed(input);
  EXPECT_EQ(offered, 16u);
  EXPECT_EQ(room_calls, 0);
  std::string got;
  while (got.size() < input.size()) {
    ASSERT_TRUE(rd(kLsr) & 0x01);
    got.push_back(static_cast<char>(rd(kRbr)));
    if (offered < input.size()) offered += feed(std::string_view(input).substr(offered));
  }
  EXPECT_EQ(got, input);
  EXPECT_GE(room_calls, 1);
  EXPECT_EQ(rd(kLsr) & 0x03, 0);  // empty, no overrun
}

TEST_F(UartTest, InputWaitsUntilTheDriverListensAndWhileItThrottles) {
  int room_calls = 0;
  uart.set_rx_room_callback([&] { ++room_calls; });
  // Firmware initialising the port: FIFO reset and a dummy RBR read would eat early input.
  EXPECT_EQ(feed("early"), 0u);
  wr(kFcr, 0x07);
  rd(kRbr);
  // Linux's port probe (autoconfig) writes IER 0x0f and back with OUT2 clear, then resets
  // the FIFO: a byte taken then would be lost.
  wr(kIer, 0x0f);
  EXPECT_EQ(room_calls, 0);
  EXPECT_EQ(feed("early"), 0u);
  wr(kIer, 0x00);
  wr(kFcr, 0x07);
  listen(0x05);  // the driver opens the port: OUT2, then RLS + RDA
  EXPECT_EQ(room_calls, 1);
  EXPECT_EQ(feed("early"), 5u);
  EXPECT_EQ(rd(kRbr), 'e');
  wr(kIer, 0x00);  // Linux throttles by masking receive interrupts
  EXPECT_EQ(feed("more"), 0u);
  wr(kIer, 0x01);
  EXPECT_EQ(room_calls, 2);
  EXPECT_EQ(feed("more"), 4u);
}

// U-Boot and bare-metal programs poll LSR.DR with interrupts masked; printing (one LSR read
// per THR write) must not look like that.
TEST_F(UartTest, ADriverPollingLsrReceivesInputAndOneThatOnlyPrintsDoesNot) {
  int room_calls = 0;
  uart.set_rx_room_callback([&] { ++room_calls; });
  wr(kFcr, 0x07);
  for (char c : std::string("boot\n")) {
    rd(kLsr);  // wait for THRE
    wr(kThr, static_cast<uint8_t>(c));
  }
  EXPECT_EQ(feed("x"), 0u);
  // Linux's 8250 startup: two LSR reads in a row, then RBR is read and dropped.
  rd(kLsr);
  rd(kLsr);
  rd(kRbr);
  EXPECT_EQ(feed("x"), 0u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(rd(kLsr) & 0x01, 0);  // a key? no
  EXPECT_EQ(room_calls, 0);
  EXPECT_EQ(rd(kLsr) & 0x01, 0);  // still waiting: now it is polling
  EXPECT_EQ(room_calls, 1);
  EXPECT_EQ(feed("x"), 1u);
  EXPECT_EQ(rd(kLsr) & 0x01, 1);
  EXPECT_EQ(rd(kRbr), 'x');
  wr(kThr, 'x');  // the echo: the receiver closes until it polls again
  EXPECT_EQ(feed("y"), 0u);
  for (int i = 0; i < 8; ++i) rd(kLsr);
  EXPECT_EQ(feed("y"), 1u);
  wr(kMcr, 0x10);  // loopback disconnects the receiver even while polling
  for (int i = 0; i < 8; ++i) rd(kLsr);
  EXPECT_EQ(feed("z"), 0u);
}

TEST_F(UartTest, ClosingThePortClearsOut2AndStopsInput) {
  listen(0x01);
  EXPECT_EQ(feed("a"), 1u);
  EXPECT_EQ(rd(kRbr), 'a');
  wr(kMcr, 0x00);  // Linux's 8250 shutdown drops OUT2 (and IER)
  EXPECT_EQ(feed("b"), 0u);
}

TEST_F(UartTest, TriggerLevelChoosesBetweenDataAvailableAndTimeout) {
  wr(kFcr, 0x81);  // FIFO on, trigger level 8
  listen(0x01);
  EXPECT_EQ(feed("1234"), 4u);
  EXPECT_EQ(rd(kIir), 0xcc);  // character timeout: data below the trigger level
  EXPECT_EQ(feed("5678"), 4u);
  EXPECT_EQ(rd(kIir), 0xc4);  // received data available
  EXPECT_TRUE(irq.level);
}

TEST_F(UartTest, ThreInterruptFiresOnEnableAndClearsOnIirRead) {
  wr(kIer, 0x02);
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(rd(kIir), 0x02);
  EXPECT_FALSE(irq.level);  // reading IIR acknowledged it
  EXPECT_EQ(rd(kIir), 0x01);
  wr(kThr, 'z');  // the byte goes out at once, THR is empty again
  EXPECT_TRUE(irq.level);
  wr(kIer, 0x00);
  EXPECT_FALSE(irq.level);
}

TEST_F(UartTest, ReceiveHasPriorityOverThre) {
  listen(0x03);
  feed("q");
  EXPECT_EQ(rd(kIir), 0x04);
  EXPECT_EQ(rd(kRbr), 'q');
  EXPECT_EQ(rd(kIir), 0x02);
}

TEST_F(UartTest, LoopbackEchoesTransmitAndWiresModemLines) {
  wr(kMcr, 0x10);  // LOOP
  rd(kMsr);        // discard deltas of entering loopback
  wr(kThr, 0x55);
  EXPECT_EQ(out, "");  // nothing on the line
  EXPECT_EQ(rd(kLsr) & 0x01, 0x01);
  EXPECT_EQ(rd(kRbr), 0x55);
  wr(kMcr, 0x10 | 0x0f);  // DTR RTS OUT1 OUT2
  EXPECT_EQ(rd(kMsr) & 0xf0, 0xf0);
  wr(kMcr, 0x10);
  const uint8_t msr = rd(kMsr);
  EXPECT_EQ(msr & 0xf0, 0);
  EXPECT_EQ(msr & 0x0f, 0x0f);  // DCTS DDSR TERI DDCD
  wr(kIer, 0x01);
  EXPECT_EQ(feed("h"), 0u);  // host input waits while the receiver is disconnected
  wr(kMcr, 0x00);
  EXPECT_EQ(rd(kMsr) & 0xb0, 0xb0);  // CTS DSR DCD from the host console
}

TEST_F(UartTest, OverrunInLoopbackSetsOeAndLineStatusInterrupt) {
  wr(kMcr, 0x10);
  wr(kIer, 0x04);  // RLS only
  wr(kThr, 1);
  wr(kThr, 2);  // no FIFO: overrun
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(rd(kIir), 0x06);
  EXPECT_EQ(rd(kLsr) & 0x02, 0x02);
  EXPECT_EQ(rd(kLsr) & 0x02, 0);  // cleared by reading LSR
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(rd(kRbr), 1);
}

TEST_F(UartTest, ClearingTheFifoDropsDataAndSignalsRoom) {
  int room_calls = 0;
  uart.set_rx_room_callback([&] { ++room_calls; });
  wr(kFcr, 0x01);
  listen(0x01);
  EXPECT_EQ(feed(std::string(20, 'x')), 16u);
  wr(kFcr, 0x03);
  EXPECT_EQ(rd(kLsr) & 0x01, 0);
  EXPECT_EQ(room_calls, 1);
}

TEST_F(UartTest, TogglingFifoEnableKeepsReceivedInput) {
  wr(kFcr, 0x01);
  listen(0x01);
  EXPECT_EQ(feed("ab"), 2u);
  wr(kFcr, 0x00);  // Linux's 8250 startup: FIFO off ...
  wr(kFcr, 0x01);  // ... and on again in set_termios
  EXPECT_EQ(rd(kRbr), 'a');
  EXPECT_EQ(rd(kRbr), 'b');
}

TEST(Uart16550Shift, RegistersAreSpacedByTheShift) {
  RecordingIrq irq;
  std::string out;
  Uart16550 uart(irq, 2, [&](uint8_t b) { out.push_back(static_cast<char>(b)); });
  EXPECT_EQ(uart.window_size(), 32u);
  uart.write(7 << 2, 4, 0x42);
  EXPECT_EQ(uart.read(7 << 2, 4), 0x42u);
  EXPECT_EQ(uart.read(7, 1), 0u);  // not a register boundary
  uart.write(0, 4, 'k');
  EXPECT_EQ(out, "k");
}

TEST_F(UartTest, OutOfRangeOffsetsAreIgnored) {
  uart.write(100, 1, 0xff);
  EXPECT_EQ(uart.read(100, 1), 0u);
  EXPECT_EQ(out, "");
}

TEST_F(UartTest, SaveRestoreKeepsRegistersAndPendingInput) {
  wr(kFcr, 0x01);
  listen(0x01);
  wr(kScr, 0x77);
  feed("abc");
  const Uart16550State s = uart.save();

  RecordingIrq irq2;
  Uart16550 other(irq2, 0, nullptr);
  ASSERT_TRUE(other.restore(s).ok());
  EXPECT_TRUE(irq2.level);
  EXPECT_EQ(other.read(kScr, 1), 0x77u);
  EXPECT_EQ(other.read(kRbr, 1), static_cast<uint64_t>('a'));
  EXPECT_EQ(other.read(kRbr, 1), static_cast<uint64_t>('b'));

  Uart16550State bad = s;
  bad.version = 99;
  auto r = other.restore(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("version 99"), std::string::npos);
  bad = s;
  bad.rx_count = 200;
  EXPECT_FALSE(other.restore(bad).ok());
}

}  // namespace
}  // namespace doppel
