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
    if (here.value("mode", "") != there.value("mode", ""))
        note(out, "mode " + here.value("mode", "?") + " here, " + there.value("mode", "?") +
                      " on the peer");
    if (here.value("key", nlohmann::json::array()) != there.value("key", nlohmann::json::array()))
        note(out, "key " + join_key(here.value("key", nlohmann::json::array())) + " here, " +
                      join_key(there.value("key", nlohmann::json::array())) + " on the peer");
    nlohmann::json mine = here.value("columns", nlohmann::json::object());
    nlohmann::json theirs = there.value("columns", nlohmann::json::object());
    for (const auto &[name, column] : mine.items()) {
        std::string type = column.value("type", "?");
        if (!theirs.contains(name)) {
            note(out, "column " + name + " (" + type + ") is missing on the peer");
            continue;
        }
        std::string other = theirs[name].value("type", "?");
        if (other != type)
            note(out, "column " + name + " is " + type + " here, " + other + " on the peer");
    }
    for (const auto &[name, column] : theirs.items())
        if (!mine.contains(name) && column.value("required", false))
            note(out, "column " + name + " (" + column.value("type", "?") +
                          ", NOT NULL without a default) is only on the peer");
    return out;
}
