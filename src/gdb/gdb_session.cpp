#include "gdb/gdb_session.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include <fmt/format.h>

namespace doppel::gdb {

namespace {

// gdb's signal numbers in stop replies.
constexpr int kSigInt = 2, kSigTrap = 5;
// Largest m reply, in bytes (two hex digits each, within kMaxPayload).
constexpr uint64_t kMaxRead = kMaxPayload / 2 - 16;

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    const size_t at = text.find(sep, start);
    parts.push_back(text.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

// "ADDR,LEN" with both hex.
std::optional<std::pair<uint64_t, uint64_t>> parse_addr_len(std::string_view text) {
  const size_t comma = text.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  const auto addr = parse_hex(text.substr(0, comma));
  const auto len = parse_hex(text.substr(comma + 1));
  if (!addr || !len) return std::nullopt;
  return std::pair{*addr, *len};
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    const size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

// A number as QEMU's monitor reads it: 0x-prefixed hex, or decimal.
std::optional<uint64_t> parse_monitor_number(std::string_view text) {
  if (text.starts_with("0x") || text.starts_with("0X")) return parse_hex(text.substr(2));
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

const char* const kMonitorHelp =
    "doppel's monitor commands:\n"
    "  info registers [-a]   every register of the current vCPU (-a: of all vCPUs)\n"
    "  info status           whether the VM runs or is paused\n"
    "  xp /FMT ADDR          physical memory: FMT = [count][x|d|u][b|h|w|g] (QEMU's syntax)\n"
    "  x /FMT ADDR           the same at a virtual address of the current vCPU\n"
    "  help                  this text\n";

}  // namespace

GdbSession::GdbSession(GdbTarget& target, std::function<void(std::string_view)> send)
    : m_target(target), m_send(std::move(send)) {}

void GdbSession::attach() {
  if (auto r = m_target.stop(); !r.ok()) return;  // the VM has ended: '?' reports it
  m_running = false;
}

void GdbSession::reply(std::string_view payload) {
  m_last_sent = encode_packet(payload);
  m_send(m_last_sent);
}

void GdbSession::receive(std::span<const uint8_t> bytes) {
  std::vector<PacketEvent> events;
  m_decoder.feed(bytes, events);
  for (auto& e : events) {
    if (m_finished) return;
    switch (e.kind) {
      case PacketEvent::Kind::kAck:
        break;
      case PacketEvent::Kind::kNack:
        if (m_ack_mode && !m_last_sent.empty()) m_send(m_last_sent);
        break;
      case PacketEvent::Kind::kBadPacket:
        if (m_ack_mode) m_send("-");
        break;
      case PacketEvent::Kind::kTooLong:
        if (m_ack_mode) m_send("+");
        reply("E01");
        break;
      case PacketEvent::Kind::kInterrupt:
        if (m_running) {
          if (m_target.stop().ok()) {
            m_running = false;
            m_step_over.reset();
            unplant_breakpoints();
            // A vCPU may have stopped for the debugger meanwhile: that is the better answer.
            if (const auto stop = m_target.stop_event()) {
              m_last_stop = stop;
              m_last_interrupted = false;
              m_g_vcpu = stop->vcpu;
            } else {
              const unsigned vcpu = m_c_vcpu >= 0 ? static_cast<unsigned>(m_c_vcpu) : m_g_vcpu;
              m_last_stop = GdbTarget::Stop{vcpu, DebugStopKind::kStep, 0};
              m_last_interrupted = true;
            }
            reply(stop_reply(*m_last_stop, m_last_interrupted));
          } else {
            on_target_event();
          }
        }
        break;
      case PacketEvent::Kind::kPacket:
        if (m_ack_mode) m_send("+");
        handle(e.payload);
        break;
    }
  }
}

void GdbSession::on_target_event() {
  if (!m_running) return;
  if (const auto code = m_target.exit_code()) {
    m_running = false;
    reply(exit_reply(*code));
    return;
  }
  const auto stop = m_target.stop_event();
  if (!stop) return;
  if (!m_target.stop().ok()) return;  // it ended meanwhile: the next event says how
  m_running = false;
  unplant_breakpoints();
  const auto step_over = std::exchange(m_step_over, std::nullopt);
  if (step_over && stop->vcpu == *step_over && stop->kind == DebugStopKind::kStep) {
    // Stepped off a breakpoint: now the continue gdb asked for.
    if (const auto r = resume(std::exchange(m_deferred, {}))) reply(*r);
    return;
  }
  m_last_stop = stop;
  m_last_interrupted = false;
  m_g_vcpu = stop->vcpu;
  reply(stop_reply(*stop, false));
}

void GdbSession::disconnect() {
  if (m_target.exit_code()) return;
  if (m_running && !m_target.stop().ok()) return;
  m_step_over.reset();
  unplant_breakpoints();
  m_breakpoints.clear();
  m_watchpoints.clear();
  m_running = false;
  (void)m_target.resume(std::vector<DebugControl>(m_target.vcpu_count()));
}

std::string GdbSession::stop_reply(const GdbTarget::Stop& stop, bool interrupted) const {
  std::string r = fmt::format("T{:02x}thread:{:x};", interrupted ? kSigInt : kSigTrap,
                              stop.vcpu + 1);
  if (interrupted) return r;
  switch (stop.kind) {
    case DebugStopKind::kBreakpoint: {
      // The reason gdb understands. An engine that says where it stopped (addr) is told
      // apart by the breakpoint there; else a hit is a software one unless only hardware
      // breakpoints are set.
      bool hardware;
      if (stop.addr != 0 && std::any_of(m_breakpoints.begin(), m_breakpoints.end(),
                                        [&](const Breakpoint& b) { return b.addr == stop.addr; }))
        hardware = std::none_of(
            m_breakpoints.begin(), m_breakpoints.end(),
            [&](const Breakpoint& b) { return b.addr == stop.addr && !b.hardware; });
      else
        hardware = !m_breakpoints.empty() &&
                   std::all_of(m_breakpoints.begin(), m_breakpoints.end(),
                               [](const Breakpoint& b) { return b.hardware; });
      if (hardware && m_hwbreak) r += "hwbreak:;";
      else if (!hardware && m_swbreak) r += "swbreak:;";
      break;
    }
    case DebugStopKind::kStep:
      break;
    case DebugStopKind::kWatchWrite:
      r += fmt::format("watch:{:x};", stop.addr);
      break;
    case DebugStopKind::kWatchRead:
      r += fmt::format("rwatch:{:x};", stop.addr);
      break;
    case DebugStopKind::kWatchAccess:
      r += fmt::format("awatch:{:x};", stop.addr);
      break;
  }
  return r;
}

std::string GdbSession::exit_reply(int code) const {
  return fmt::format("W{:02x}", static_cast<unsigned>(code) & 0xff);
}

void GdbSession::handle(std::string_view packet) {
  if (packet.empty()) return reply("");
  if (m_running) {
    // Only Ctrl-C is expected while the target runs (all-stop); anything else is refused.
    return reply("E01");
  }
  if (const auto code = m_target.exit_code(); code && packet[0] != 'q' && packet[0] != 'Q' &&
                                              packet[0] != 'D' && packet[0] != 'k' &&
                                              !packet.starts_with("vKill")) {
    return reply(exit_reply(*code));
  }
  const std::string_view args = packet.substr(1);
  std::optional<std::string> r;
  switch (packet[0]) {
    case '?':
      if (const auto code = m_target.exit_code()) r = exit_reply(*code);
      else r = stop_reply(m_last_stop.value_or(GdbTarget::Stop{m_g_vcpu, DebugStopKind::kStep, 0}),
                          false);
      break;
    case 'q':
    case 'Q':
      r = handle_query(packet);
      break;
    case 'g':
      r = handle_read_registers();
      break;
    case 'G':
      r = handle_write_registers(args);
      break;
    case 'p':
      r = handle_read_register(args);
      break;
    case 'P':
      r = handle_write_register(args);
      break;
    case 'm':
      r = handle_read_memory(args);
      break;
    case 'M':
      r = handle_write_memory(args, false);
      break;
    case 'X':
      r = handle_write_memory(args, true);
      break;
    case 'Z':
    case 'z':
      r = handle_breakpoint(args, packet[0] == 'Z');
      break;
    case 'H':
      r = handle_set_thread(args);
      break;
    case 'T': {
      const int v = parse_thread(args);
      r = v >= 0 ? "OK" : "E01";
      break;
    }
    case 'c':
    case 's':
    case 'C':
    case 'S':
      r = resume_legacy(packet[0], args);
      break;
    case 'v':
      if (packet == "vCont?") r = "vCont;c;C;s;S";
      else if (packet.starts_with("vCont;")) r = handle_vcont(packet.substr(6));
      else if (packet.starts_with("vKill")) {
        reply("OK");
        m_target.kill();
        m_finished = true;
        return;
      } else r = "";  // vMustReplyEmpty, vFile, vRun ...: not supported
      break;
    case 'D':
      r = handle_detach();
      break;
    case 'k':
      m_target.kill();
      m_finished = true;
      return;  // no reply
    default:
      r = "";
      break;
  }
  if (r) reply(*r);
}

std::optional<std::string> GdbSession::handle_query(std::string_view packet) {
  if (packet.starts_with("qSupported")) {
    const std::string_view features = packet.size() > 11 ? packet.substr(11) : "";
    for (auto f : split(features, ';')) {
      if (f == "swbreak+") m_swbreak = true;
      if (f == "hwbreak+") m_hwbreak = true;
    }
    return fmt::format(
        "PacketSize={:x};qXfer:features:read+;swbreak+;hwbreak+;vContSupported+;"
        "QStartNoAckMode+",
        kMaxPayload);
  }
  if (packet == "QStartNoAckMode") {
    reply("OK");
    m_ack_mode = false;
    return std::nullopt;
  }
  if (packet.starts_with("qXfer:features:read:")) {
    const std::string_view rest = packet.substr(20);
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos) return "E01";
    if (rest.substr(0, colon) != "target.xml") return "E00";
    const auto range = parse_addr_len(rest.substr(colon + 1));
    if (!range) return "E01";
    const std::string xml = target_xml();
    if (range->first >= xml.size()) return "l";
    const uint64_t len = std::min<uint64_t>({range->second, xml.size() - range->first,
                                             kMaxPayload / 2});
    const bool last = range->first + len >= xml.size();
    return (last ? "l" : "m") + xml.substr(range->first, len);
  }
  if (packet == "qAttached" || packet.starts_with("qAttached:")) return "1";
  if (packet == "qC") return fmt::format("QC{:x}", m_g_vcpu + 1);
  if (packet == "qfThreadInfo") {
    std::string r = "m";
    for (unsigned i = 0; i < m_target.vcpu_count(); ++i)
      r += fmt::format("{}{:x}", i == 0 ? "" : ",", i + 1);
    return r;
  }
  if (packet == "qsThreadInfo") return "l";
  if (packet.starts_with("qThreadExtraInfo,")) {
    const int v = parse_thread(packet.substr(17));
    if (v < 0) return "E01";
    return hex_encode(fmt::format("CPU#{} [{}]", v, m_running ? "running" : "stopped"));
  }
  if (packet.starts_with("qRcmd,")) {
    const auto bytes = hex_decode(packet.substr(6));
    if (!bytes) return "E01";
    const std::string command(bytes->begin(), bytes->end());
    const std::string out = handle_monitor(command);
    // The output as console-output packets, then the final OK.
    for (size_t i = 0; i < out.size(); i += kMaxPayload / 4)
      reply("O" + hex_encode(std::string_view(out).substr(i, kMaxPayload / 4)));
    return "OK";
  }
  if (packet.starts_with("qSymbol")) return "OK";
  return "";  // qTStatus, qOffsets, qGetTLSAddr...: not supported
}

size_t GdbSession::register_bytes(unsigned index) const {
  return m_target.arch().registers.at(index).bits / 8;
}

std::string GdbSession::target_xml() const {
  const DebugArch& arch = m_target.arch();
  std::string xml = fmt::format(
      "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
      "<target version=\"1.0\">\n<architecture>{}</architecture>\n",
      arch.gdb_arch);
  std::string_view feature;
  for (size_t i = 0; i < arch.registers.size(); ++i) {
    const DebugRegister& r = arch.registers[i];
    if (r.feature != feature) {
      if (!feature.empty()) xml += "</feature>\n";
      feature = r.feature;
      xml += fmt::format("<feature name=\"{}\">\n", feature);
    }
    xml += fmt::format("  <reg name=\"{}\" bitsize=\"{}\" type=\"{}\" regnum=\"{}\"{}/>\n", r.name,
                       r.bits, r.type, i,
                       r.group.empty() ? std::string() : fmt::format(" group=\"{}\"", r.group));
  }
  if (!feature.empty()) xml += "</feature>\n";
  xml += "</target>\n";
  return xml;
}

std::string GdbSession::handle_read_registers() {
  auto regs = m_target.read_registers(m_g_vcpu);
  if (!regs.ok()) return "E01";
  return hex_encode(*regs);
}

std::string GdbSession::handle_write_registers(std::string_view hex) {
  const auto bytes = hex_decode(hex);
  if (!bytes) return "E01";
  const auto& regs = m_target.arch().registers;
  size_t total = 0;
  for (unsigned i = 0; i < regs.size(); ++i) total += register_bytes(i);
  if (bytes->size() != total) return "E01";
  size_t at = 0;
  for (unsigned i = 0; i < regs.size(); ++i) {
    const size_t n = register_bytes(i);
    if (!m_target.write_register(m_g_vcpu, i, std::span(*bytes).subspan(at, n)).ok()) return "E01";
    at += n;
  }
  return "OK";
}

std::string GdbSession::handle_read_register(std::string_view args) {
  const auto n = parse_hex(args);
  if (!n || *n >= m_target.arch().registers.size()) return "E01";
  auto regs = m_target.read_registers(m_g_vcpu);
  if (!regs.ok()) return "E01";
  size_t at = 0;
  for (unsigned i = 0; i < *n; ++i) at += register_bytes(i);
  const size_t len = register_bytes(static_cast<unsigned>(*n));
  if (at + len > regs->size()) return "E01";
  return hex_encode(std::span(*regs).subspan(at, len));
}

std::string GdbSession::handle_write_register(std::string_view args) {
  const size_t eq = args.find('=');
  if (eq == std::string_view::npos) return "E01";
  const auto n = parse_hex(args.substr(0, eq));
  const auto bytes = hex_decode(args.substr(eq + 1));
  if (!n || !bytes || *n >= m_target.arch().registers.size()) return "E01";
  if (!m_target.write_register(m_g_vcpu, static_cast<unsigned>(*n), *bytes).ok()) return "E01";
  return "OK";
}

Result<std::vector<uint8_t>> GdbSession::read_memory(unsigned vcpu, uint64_t addr, uint64_t len,
                                                     bool physical) {
  std::vector<uint8_t> out;
  while (out.size() < len) {
    const uint64_t va = addr + out.size();
    const uint64_t chunk = std::min<uint64_t>(len - out.size(), 0x1000 - (va & 0xfff));
    Result<uint64_t> pa = physical ? Result<uint64_t>(va) : m_target.translate(vcpu, va);
    if (pa.ok()) {
      std::vector<uint8_t> buf(chunk);
      if (auto r = m_target.read_physical(*pa, buf); r.ok()) {
        out.insert(out.end(), buf.begin(), buf.end());
        continue;
      } else if (out.empty()) {
        return r.error();
      }
    } else if (out.empty()) {
      return pa.error();
    }
    break;
  }
  return out;
}

Result<void> GdbSession::write_memory(unsigned vcpu, uint64_t addr,
                                      std::span<const uint8_t> data) {
  // Translate every page first: nothing is written unless all of it can be.
  std::vector<std::pair<uint64_t, size_t>> pieces;
  for (size_t done = 0; done < data.size();) {
    const uint64_t va = addr + done;
    const size_t chunk = std::min<size_t>(data.size() - done, 0x1000 - (va & 0xfff));
    pieces.emplace_back(TRY(m_target.translate(vcpu, va)), chunk);
    done += chunk;
  }
  size_t done = 0;
  for (const auto& [pa, chunk] : pieces) {
    TRY(m_target.write_physical(pa, data.subspan(done, chunk)));
    done += chunk;
  }
  return ok();
}

std::string GdbSession::handle_read_memory(std::string_view args) {
  const auto range = parse_addr_len(args);
  if (!range) return "E01";
  if (range->second == 0) return "";
  auto bytes = read_memory(m_g_vcpu, range->first, std::min(range->second, kMaxRead), false);
  if (!bytes.ok()) return "E14";
  return hex_encode(*bytes);
}

std::string GdbSession::handle_write_memory(std::string_view args, bool binary) {
  const size_t colon = args.find(':');
  if (colon == std::string_view::npos) return "E01";
  const auto range = parse_addr_len(args.substr(0, colon));
  if (!range) return "E01";
  std::vector<uint8_t> data;
  const std::string_view body = args.substr(colon + 1);
  if (binary) {
    data.assign(body.begin(), body.end());
  } else {
    auto decoded = hex_decode(body);
    if (!decoded) return "E01";
    data = std::move(*decoded);
  }
  if (data.size() != range->second) return "E01";
  if (data.empty()) return "OK";  // gdb's probe for X
  if (!write_memory(m_g_vcpu, range->first, data).ok()) return "E14";
  return "OK";
}

std::string GdbSession::handle_breakpoint(std::string_view args, bool insert) {
  // TYPE,ADDR,KIND (conditions and commands after ';' are not supported: refused).
  const auto parts = split(args, ',');
  if (parts.size() != 3 || parts[0].size() != 1) return "E01";
  const auto addr = parse_hex(parts[1]);
  const auto kind = parse_hex(parts[2].substr(0, parts[2].find(';')));
  if (!addr || !kind || parts[2].find(';') != std::string_view::npos) return "E01";
  const char type = parts[0][0];
  if (type == '0' || type == '1') {
    const bool hardware = type == '1';
    auto it = std::find_if(m_breakpoints.begin(), m_breakpoints.end(), [&](const Breakpoint& b) {
      return b.addr == *addr && b.hardware == hardware;
    });
    if (insert) {
      if (it == m_breakpoints.end()) {
        if (m_breakpoints.size() >= 1024) return "E01";
        m_breakpoints.push_back({*addr, hardware});
      }
    } else if (it != m_breakpoints.end()) {
      m_breakpoints.erase(it);
    }
    return "OK";
  }
  if (type == '2' || type == '3' || type == '4') {
    if (*kind == 0 || *kind > 0x1000 || *addr + *kind < *addr) return "E01";
    const auto wkind = static_cast<WatchKind>(type - '0');
    auto it = std::find_if(m_watchpoints.begin(), m_watchpoints.end(), [&](const Watchpoint& w) {
      return w.addr == *addr && w.len == *kind && w.kind == wkind;
    });
    if (insert) {
      if (it == m_watchpoints.end()) {
        if (m_watchpoints.size() >= 64) return "E01";
        m_watchpoints.push_back({*addr, *kind, wkind});
      }
    } else if (it != m_watchpoints.end()) {
      m_watchpoints.erase(it);
    }
    return "OK";
  }
  return "";  // an unknown type: not supported
}

int GdbSession::parse_thread(std::string_view text) const {
  if (text.starts_with('p')) {  // pPID.TID (multiprocess syntax)
    const size_t dot = text.find('.');
    if (dot == std::string_view::npos) return -1;
    text = text.substr(dot + 1);
  }
  if (text == "-1") return -1;
  if (text == "0") return static_cast<int>(m_g_vcpu);  // any thread: the current one
  const auto tid = parse_hex(text);
  if (!tid || *tid == 0 || *tid > m_target.vcpu_count()) return -2;
  return static_cast<int>(*tid - 1);
}

std::string GdbSession::handle_set_thread(std::string_view args) {
  if (args.empty()) return "E01";
  const int v = parse_thread(args.substr(1));
  if (v == -2) return "E01";
  if (args[0] == 'g') {
    if (v < 0) return "E01";
    m_g_vcpu = static_cast<unsigned>(v);
    return "OK";
  }
  if (args[0] == 'c') {
    m_c_vcpu = v;
    return "OK";
  }
  return "E01";
}

DebugControl GdbSession::control_for_continue() const {
  DebugControl c;
  // Where the arch has a breakpoint instruction, Z0 breakpoints are planted in memory at
  // each resume (plant_breakpoints()); the engine checks the rest itself.
  const bool planted = !m_target.arch().sw_break.empty();
  for (const auto& b : m_breakpoints)
    if (b.hardware || !planted) c.breakpoints.push_back(b.addr);
  c.watchpoints = m_watchpoints;
  return c;
}

std::vector<uint64_t> GdbSession::plant_breakpoints() {
  std::vector<uint64_t> pending;
  const std::vector<uint8_t>& insn = m_target.arch().sw_break;
  if (insn.empty()) return pending;
  for (const auto& b : m_breakpoints) {
    if (b.hardware) continue;
    // By physical address: the stop may come on a vCPU with other page tables.
    auto pa = m_target.translate(m_g_vcpu, b.addr);
    std::vector<uint8_t> original(insn.size());
    if (!pa.ok() || (*pa & 0xfff) + insn.size() > 0x1000 ||
        !m_target.read_physical(*pa, original).ok() || !m_target.write_physical(*pa, insn).ok()) {
      // Not mapped (yet): before the guest turns paging on, or a module not loaded. The
      // engine watches the virtual address instead (as QEMU's users do with hbreak), so
      // the breakpoint fires once the guest runs the code there.
      if (std::find(pending.begin(), pending.end(), b.addr) == pending.end())
        pending.push_back(b.addr);
      continue;
    }
    m_planted.push_back({*pa, std::move(original)});
  }
  return pending;
}

void GdbSession::unplant_breakpoints() {
  // In reverse, so that two breakpoints on the same bytes restore the first original.
  for (auto it = m_planted.rbegin(); it != m_planted.rend(); ++it)
    (void)m_target.write_physical(it->pa, it->original);
  m_planted.clear();
}

std::optional<uint64_t> GdbSession::read_pc(unsigned vcpu) {
  const auto& regs = m_target.arch().registers;
  size_t at = 0;
  unsigned pc = 0;
  while (pc < regs.size() && regs[pc].name != "pc" && regs[pc].name != "rip")
    at += register_bytes(pc++);
  if (pc == regs.size()) return std::nullopt;
  auto bytes = m_target.read_registers(vcpu);
  if (!bytes.ok() || at + 8 > bytes->size()) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v |= static_cast<uint64_t>((*bytes)[at + i]) << (8 * i);
  return v;
}

std::optional<std::string> GdbSession::resume(std::vector<DebugControl> controls) {
  // A vCPU continuing from a planted breakpoint's address would stop there again at once
  // (gdb steps over its breakpoints itself, other debuggers may not): it first steps over
  // the original instruction alone, then everything resumes (on_target_event()).
  if (!m_target.arch().sw_break.empty()) {
    for (unsigned v = 0; v < controls.size(); ++v) {
      if (controls[v].hold || controls[v].single_step) continue;
      const auto pc = read_pc(v);
      if (!pc || std::none_of(m_breakpoints.begin(), m_breakpoints.end(), [&](const Breakpoint& b) {
            return !b.hardware && b.addr == *pc;
          }))
        continue;
      std::vector<DebugControl> step(controls.size());
      for (auto& c : step) c.hold = true;
      step[v].hold = false;
      step[v].single_step = true;
      if (!m_target.resume(step).ok()) break;  // the plain resume below reports it
      m_step_over = v;
      m_deferred = std::move(controls);
      m_running = true;
      return std::nullopt;
    }
  }
  // gdb has taken out the breakpoint a step starts on (it steps over it itself), so every
  // running vCPU gets the planted ones and the pending ones.
  const std::vector<uint64_t> pending = plant_breakpoints();
  for (auto& c : controls) {
    if (c.hold) continue;
    c.software_breakpoints = !m_planted.empty();
    for (const uint64_t addr : pending)
      if (std::find(c.breakpoints.begin(), c.breakpoints.end(), addr) == c.breakpoints.end())
        c.breakpoints.push_back(addr);
  }
  if (auto r = m_target.resume(controls); !r.ok()) {
    unplant_breakpoints();
    if (const auto code = m_target.exit_code()) return exit_reply(*code);
    return "E01";
  }
  m_running = true;
  return std::nullopt;
}

std::optional<std::string> GdbSession::resume_legacy(char action, std::string_view args) {
  // c [ADDR], s [ADDR], C SIG[;ADDR], S SIG[;ADDR]: the signal means nothing to a VM.
  if (action == 'C' || action == 'S') {
    const size_t semi = args.find(';');
    if (!parse_hex(args.substr(0, semi))) return "E01";
    args = semi == std::string_view::npos ? std::string_view() : args.substr(semi + 1);
  }
  const unsigned vcpu = m_c_vcpu >= 0 ? static_cast<unsigned>(m_c_vcpu) : m_g_vcpu;
  if (!args.empty()) {
    const auto addr = parse_hex(args);
    if (!addr) return "E01";
    // The pc is the register after the general ones in every DebugArch doppel has; find
    // it by name to be sure.
    const auto& regs = m_target.arch().registers;
    unsigned pc = 0;
    while (pc < regs.size() && regs[pc].name != "pc" && regs[pc].name != "rip") ++pc;
    if (pc == regs.size()) return "E01";
    std::vector<uint8_t> value(register_bytes(pc));
    for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<uint8_t>(*addr >> (8 * i));
    if (!m_target.write_register(vcpu, pc, value).ok()) return "E01";
  }
  std::vector<DebugControl> controls(m_target.vcpu_count(), control_for_continue());
  if (action == 's' || action == 'S') {
    for (auto& c : controls) c.hold = true;
    controls[vcpu] = control_for_continue();
    controls[vcpu].single_step = true;
  }
  return resume(std::move(controls));
}

std::optional<std::string> GdbSession::handle_vcont(std::string_view args) {
  // ACTION[:THREAD](;ACTION[:THREAD])*: the first action that names a vCPU applies to it;
  // one without a thread applies to the rest; a vCPU no action names stays stopped.
  const unsigned n = m_target.vcpu_count();
  std::vector<std::optional<char>> action(n);
  for (const auto& item : split(args, ';')) {
    if (item.empty()) return "E01";
    const size_t colon = item.find(':');
    std::string_view verb = item.substr(0, colon);
    char a = verb[0];
    if (a == 'C' || a == 'S') {
      if (!parse_hex(verb.substr(1))) return "E01";
      a = a == 'C' ? 'c' : 's';
    } else if ((a != 'c' && a != 's') || verb.size() != 1) {
      return "E01";  // t, r and the rest are not supported
    }
    if (colon == std::string_view::npos) {
      for (auto& slot : action)
        if (!slot) slot = a;
    } else {
      const int v = parse_thread(item.substr(colon + 1));
      if (v == -2) return "E01";
      if (v == -1) {
        for (auto& slot : action)
          if (!slot) slot = a;
      } else if (!action[static_cast<size_t>(v)]) {
        action[static_cast<size_t>(v)] = a;
      }
    }
  }
  std::vector<DebugControl> controls(n);
  bool any = false;
  for (unsigned i = 0; i < n; ++i) {
    if (!action[i]) {
      controls[i].hold = true;
      continue;
    }
    any = true;
    controls[i] = control_for_continue();
    controls[i].single_step = *action[i] == 's';
  }
  if (!any) return "E01";
  return resume(std::move(controls));
}

std::string GdbSession::handle_detach() {
  m_breakpoints.clear();
  m_watchpoints.clear();
  m_finished = true;
  if (m_target.exit_code()) return "OK";
  if (!m_target.resume(std::vector<DebugControl>(m_target.vcpu_count())).ok()) return "E01";
  return "OK";
}

std::string GdbSession::handle_monitor(std::string_view command) {
  const auto w = words(command);
  if (w.empty() || w[0] == "help") return kMonitorHelp;
  if (w[0] == "info" && w.size() >= 2) {
    if (w[1] == "registers") {
      if (w.size() == 3 && w[2] == "-a") {
        std::string out;
        for (unsigned i = 0; i < m_target.vcpu_count(); ++i) out += m_target.describe(i);
        return out;
      }
      if (w.size() != 2) return "info registers: the only option is -a\n";
      return m_target.describe(m_g_vcpu);
    }
    if (w[1] == "status") return fmt::format("VM status: {}\n", m_target.status());
  }
  if ((w[0] == "xp" || w[0] == "x") && w.size() == 3 && w[1].starts_with('/')) {
    // /[count][format][size]
    std::string_view fmt_text = w[1].substr(1);
    size_t digits = 0;
    while (digits < fmt_text.size() && fmt_text[digits] >= '0' && fmt_text[digits] <= '9')
      ++digits;
    uint64_t count = 1;
    if (digits > 0) {
      const auto c = parse_monitor_number(fmt_text.substr(0, digits));
      if (!c || *c == 0 || *c > 4096) return fmt::format("{}: the count must be 1 to 4096\n", w[0]);
      count = *c;
    }
    char format = 'x';
    unsigned size = 4;
    for (const char c : fmt_text.substr(digits)) {
      if (c == 'x' || c == 'd' || c == 'u') format = c;
      else if (c == 'b') size = 1;
      else if (c == 'h') size = 2;
      else if (c == 'w') size = 4;
      else if (c == 'g') size = 8;
      else return fmt::format("{}: unknown format '{}' (use [count][x|d|u][b|h|w|g])\n", w[0], c);
    }
    const auto addr = parse_monitor_number(w[2]);
    if (!addr) return fmt::format("{}: '{}' is not an address\n", w[0], w[2]);
    const bool physical = w[0] == "xp";
    auto bytes = read_memory(m_g_vcpu, *addr, count * size, physical);
    if (!bytes.ok() || bytes->size() < count * size)
      return fmt::format("{}: cannot read {} bytes at {:#x}{}\n", w[0], count * size, *addr,
                         bytes.ok() ? "" : ": " + bytes.error().message());
    std::string out;
    const unsigned per_line = 16 / size;
    for (uint64_t i = 0; i < count; ++i) {
      if (i % per_line == 0) out += fmt::format("{}{:016x}:", i ? "\n" : "", *addr + i * size);
      uint64_t v = 0;
      for (unsigned b = 0; b < size; ++b) v |= static_cast<uint64_t>((*bytes)[i * size + b]) << (8 * b);
      if (format == 'x') out += fmt::format(" 0x{:0{}x}", v, size * 2);
      else if (format == 'u') out += fmt::format(" {}", v);
      else {
        const unsigned shift = 64 - 8 * size;
        out += fmt::format(" {}", static_cast<int64_t>(v << shift) >> shift);
      }
    }
    return out + "\n";
  }
  return fmt::format("unknown monitor command '{}'; 'monitor help' lists them\n", command);
}

}  // namespace doppel::gdb
