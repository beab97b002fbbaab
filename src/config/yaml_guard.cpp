// A pre-scan for inputs that make yaml-cpp 0.7 (Debian 12) loop forever: a ','
// in block context right after a complete node ("x",  [a] ,  &a ,  a line
// starting with ','). Found by fuzz_config. Such a comma is never part of a
// valid Weir configuration, so refusing it costs nothing.

#include "config/detail.h"

namespace weir::config::detail {

std::optional<std::pair<int, int>> find_unsafe_comma(std::string_view text) {
  int line = 1, col = 0;
  int depth = 0;                 // [ { nesting
  char quote = 0;                // inside '...' or "..."
  bool comment = false;
  char prev = 0;                 // previous character on this line ('\n' at line start)
  bool after_space = true;       // prev was blank or line start
  bool word_is_property = false; // the current word at depth 0 began with & ! *
  bool block_scalar = false;     // inside a | or > block: skip lines indented more than
  int block_indent = -1;         //   the line that opened it
  int line_indent = 0;
  bool at_indent = true;
  char last_sig = 0;             // last non-blank character of the previous content line
  bool node_start = true;        // at the start of a node: line start, after "- ", ": ",
                                 //   a property and a blank ("&a "), or in a flow
                                 //   collection after [ { , :
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    ++col;
    if (c == '\n') {
      if (quote == 0 && depth == 0 && (last_sig == '|' || last_sig == '>')) {
        block_scalar = true;
        block_indent = line_indent;
      }
      ++line;
      col = 0;
      comment = false;
      prev = '\n';
      after_space = true;
      word_is_property = false;
      line_indent = 0;
      at_indent = true;
      continue;
    }
    if (at_indent) {
      if (c == ' ') {
        ++line_indent;
        continue;
      }
      at_indent = false;
      node_start = true;
      if (block_scalar) {
        if (line_indent > block_indent) {
          // Content of a block scalar: skip to the end of the line.
          while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
          continue;
        }
        block_scalar = false;
      }
      last_sig = 0;
    }
    if (comment) continue;
    if (quote) {
      if (c == quote) {
        if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
          ++i;  // '' is an escaped quote
          ++col;
          continue;
        }
        quote = 0;
      } else if (c == '\\' && quote == '"') {
        ++i;
        ++col;
      }
      prev = c;
      last_sig = c;
      continue;
    }
    if (c == '#' && after_space) {
      comment = true;
      continue;
    }
    if (c == '"' || c == '\'') {
      // A quote opens a quoted scalar only where a node starts; inside a
      // plain scalar ("a  ' #") it is an ordinary character, and what
      // follows (a comment, the next line) is not quoted.
      if (node_start) quote = c;
    } else if ((c == '[' || c == '{') && (depth > 0 || node_start)) {
      // In block context a bracket opens a flow collection only where a node
      // starts; inside a plain scalar ("a${X{b") it is an ordinary character.
      ++depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    } else if (c == ',' && depth == 0) {
      const bool unsafe = prev == '\n' || prev == 0 || after_space || prev == '"' || prev == '\'' ||
                          prev == ']' || prev == '}' || word_is_property;
      if (unsafe) return std::make_pair(line, col);
    }
    if (c == ' ' || c == '\t') {
      if (prev == ':' || prev == '-' || word_is_property) node_start = true;
      after_space = true;
      word_is_property = false;
    } else {
      node_start = depth > 0 && (c == '[' || c == '{' || c == ',' || c == ':');
      if (after_space && depth == 0) word_is_property = c == '&' || c == '!' || c == '*';
      after_space = false;
      last_sig = c;
    }
    prev = c;
  }
  return std::nullopt;
}

}  // namespace weir::config::detail
