// A pre-scan for inputs that make yaml-cpp 0.7 (Debian 12) loop forever: a ','
// in block context right after a complete node ("x",  [a] ,  &a ,  a line
// starting with ','). Found by fuzz_config. Such a comma is never part of a
// valid Weir configuration, so refusing it costs nothing.

#include <yaml-cpp/eventhandler.h>

#include <sstream>

#include "config/detail.h"
#include "config/loader.h"

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

namespace {

// Notes where a document starts and where its first node is; ignores the rest.
class DocumentStart final : public YAML::EventHandler {
 public:
  std::optional<YAML::Mark> start, first_node;

  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark& mark) {
    if (!first_node) first_node = mark;
  }
};

}  // namespace

FirstDocument load_first_document(const std::string& yaml) {
  FirstDocument out;
  out.root = YAML::Load(yaml);  // one HandleNextDocument: always ends

  std::istringstream in(yaml);
  YAML::Parser parser(in);
  DocumentStart first, second;
  if (!parser.HandleNextDocument(first)) return out;
  if (!parser.HandleNextDocument(second)) return out;
  out.second = second.first_node ? *second.first_node : second.start.value_or(YAML::Mark());
  // The document's own start mark is where its '---' (or '...') stands, if
  // it has one; yaml-cpp marks are 0-based, pos is a byte offset.
  if (second.start && second.start->pos >= 0) {
    const auto at = static_cast<std::size_t>(second.start->pos);
    const std::string_view rest = std::string_view(yaml).substr(std::min(at, yaml.size()));
    out.second_is_marker = rest.starts_with("---") || rest.starts_with("...");
  }
  return out;
}

}  // namespace weir::config::detail
