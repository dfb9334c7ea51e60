// vcpumap/text.hpp — strings from outside, made safe for a terminal, JSON and XML.
//
//   fmt::print("{}\n", vcpumap::escape_terminal(domain.name));   // "evil\x1b]0;pwned\x07" shown, not obeyed
//   out += vcpumap::escape_json(domain.name);                    // "\"evil\\u001b]0;pwned\\u0007\""
//   svg += vcpumap::escape_xml(domain.name);                     // well-formed whatever the bytes
//
// Domain names are chosen by guest owners and reach admins' terminals, JSON consumers and
// SVG viewers; file contents and arguments land in error messages. Any byte string goes in;
// what comes out is valid UTF-8 with no byte a terminal acts on.
//
// - escape_terminal: control characters (C0, DEL, C1), bytes that are not valid UTF-8 and
//   the bidirectional controls that reorder a line (U+202A-U+202E, U+2066-U+2069, U+200E,
//   U+200F, U+061C) are written as \xHH (each byte) or \uHHHH; a backslash as \\, so the
//   escaped text names exactly one byte string. Valid printable UTF-8 passes unchanged.
// - terminal_safe: the same, but a backslash stays as it is: for a whole message whose
//   names were escaped already (it escapes nothing twice).
// - escape_json: a JSON string literal, quotes included: '"', '\', every control character,
//   the bidirectional controls and U+2028/U+2029 as escapes, each byte that is not valid
//   UTF-8 as U+FFFD (\ufffd): safe to print on a terminal too.
// - escape_xml: character data or an attribute value: & < > " ' as entities; characters XML
//   1.0 forbids (C0 but tab, newline and return) and invalid bytes as the visible text
//   \xHH, C1 controls likewise. Names with "]]>" or "--" need nothing more: they are escaped
//   as text, never placed in CDATA or comments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vcpumap {

namespace detail {

/// One UTF-8 sequence at text[at]: its code point and byte length, or length 0 when the byte
/// there does not start a valid sequence (overlong forms, surrogates and code points beyond
/// U+10FFFF are invalid too).
struct Utf8Char {
  char32_t code = 0;
  std::size_t length = 0;
};
inline Utf8Char decode_utf8(std::string_view text, std::size_t at) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(at);
  if (b0 < 0x80) return {b0, 1};
  std::size_t n = 0;
  char32_t code = 0, min = 0;
  if ((b0 & 0xe0) == 0xc0) n = 2, code = b0 & 0x1f, min = 0x80;
  else if ((b0 & 0xf0) == 0xe0) n = 3, code = b0 & 0x0f, min = 0x800;
  else if ((b0 & 0xf8) == 0xf0) n = 4, code = b0 & 0x07, min = 0x10000;
  else return {};
  if (text.size() - at < n) return {};
  for (std::size_t i = 1; i < n; ++i) {
    if ((byte(at + i) & 0xc0) != 0x80) return {};
    code = (code << 6) | (byte(at + i) & 0x3f);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return {};
  return {code, n};
}

inline bool is_control(char32_t c) noexcept { return c < 0x20 || (c >= 0x7f && c <= 0x9f); }
inline bool is_bidi_control(char32_t c) noexcept {
  return (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c == 0x200e || c == 0x200f || c == 0x61c;
}

inline void append_hex_bytes(std::string& out, std::string_view bytes) {
  constexpr char digits[] = "0123456789abcdef";
  for (char ch : bytes) {
    const auto b = static_cast<unsigned char>(ch);
    out += "\\x";
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
}
inline void append_u4(std::string& out, std::string_view prefix, char32_t c) {
  constexpr char digits[] = "0123456789abcdef";
  out += prefix;
  for (int shift = 12; shift >= 0; shift -= 4) out += digits[(c >> shift) & 0xf];
}

inline std::string escape_for_terminal(std::string_view text, bool escape_backslash) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const Utf8Char u = decode_utf8(text, i);
    if (u.length == 0) {
      append_hex_bytes(out, text.substr(i, 1));
      ++i;
      continue;
    }
    const std::string_view bytes = text.substr(i, u.length);
    i += u.length;
    if (is_control(u.code)) append_hex_bytes(out, bytes);
    else if (is_bidi_control(u.code)) append_u4(out, "\\u", u.code);
    else if (u.code == '\\' && escape_backslash) out += "\\\\";
    else out += bytes;
  }
  return out;
}

}  // namespace detail

/// `text` as a terminal may show it: see the top of this header. Backslashes doubled.
inline std::string escape_terminal(std::string_view text) { return detail::escape_for_terminal(text, true); }

/// As escape_terminal, leaving backslashes alone: for messages whose names are escaped already.
inline std::string terminal_safe(std::string_view text) { return detail::escape_for_terminal(text, false); }

/// `text` as a JSON string literal, quotes included; always valid UTF-8.
inline std::string escape_json(std::string_view text) {
  std::string out = "\"";
  out.reserve(text.size() + 2);
  for (std::size_t i = 0; i < text.size();) {
    const detail::Utf8Char u = detail::decode_utf8(text, i);
    if (u.length == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    const std::string_view bytes = text.substr(i, u.length);
    i += u.length;
    if (u.code == '"') out += "\\\"";
    else if (u.code == '\\') out += "\\\\";
    else if (detail::is_control(u.code) || detail::is_bidi_control(u.code) || u.code == 0x2028 || u.code == 0x2029)
      detail::append_u4(out, "\\u", u.code);
    else out += bytes;
  }
  return out + '"';
}

/// `text` as XML character data or attribute value; always well-formed XML 1.0.
inline std::string escape_xml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const detail::Utf8Char u = detail::decode_utf8(text, i);
    if (u.length == 0) {
      detail::append_hex_bytes(out, text.substr(i, 1));
      ++i;
      continue;
    }
    const std::string_view bytes = text.substr(i, u.length);
    i += u.length;
    switch (u.code) {
      case '&': out += "&amp;"; continue;
      case '<': out += "&lt;"; continue;
      case '>': out += "&gt;"; continue;
      case '"': out += "&quot;"; continue;
      case '\'': out += "&apos;"; continue;
      default: break;
    }
    if (detail::is_control(u.code) || u.code == 0xfffe || u.code == 0xffff) detail::append_hex_bytes(out, bytes);
    else out += bytes;
  }
  return out;
}

}  // namespace vcpumap
