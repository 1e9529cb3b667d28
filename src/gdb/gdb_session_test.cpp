#include "gdb/gdb_session.h"

#include <gtest/gtest.h>

#include "gdb/gdb_fake_target.h"

namespace doppel::gdb {
namespace {

// Drives a session as gdb would: sends packets, collects the reply packets' payloads
// (acks dropped).
class GdbSessionTest : public ::testing::Test {
 protected:
  GdbSessionTest() : session(target, [this](std::string_view b) { wire += b; }) {
    session.attach();
  }
  std::vector<std::string> send(std::string_view payload) {
    wire.clear();
    const std::string p = encode_packet(payload);
    session.receive(std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
    return replies();
  }
  std::vector<std::string> replies() {
    PacketDecoder d;
    std::vector<PacketEvent> events;
    d.feed(std::span(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()), events);
    std::vector<std::string> out;
    for (auto& e : events)
      if (e.kind == PacketEvent::Kind::kPacket) out.push_back(e.payload);
    return out;
  }
  std::string one(std::string_view payload) {
    auto r = send(payload);
    return r.size() == 1 ? r[0] : "<" + std::to_string(r.size()) + " replies>";
  }

  FakeTarget target{2};
  std::string wire;
  GdbSession session;
};

TEST_F(GdbSessionTest, AttachStopsTheTarget) {
  EXPECT_FALSE(target.running);
  EXPECT_EQ(one("?"), "T05thread:1;");
}

TEST_F(GdbSessionTest, SupportedAndTargetXml) {
  const std::string s = one("qSupported:multiprocess+;swbreak+;hwbreak+");
  EXPECT_NE(s.find("qXfer:features:read+"), std::string::npos);
  EXPECT_NE(s.find("PacketSize=4000"), std::string::npos);
  const std::string xml = one("qXfer:features:read:target.xml:0,ffff");
  ASSERT_EQ(xml[0], 'l');
  EXPECT_NE(xml.find("<architecture>riscv:rv64</architecture>"), std::string::npos);
  EXPECT_NE(xml.find("<feature name=\"org.gnu.gdb.riscv.cpu\">"), std::string::npos);
  EXPECT_NE(xml.find("<reg name=\"pc\" bitsize=\"64\" type=\"code_ptr\" regnum=\"4\""),
            std::string::npos);
  // In pieces: 'm' until the last one.
  const std::string first = one("qXfer:features:read:target.xml:0,10");
  EXPECT_EQ(first, "m" + xml.substr(1, 0x10));
  EXPECT_EQ(one("qXfer:features:read:other.xml:0,10"), "E00");
}

TEST_F(GdbSessionTest, ThreadsAreVcpus) {
  EXPECT_EQ(one("qfThreadInfo"), "m1,2");
  EXPECT_EQ(one("qsThreadInfo"), "l");
  EXPECT_EQ(one("T2"), "OK");
  EXPECT_EQ(one("T3"), "E01");
  EXPECT_EQ(one("Hg2"), "OK");
  EXPECT_EQ(one("qC"), "QC2");
  EXPECT_EQ(one("Hg9"), "E01");
}

TEST_F(GdbSessionTest, RegistersPerThread) {
  target.regs[1][32] = 0x34;  // pc of vCPU 1 = 0x1234
  target.regs[1][33] = 0x12;
  EXPECT_EQ(one("Hg2"), "OK");
  EXPECT_EQ(one("p4"), "3412000000000000");
  EXPECT_EQ(one("P1=efbeadde00000000"), "OK");
  EXPECT_EQ(target.regs[1][8], 0xef);
  EXPECT_EQ(one("g").size(), 80u);
  EXPECT_EQ(one("p5"), "E01");
  EXPECT_EQ(one("Pzz=00"), "E01");
  EXPECT_EQ(one("G00"), "E01");  // short
}

TEST_F(GdbSessionTest, MemoryThroughTranslation) {
  const uint64_t va = FakeTarget::kVirtOffset + FakeTarget::kRamBase;
  EXPECT_EQ(one(fmt::format("M{:x},4:deadbeef", va)), "OK");
  EXPECT_EQ(target.ram[0], 0xde);
  EXPECT_EQ(one(fmt::format("m{:x},4", va)), "deadbeef");
  // Unmapped: an error; partly readable: what could be read.
  EXPECT_EQ(one("m1000,4"), "E14");
  const uint64_t end = va + FakeTarget::kRamSize - 2;
  EXPECT_EQ(one(fmt::format("m{:x},8", end)).size(), 4u);
  // X: binary, with escapes handled by the framing.
  EXPECT_EQ(one(fmt::format("X{:x},0:", va)), "OK");
  EXPECT_EQ(one(fmt::format("X{:x},2:}}#", va)), "OK");
  EXPECT_EQ(target.ram[0], '}');
  EXPECT_EQ(target.ram[1], '#');
  EXPECT_EQ(one(fmt::format("M{:x},4:dead", va)), "E01");  // length mismatch
}

TEST_F(GdbSessionTest, ContinueHitsBreakpointOnAnyVcpu) {
  EXPECT_EQ(one("Z0,ffffffff802db50e,2"), "OK");
  EXPECT_EQ(one("Z2,80001000,8"), "OK");
  EXPECT_TRUE(send("vCont;c").empty());  // no reply until the target stops
  ASSERT_TRUE(target.running);
  ASSERT_EQ(target.resumes.size(), 1u);
  for (const auto& c : target.resumes[0]) {
    EXPECT_EQ(c.breakpoints, std::vector<uint64_t>{0xffffffff802db50eull});
    ASSERT_EQ(c.watchpoints.size(), 1u);
    EXPECT_FALSE(c.single_step);
    EXPECT_FALSE(c.hold);
  }
  EXPECT_EQ(one("g"), "E01");  // refused while running
  wire.clear();
  target.event = GdbTarget::Stop{1, DebugStopKind::kBreakpoint, 0};
  session.on_target_event();
  auto r = replies();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], "T05thread:2;");  // swbreak only when gdb said it understands it
  EXPECT_FALSE(target.running);
  EXPECT_EQ(one("qC"), "QC2");
  EXPECT_EQ(one("z0,ffffffff802db50e,2"), "OK");
  EXPECT_EQ(one("z2,80001000,8"), "OK");
  send("c");
  EXPECT_TRUE(target.resumes.back()[0].breakpoints.empty());
}

TEST_F(GdbSessionTest, StepOneThreadOthersHold) {
  one("qSupported:swbreak+");
  EXPECT_TRUE(send("vCont;s:2").empty());
  ASSERT_EQ(target.resumes.size(), 1u);
  EXPECT_TRUE(target.resumes[0][0].hold);
  EXPECT_TRUE(target.resumes[0][1].single_step);
  wire.clear();
  target.event = GdbTarget::Stop{1, DebugStopKind::kStep, 0};
  session.on_target_event();
  EXPECT_EQ(replies(), std::vector<std::string>{"T05thread:2;"});
  // vCont;s:1;c: the others continue.
  send("vCont;s:1;c");
  EXPECT_TRUE(target.resumes[1][0].single_step);
  EXPECT_FALSE(target.resumes[1][1].hold);
  EXPECT_FALSE(target.resumes[1][1].single_step);
  EXPECT_EQ(one("vCont;x"), "E01");  // anything but Ctrl-C while running
}

TEST_F(GdbSessionTest, WatchpointAndCtrlC) {
  one("Z3,80000010,4");
  send("c");
  wire.clear();
  target.event = GdbTarget::Stop{0, DebugStopKind::kWatchRead, 0x80000012};
  session.on_target_event();
  EXPECT_EQ(replies(), std::vector<std::string>{"T05thread:1;rwatch:80000012;"});
  send("c");
  wire.clear();
  const uint8_t ctrl_c = 0x03;
  session.receive(std::span(&ctrl_c, 1));
  EXPECT_EQ(replies(), std::vector<std::string>{"T02thread:1;"});
  EXPECT_FALSE(target.running);
}

TEST_F(GdbSessionTest, VmEndWhileRunningIsAnExitReply) {
  send("c");
  wire.clear();
  target.exited = 0;
  session.on_target_event();
  EXPECT_EQ(replies(), std::vector<std::string>{"W00"});
  EXPECT_EQ(one("g"), "W00");
}

TEST_F(GdbSessionTest, DetachResumesWithoutDebugging) {
  one("Z0,1000,4");
  EXPECT_EQ(one("D"), "OK");
  EXPECT_TRUE(session.finished());
  ASSERT_EQ(target.resumes.size(), 1u);
  for (const auto& c : target.resumes[0]) EXPECT_FALSE(c.active());
}

TEST_F(GdbSessionTest, KillStopsTheVm) {
  EXPECT_TRUE(send("k").empty());
  EXPECT_TRUE(target.killed);
  EXPECT_TRUE(session.finished());
}

TEST_F(GdbSessionTest, MonitorCommands) {
  auto out = [&](std::string_view cmd) {
    auto r = send("qRcmd," + hex_encode(cmd));
    std::string text;
    for (size_t i = 0; i + 1 < r.size(); ++i) {
      EXPECT_EQ(r[i][0], 'O');
      auto bytes = hex_decode(std::string_view(r[i]).substr(1));
      text.append(bytes->begin(), bytes->end());
    }
    EXPECT_EQ(r.back(), "OK");
    return text;
  };
  EXPECT_EQ(out("info status"), "VM status: paused\n");
  EXPECT_EQ(out("info registers"), "registers of 0\n");
  EXPECT_EQ(out("info registers -a"), "registers of 0\nregisters of 1\n");
  target.ram[0] = 0x13;
  target.ram[4] = 0x73;
  EXPECT_EQ(out("xp /2xw 0x80000000"), "0000000080000000: 0x00000013 0x00000073\n");
  EXPECT_EQ(out("xp /1ug 0x80000004"), "0000000080000004: 115\n");
  EXPECT_NE(out("xp /4x 0x10").find("cannot read 16 bytes at 0x10"), std::string::npos);
  EXPECT_NE(out("frobnicate").find("unknown monitor command 'frobnicate'"), std::string::npos);
  EXPECT_NE(out("help").find("info registers"), std::string::npos);
}

TEST_F(GdbSessionTest, HostileInputGetsErrors) {
  EXPECT_EQ(one("m"), "E01");
  EXPECT_EQ(one("mzz,4"), "E01");
  EXPECT_EQ(one("Z0,1"), "E01");
  EXPECT_EQ(one("Z9,1,1"), "");
  EXPECT_EQ(one("Z2,ffffffffffffffff,8"), "E01");  // wraps
  EXPECT_EQ(one("Hx1"), "E01");
  EXPECT_EQ(one("qRcmd,zz"), "E01");
  EXPECT_EQ(one("vCont;s:p1.99"), "E01");
  EXPECT_EQ(one("unknown"), "");
  // A bad checksum is answered '-' (resend), and nothing else happens.
  wire.clear();
  const std::string bad = "$g#00";
  session.receive(std::span(reinterpret_cast<const uint8_t*>(bad.data()), bad.size()));
  EXPECT_EQ(wire, "-");
}

TEST_F(GdbSessionTest, NoAckMode) {
  wire.clear();
  const std::string p = encode_packet("QStartNoAckMode");
  session.receive(std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
  EXPECT_EQ(wire, "+$OK#9a");
  wire.clear();
  const std::string q = encode_packet("qC");
  session.receive(std::span(reinterpret_cast<const uint8_t*>(q.data()), q.size()));
  EXPECT_EQ(wire, encode_packet("QC1"));  // no '+' any more
}

}  // namespace
}  // namespace doppel::gdb

