// schema_drift: which differences between a table here and on a peer keep rows from going.
#include "schema_shape.hpp"
#include "suites.hpp"

#include <string>

namespace {

const char *kItem = R"({"mode": "lww", "key": ["name"], "columns": {
    "name": {"type": "text", "required": true}, "value": {"type": "integer", "required": false},
    "idsync_version": {"type": "bigint", "required": false}}})";

// (The result is kept in a variable: ck_assert_str_eq reads its arguments more than once.)
void expect_drift(const char *local, const char *remote, const char *expected)
{
    std::string got = schema_drift(local, remote);
    ck_assert_str_eq(got.c_str(), expected);
}

} // namespace

START_TEST(same_shape)
{
    expect_drift(kItem, kItem, "");
}
END_TEST

START_TEST(column_missing_on_peer)
{
    const char *peer = R"({"mode": "lww", "key": ["name"], "columns": {
        "name": {"type": "text", "required": true},
        "idsync_version": {"type": "bigint", "required": false}}})";
    expect_drift(kItem, peer, "column value (integer) is missing on the peer");
    // The other way round, a column only the peer has and does not require is fine.
    expect_drift(peer, kItem, "");
}
END_TEST

START_TEST(type_key_mode_and_required)
{
    const char *peer = R"({"mode": "insert_only", "key": ["name", "value"], "columns": {
        "name": {"type": "text", "required": true}, "value": {"type": "bigint", "required": false},
        "idsync_version": {"type": "bigint", "required": false},
        "owner": {"type": "text", "required": true}}})";
    expect_drift(kItem, peer,
                 "mode lww here, insert_only on the peer; key (name) here, (name, value) on "
                 "the peer; column value is integer here, bigint on the peer; column owner "
                 "(text, NOT NULL without a default) is only on the peer");
}
END_TEST

START_TEST(unknown_shapes_compare_equal)
{
    expect_drift(kItem, "", "");
    expect_drift("not json", kItem, "");
    expect_drift(kItem, "[1, 2]", "");
}
END_TEST

START_TEST(batch_keys_against_peer)
{
    const char *local = R"({"mode": "lww", "key": ["name"], "marker": "idsync_deleted",
        "columns": {"name": {"type": "text"}, "note": {"type": "text"}}})";
    const char *peer = R"({"mode": "lww", "key": ["name"], "columns": {"name": {"type": "text"}}})";
    std::string ok = unknown_columns(local, peer, R"(["name", "idsync_deleted"])");
    ck_assert_str_eq(ok.c_str(), "");
    std::string added = unknown_columns(local, peer, R"(["name", "note"])");
    ck_assert_str_eq(added.c_str(), "column note is missing on the peer");
    const char *insert_only = R"({"mode": "insert_only", "key": ["name"], "marker": null,
        "columns": {"name": {"type": "text", "required": null}}})";
    std::string none = unknown_columns(insert_only, insert_only, R"(["name"])");
    ck_assert_str_eq(none.c_str(), "");
    std::string same = schema_drift(insert_only, insert_only);
    ck_assert_str_eq(same.c_str(), "");
    const char *other_marker = R"({"mode": "lww", "key": ["name"], "marker": "gone",
        "columns": {"name": {"type": "text"}, "note": {"type": "text"}}})";
    std::string markers = schema_drift(local, other_marker);
    ck_assert_str_eq(markers.c_str(), "tombstone marker idsync_deleted here, gone on the peer");
    std::string unknown = unknown_columns(local, "", R"(["note"])");
    ck_assert_str_eq(unknown.c_str(), "");
}
END_TEST

Suite *schema_shape_suite()
{
    Suite *s = suite_create("schema_shape");
    TCase *tc = tcase_create("drift");
    tcase_add_test(tc, same_shape);
    tcase_add_test(tc, column_missing_on_peer);
    tcase_add_test(tc, type_key_mode_and_required);
    tcase_add_test(tc, unknown_shapes_compare_equal);
    tcase_add_test(tc, batch_keys_against_peer);
    suite_add_tcase(s, tc);
    return s;
}
