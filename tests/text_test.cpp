// Escaping untrusted strings (text.hpp) for terminals, JSON and XML.
#include <vcpumap/text.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>

using namespace vcpumap;

namespace {

/// True when every byte of s is part of a valid UTF-8 sequence.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const detail::Utf8Char u = detail::decode_utf8(s, i);
    if (u.length == 0) return false;
    i += u.length;
  }
  return true;
}

/// True when s holds no code point a terminal acts on (C0 but newline, DEL, C1, bidi).
bool terminal_inert(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const detail::Utf8Char u = detail::decode_utf8(s, i);
    if (u.length == 0 || detail::is_control(u.code) || detail::is_bidi_control(u.code)) return false;
    i += u.length;
  }
  return true;
}

std::string random_bytes(std::mt19937_64& rng) {
  std::string s(rng() % 24, '\0');
  for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 0x20 : rng() % 256);
  return s;
}

}  // namespace

TEST_CASE("escape_terminal shows control sequences instead of sending them", "[text]") {
  CHECK(escape_terminal("web") == "web");
  CHECK(escape_terminal("caf\xc3\xa9 \xe6\x97\xa5") == "caf\xc3\xa9 \xe6\x97\xa5");  // printable UTF-8 passes
  CHECK(escape_terminal("a\x1b]0;pwned\x07z") == "a\\x1b]0;pwned\\x07z");            // OSC retitle, BEL
  CHECK(escape_terminal("\x1b[2J\r\n\t") == "\\x1b[2J\\x0d\\x0a\\x09");
  CHECK(escape_terminal("\x7f\xc2\x9b") == "\\x7f\\xc2\\x9b");                        // DEL, C1 CSI
  CHECK(escape_terminal("\xff\xc3") == "\\xff\\xc3");                                // invalid UTF-8
  CHECK(escape_terminal("\xe0\x80\x80\xed\xa0\x80") == "\\xe0\\x80\\x80\\xed\\xa0\\x80");  // overlong, surrogate
  CHECK(escape_terminal("ab\xe2\x80\xae" "cd") == "ab\\u202ecd");                    // right-to-left override
  CHECK(escape_terminal("a\\x1b") == "a\\\\x1b");  // a backslash is escaped: one text, one byte string
  CHECK(terminal_safe("a\\x1b\x1b") == "a\\x1b\\x1b");
  CHECK(escape_terminal(std::string("a\0b", 3)) == "a\\x00b");
}

TEST_CASE("escape_json: always a valid UTF-8 JSON string", "[text]") {
  CHECK(escape_json("web") == "\"web\"");
  CHECK(escape_json("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(escape_json("\x1b]0;x\x07\x7f") == "\"\\u001b]0;x\\u0007\\u007f\"");
  CHECK(escape_json("\xff\xc3\xa9") == "\"\\ufffd\xc3\xa9\"");
  CHECK(escape_json("\xe2\x80\xa8") == "\"\\u2028\"");
}

TEST_CASE("escape_xml: entities, and what XML forbids made visible", "[text]") {
  CHECK(escape_xml("<a href=\"x\">&'") == "&lt;a href=&quot;x&quot;&gt;&amp;&apos;");
  CHECK(escape_xml("]]>--\x1b\xff") == "]]&gt;--\\x1b\\xff");
  CHECK(escape_xml("\xef\xbf\xbe") == "\\xef\\xbf\\xbe");  // U+FFFE is not an XML character
}

TEST_CASE("escaping random bytes: valid UTF-8 and inert, whatever goes in", "[text][property]") {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    const std::string s = random_bytes(rng);
    for (const std::string& out : {escape_terminal(s), terminal_safe(s), escape_json(s)}) {
      REQUIRE(valid_utf8(out));
      REQUIRE(terminal_inert(out));
    }
    const std::string xml = escape_xml(s);  // bidi controls are text in a picture: only controls go
    REQUIRE(valid_utf8(xml));
    for (std::size_t i = 0; i < xml.size();) {
      const detail::Utf8Char u = detail::decode_utf8(xml, i);
      REQUIRE(!detail::is_control(u.code));
      i += u.length;
    }
    // escape_terminal is one-to-one: different names never look the same.
    const std::string t = random_bytes(rng);
    if (s != t) REQUIRE(escape_terminal(s) != escape_terminal(t));
  }
}