namespace doppel::gdb {
namespace {

TEST(GdbSessionSoftwareBreakpoints, PlantedWhileRunningAndRestoredAtEveryStop) {
  FakeTarget target(2, {0xcc});
  std::string wire;
  GdbSession session(target, [&](std::string_view b) { wire += b; });
  session.attach();
  auto send = [&](std::string_view payload) {
    const std::string p = encode_packet(payload);
    session.receive(std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
  };
  target.ram[0x10] = 0x55;
  const uint64_t va = FakeTarget::kVirtOffset + FakeTarget::kRamBase + 0x10;
  send(fmt::format("Z0,{:x},1", va));
  send("c");
  ASSERT_TRUE(target.running);
  EXPECT_EQ(target.ram[0x10], 0xcc);  // planted
  ASSERT_EQ(target.resumes.size(), 1u);
  EXPECT_TRUE(target.resumes[0][0].software_breakpoints);
  EXPECT_TRUE(target.resumes[0][0].breakpoints.empty());  // not the engine's to check
  target.event = GdbTarget::Stop{0, DebugStopKind::kBreakpoint, 0};
  session.on_target_event();
  EXPECT_EQ(target.ram[0x10], 0x55);  // gdb reads the original byte while stopped
  // gdb steps over a breakpoint itself (it takes it out first): the rest stay planted.
  send("vCont;s:1");
  EXPECT_EQ(target.ram[0x10], 0xcc);
  EXPECT_TRUE(target.resumes[1][0].software_breakpoints);
  EXPECT_TRUE(target.resumes[1][0].single_step);
  EXPECT_TRUE(target.resumes[1][1].hold);
  EXPECT_FALSE(target.resumes[1][1].software_breakpoints);
  target.event = GdbTarget::Stop{0, DebugStopKind::kStep, 0};
  session.on_target_event();
  EXPECT_EQ(target.ram[0x10], 0x55);
  // Ctrl-C and a lost connection put the bytes back too; hbreak is the engine's.
  send("c");
  EXPECT_EQ(target.ram[0x10], 0xcc);
  const uint8_t ctrl_c = 0x03;
  session.receive(std::span(&ctrl_c, 1));
  EXPECT_EQ(target.ram[0x10], 0x55);
  send(fmt::format("Z1,{:x},1", va + 4));
  send("c");
  EXPECT_EQ(target.resumes.back()[0].breakpoints, std::vector<uint64_t>{va + 4});
  session.disconnect();
  EXPECT_EQ(target.ram[0x10], 0x55);
}

}  // namespace
}  // namespace doppel::gdb

namespace doppel::gdb {
namespace {

// A software breakpoint at an address the guest has not mapped yet (start_kernel before
// paging is on) cannot be planted: every running vCPU's engine watches it instead, and the
// stop names it as the software breakpoint gdb set.
TEST(GdbSessionSoftwareBreakpoints, UnmappedOnesArePendingInTheEngine) {
  FakeTarget target(2, {0xcc});
  std::string wire;
  GdbSession session(target, [&](std::string_view b) { wire += b; });
  session.attach();
  auto send = [&](std::string_view payload) {
    wire.clear();
    const std::string p = encode_packet(payload);
    session.receive(std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
  };
  send("qSupported:swbreak+;hwbreak+");
  const uint64_t unmapped = 0x1234;  // FakeTarget maps only above kVirtOffset
  const uint64_t outside_ram = FakeTarget::kVirtOffset + 0x1000;  // mapped, but not RAM
  send(fmt::format("Z0,{:x},1", unmapped));
  send(fmt::format("Z0,{:x},1", outside_ram));
  send("c");
  ASSERT_TRUE(target.running);
  ASSERT_EQ(target.resumes.size(), 1u);
  for (const DebugControl& c : target.resumes[0]) {
    EXPECT_EQ(c.breakpoints, (std::vector<uint64_t>{unmapped, outside_ram}));
    EXPECT_FALSE(c.software_breakpoints);  // nothing planted
  }
  target.event = GdbTarget::Stop{1, DebugStopKind::kBreakpoint, unmapped};
  session.on_target_event();
  EXPECT_NE(wire.find("T05thread:2;swbreak:;"), std::string::npos) << wire;
  // Once mapped it is planted (here: a Z1 beside it stays the engine's, and is reported
  // as hardware when hit).
  send(fmt::format("z0,{:x},1", unmapped));
  send(fmt::format("z0,{:x},1", outside_ram));
  const uint64_t mapped = FakeTarget::kVirtOffset + FakeTarget::kRamBase + 0x20;
  send(fmt::format("Z0,{:x},1", mapped));
  send(fmt::format("Z1,{:x},1", mapped + 8));
  send("c");
  EXPECT_EQ(target.ram[0x20], 0xcc);
  EXPECT_EQ(target.resumes[1][0].breakpoints, std::vector<uint64_t>{mapped + 8});
  EXPECT_TRUE(target.resumes[1][0].software_breakpoints);
  target.event = GdbTarget::Stop{0, DebugStopKind::kBreakpoint, mapped + 8};
  session.on_target_event();
  EXPECT_NE(wire.find("T05thread:1;hwbreak:;"), std::string::npos) << wire;
  EXPECT_EQ(target.ram[0x20], 0x00);
}

}  // namespace
}  // namespace doppel::gdb

namespace doppel::gdb {
namespace {

// A continue from the address of a planted breakpoint steps off it first (that vCPU
// alone, nothing planted), then continues with the breakpoint in place; gdb only hears of
// the stop that follows.
TEST(GdbSessionSoftwareBreakpoints, ContinueFromABreakpointStepsOverItFirst) {
  FakeTarget target(2, {0xcc});
  std::string wire;
  GdbSession session(target, [&](std::string_view b) { wire += b; });
  session.attach();
  auto send = [&](std::string_view payload) {
    wire.clear();
    const std::string p = encode_packet(payload);
    session.receive(std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
  };
  const uint64_t va = FakeTarget::kVirtOffset + FakeTarget::kRamBase + 0x40;
  target.ram[0x40] = 0x90;
  for (unsigned i = 0; i < 8; ++i) target.regs[0][32 + i] = static_cast<uint8_t>(va >> (8 * i));
  send(fmt::format("Z0,{:x},1", va));
  send("c");
  ASSERT_EQ(target.resumes.size(), 1u);
  EXPECT_TRUE(target.resumes[0][0].single_step);
  EXPECT_FALSE(target.resumes[0][0].software_breakpoints);
  EXPECT_TRUE(target.resumes[0][1].hold);
  EXPECT_EQ(target.ram[0x40], 0x90);  // not planted while stepping off it
  wire.clear();
  target.running = false;
  target.event = GdbTarget::Stop{0, DebugStopKind::kStep, 0};
  target.regs[0][32] = static_cast<uint8_t>(va + 1);  // the step moved the pc
  session.on_target_event();
  EXPECT_EQ(wire, "");  // no stop reply: the continue goes on
  ASSERT_EQ(target.resumes.size(), 2u);
  EXPECT_FALSE(target.resumes[1][0].single_step);
  EXPECT_FALSE(target.resumes[1][1].hold);
  EXPECT_TRUE(target.resumes[1][0].software_breakpoints);
  EXPECT_EQ(target.ram[0x40], 0xcc);
  target.event = GdbTarget::Stop{0, DebugStopKind::kBreakpoint, va};
  session.on_target_event();
  EXPECT_NE(wire.find("T05thread:1;"), std::string::npos) << wire;
  EXPECT_EQ(target.ram[0x40], 0x90);
}

}  // namespace
}  // namespace doppel::gdb
