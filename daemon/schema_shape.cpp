#include "schema_shape.hpp"

#include <nlohmann/json.hpp>

namespace {

std::string join_key(const nlohmann::json &key)
{
    std::string out;
    for (const auto &column : key)
        out += (out.empty() ? "" : ", ") + column.get<std::string>();
    return "(" + out + ")";
}

// (Shapes come from SQL: a field may be null. value() would throw on a type it does not expect.)
std::string text_of(const nlohmann::json &object, const char *field)
{
    auto it = object.find(field);
    return it != object.end() && it->is_string() ? it->get<std::string>() : "?";
}

void note(std::string &out, const std::string &what)
{
    out += (out.empty() ? "" : "; ") + what;
}

} // namespace

std::string schema_drift(const std::string &local, const std::string &remote)
{
    if (local.empty() || remote.empty())
        return "";
    nlohmann::json here = nlohmann::json::parse(local, nullptr, false);
    nlohmann::json there = nlohmann::json::parse(remote, nullptr, false);
    if (here.is_discarded() || there.is_discarded() || !here.is_object() || !there.is_object())
        return "";
    std::string out;
    if (text_of(here, "mode") != text_of(there, "mode"))
        note(out,
             "mode " + text_of(here, "mode") + " here, " + text_of(there, "mode") + " on the peer");
    if (here.value("key", nlohmann::json::array()) != there.value("key", nlohmann::json::array()))
        note(out, "key " + join_key(here.value("key", nlohmann::json::array())) + " here, " +
                      join_key(there.value("key", nlohmann::json::array())) + " on the peer");
    // The key that marks tombstones in items: a peer that names it otherwise would take it for a
    // column it lacks. (Insert_only tables have none.)
    if (here.contains("marker") && here["marker"].is_string() && there.contains("marker") &&
        there["marker"].is_string() && here["marker"] != there["marker"])
        note(out, "tombstone marker " + text_of(here, "marker") + " here, " +
                      text_of(there, "marker") + " on the peer");
    nlohmann::json mine = here.value("columns", nlohmann::json::object());
    nlohmann::json theirs = there.value("columns", nlohmann::json::object());
    for (const auto &[name, column] : mine.items()) {
        std::string type = text_of(column, "type");
        if (!theirs.contains(name)) {
            note(out, "column " + name + " (" + type + ") is missing on the peer");
            continue;
        }
        std::string other = text_of(theirs[name], "type");
        if (other != type)
            note(out, "column " + name + " is " + type + " here, " + other + " on the peer");
    }
    for (const auto &[name, column] : theirs.items())
        if (!mine.contains(name) && column.contains("required") &&
            column["required"].is_boolean() && column["required"].get<bool>())
            note(out, "column " + name + " (" + text_of(column, "type") +
                          ", NOT NULL without a default) is only on the peer");
    return out;
}

std::string unknown_columns(const std::string &local, const std::string &remote,
                            const std::string &keys)
{
    if (remote.empty() || keys.empty())
        return "";
    nlohmann::json there = nlohmann::json::parse(remote, nullptr, false);
    nlohmann::json here = nlohmann::json::parse(local, nullptr, false);
    nlohmann::json sent = nlohmann::json::parse(keys, nullptr, false);
    if (there.is_discarded() || !there.is_object() || sent.is_discarded() || !sent.is_array())
        return "";
    nlohmann::json columns = there.value("columns", nlohmann::json::object());
    std::string marker;
    if (here.is_object() && here.contains("marker") && here["marker"].is_string())
        marker = here["marker"].get<std::string>(); // insert_only tables have none (null)
    std::string out;
    for (const auto &key : sent) {
        if (!key.is_string())
            continue;
        std::string name = key.get<std::string>();
        if (!columns.contains(name) && name != marker)
            note(out, "column " + name + " is missing on the peer");
    }
    return out;
}
