// fuzz-fixture — libFuzzer target for the fixture reader and writer (vcpumap/fixture.hpp).
//
// The input is fixture text. Checked on every input, __builtin_trap() on a violation (after
// printing what failed):
// - read_fixture either throws vcpumap::Error (invalid_argument, a message naming the line
//   and holding no raw control character) or returns a host within the limits;
// - round trip: write_fixture(s) reads back equal to s, and writing that again gives the
//   same text;
// - a mock built from s (MockHypervisor::from_snapshot) holds exactly s;
// - the escapes of every domain name are valid UTF-8.
//
//   build-fuzz/tests/fuzz/fuzz-fixture -max_total_time=60 CORPUS_DIR ../tests/fuzz/corpus-fixture
//   build-fuzz/tests/fuzz/fuzz-fixture crash-file        # replay one input
#include <vcpumap/fixture.hpp>
#include <vcpumap/mock.hpp>
#include <vcpumap/text.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace {

std::string_view g_text;

[[noreturn]] void violated(const char* check, int line, const std::string& detail) {
  std::fprintf(stderr, "fuzz-fixture: check failed (line %d): %s\n  input: \"%s\"\n  %s\n", line, check,
               vcpumap::escape_terminal(g_text.substr(0, 400)).c_str(), detail.c_str());
  __builtin_trap();
}

#define CHECK(cond, detail)                           \
  do {                                                \
    if (!(cond)) violated(#cond, __LINE__, (detail)); \
  } while (0)

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto u = vcpumap::detail::decode_utf8(s, i);
    if (u.length == 0) return false;
    i += u.length;
  }
  return true;
}

bool inert(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto u = vcpumap::detail::decode_utf8(s, i);
    if (u.length == 0 || vcpumap::detail::is_control(u.code)) return false;
    i += u.length;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  g_text = text;
  vcpumap::HostSnapshot s;
  try {
    s = vcpumap::read_fixture(text);
  } catch (const vcpumap::Error& e) {
    const std::string_view what = e.what();
    CHECK(e.code() == vcpumap::ErrorCode::invalid_argument, std::string(what));
    CHECK(what.starts_with("fixture line ") || what.starts_with("fixture of "), std::string(what));
    CHECK(valid_utf8(what) && inert(what), vcpumap::escape_terminal(what));
    return 0;
  }
  const vcpumap::HostInfo& h = s.host;
  CHECK(h.cpu_universe() <= vcpumap::limits::max_cpus, "universe");
  std::size_t cells = 0;
  for (const vcpumap::DomainSnapshot& d : s.domains) {
    CHECK(d.domain.max_vcpus <= vcpumap::limits::max_vcpus, "vcpus");
    CHECK(d.vcpus.size() == d.domain.max_vcpus && d.hard.rows() == d.domain.max_vcpus, "shape");
    CHECK(d.domain.cpu_time.count() >= 0, "time");
    CHECK(d.domain.name.size() <= vcpumap::limits::max_name_bytes, "name");
    CHECK(valid_utf8(vcpumap::escape_terminal(d.domain.name)) && valid_utf8(vcpumap::escape_json(d.domain.name)) &&
              valid_utf8(vcpumap::escape_xml(d.domain.name)),
          "escapes");
    cells += std::size_t{d.domain.max_vcpus} * h.cpu_universe();
  }
  CHECK(cells <= vcpumap::limits::max_matrix_cells, "cells");

  const std::string written = vcpumap::write_fixture(s);
  vcpumap::HostSnapshot back;
  try {
    back = vcpumap::read_fixture(written);
  } catch (const vcpumap::Error& e) {
    violated("write_fixture output reads back", __LINE__, std::string(e.what()) + "\n  written: " +
                                                              vcpumap::escape_terminal(written.substr(0, 400)));
  }
  CHECK(back == s, "read(write(s)) != s; written: " + vcpumap::escape_terminal(written.substr(0, 400)));
  CHECK(vcpumap::write_fixture(back) == written, "write is not stable");

  vcpumap::HostSnapshot state = vcpumap::MockHypervisor::from_snapshot(s).state();
  state.taken_at = s.taken_at;
  for (vcpumap::DomainSnapshot& d : state.domains) d.taken_at = {};
  CHECK(state == s, "the mock does not hold the host it was built from");
  return 0;
}
